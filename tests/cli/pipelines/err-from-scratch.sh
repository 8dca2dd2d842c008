# from-scratch with a config tk-train refuses: the stages before training
# are done, training stops with tk-train's message, no model directory.
cat > bad.json <<'JSON'
{"model_type": "gpt2", "vocab_size": 301, "n_embd": 30, "n_layer": 1, "n_head": 4, "n_positions": 64}
JSON
"$TK_ROOT/pipelines/from-scratch" "$FIX/train/text.txt" - bad.json "$FIX/train/model" fs \
	--seq-len 24 -- --max-steps 2 > out 2> err
rc=$?
grep -v '^tk-tokenize: [0-9]* documents\|note: no CUDA device' err >&2
grep '^== ' out
[ -e fs ] && echo "fs exists" || echo "no fs"
ls fs.work
exit $rc

# full-finetune and from-scratch on the tiny GPT-2: a full model directory
# each, with metrics and samples.
P=$TK_ROOT/pipelines
{ echo quote; sed 's/"/""/g; s/.*/"&"/' "$FIX/train/text.txt"; } > q.csv
"$P/full-finetune" q.csv quote "$FIX/train/model" ft --seq-len 24 --prompt "A bug" -- \
	--max-steps 3 --logging-steps 1 > out 2> err || { echo "full-finetune failed: $?"; cat err; }
grep '^== ' out | grep -v '^== plot'
tail -1 out | sed "s/, loss.png//"
ls ft | grep -v '^checkpoint-\|^loss.png$'
grep -c '"loss"' ft/metrics.jsonl
grep -c '^A bug' ft.work/samples.txt
cat > cfg.json <<'JSON'
{"model_type": "gpt2", "vocab_size": 301, "n_embd": 32, "n_layer": 1, "n_head": 2,
 "n_positions": 64, "bos_token_id": 0, "eos_token_id": 0}
JSON
"$P/from-scratch" "$FIX/train/text.txt" - cfg.json "$FIX/train/model" fs --seq-len 24 \
	--prompt "A bug" -- --max-steps 3 --logging-steps 1 > out 2> err || { echo "from-scratch failed: $?"; cat err; }
grep '^== \|^\$ tk-t' out | grep -v '^== plot' | sed 's| [^ ]*/train/| FIX/train/|g'
tail -1 out | sed "s/, loss.png//"
grep -o '"n_embd": *32' fs/config.json
grep -c '^A bug' fs.work/samples.txt

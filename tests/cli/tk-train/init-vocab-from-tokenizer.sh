# A config for --init without vocab_size takes the tokenizer's length (301),
# as AutoConfig(..., vocab_size=len(tokenizer)) does, and says so; with one,
# the config's is kept (and checked against the blocks).
grep -v '"vocab_size"' "$FIX/train/model/config.json" | sed 's/"use_cache": true,/"use_cache": true/' > small.json
tk-train --init small.json --tokenizer "$FIX/train/model" --data "$FIX/train/blocks" -o out \
	--max-steps 1 --threads 1 2> err >/dev/null || { cat err; exit 1; }
grep 'vocab_size' err
grep '"vocab_size"' out/config.json
sed 's/"use_cache": true/"use_cache": true, "vocab_size": 97/' small.json > small97.json
tk-train -q --init small97.json --tokenizer "$FIX/train/model" --data "$FIX/train/blocks" -o out97 \
	--max-steps 1 --threads 1
echo "exit $?"

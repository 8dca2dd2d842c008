# the mask is stored in the shard: read it back with --ids --show-mask
tk-tokenize -q -t "$FIX/gpt2" --prompt-column question --response-column answer \
	-o qa.tks "$FIX/input/qa.csv" || exit
tk-tokenize -q -t "$FIX/gpt2" --ids --show-mask qa.tks

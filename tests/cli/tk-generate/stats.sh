# --stats prints one line of timings to stderr at the end: 4 prompt tokens,
# then 7 tokens after the first of each of the 2 sequences (the shape only:
# the times vary from run to run).
tk-generate --model "$FIX/models/llama" --prompt-ids "10 20 30 40" --ids --max-new-tokens 8 \
	--do-sample --num-return-sequences 2 --threads 1 --stats

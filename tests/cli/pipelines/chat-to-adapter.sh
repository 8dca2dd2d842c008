# csv-to-adapter --chat: JSONL conversations through the tiny ChatML model's
# template, the loss on the assistant turns, samples answering the default
# prompt as a user message.
P=$TK_ROOT/pipelines
for i in $(seq 1 40); do
	printf '{"messages": [{"role": "user", "content": "What is %d plus %d?"}, {"role": "assistant", "content": "It is %d."}]}\n' \
		"$i" "$i" "$((2 * i))"
done > chat.jsonl
"$P/csv-to-adapter" chat.jsonl messages "$FIX/generate/chatml" ad --chat --seq-len 32 \
	--eval-fraction 0.1 -- --max-steps 2 --logging-steps 1 --save-steps 2 > out 2> err ||
	{ echo "failed: $?"; cat err; }
grep '^== ' out | sed 's/^== plot.*/== plot/'
grep -c -- '--messages-field messages --assistant-only-loss' ad.work/stamps/tokenize.cmd
tk-tokenize -q -t "$FIX/generate/chatml" --stats ad.work/docs.tks | grep -E '^documents'
tk-tokenize -q -t "$FIX/generate/chatml" --stats ad.work/docs.tks |
	awk '/^tokens/ { t = $2 } /^masked/ { m = $2 } END { print (m > 0 && m < t) ? "some tokens masked" : "mask wrong" }'
ls ad | grep -c '^adapter_model.safetensors$'
head -1 ad.work/samples.txt

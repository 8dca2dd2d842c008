# --modules-to-save lm_head on GPT-2, whose lm_head is tied to wte: the
# message says to save the embedding instead (exit 2); nothing is written.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" --lora-r 4 --modules-to-save lm_head \
	--max-steps 2 -q -o out
rc=$?
[ -e out ] && echo "out was left behind"
exit $rc

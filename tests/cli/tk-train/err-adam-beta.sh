# torch.optim.AdamW and bitsandbytes' AdamW both refuse a beta of 1 (their
# bias correction would divide by zero): a usage error for either
# optimizer, before anything is made, not a failed first step.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --optim adamw_8bit \
	--adam-beta2 1
echo "exit $?"
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --adam-beta1 1
rc=$?
ls
exit $rc

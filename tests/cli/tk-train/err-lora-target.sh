# A target module the model does not have: the message lists the linear
# modules it has; exit 2 and no OUT.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" --lora-r 4 \
	--lora-target-modules c_attn,q_proj --max-steps 2 -q -o out
rc=$?
[ -e out ] && echo "out was left behind"
exit $rc

# bitsandbytes' 8-bit state is blocked over whole tensors, which ZeRO-1's
# shards cut anywhere: --optim adamw_8bit with --zero 1 (here from
# --config) is a usage error, before anything is made.
echo '{"zero": 1}' >args.json
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --config args.json \
	--optim paged_adamw_8bit
rc=$?
ls
exit $rc

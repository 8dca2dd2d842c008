# A loss scale beyond fp32 (2^128) is a usage error, before anything is made.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --fp16 \
	--initial-scale-power 128
rc=$?
ls
exit $rc

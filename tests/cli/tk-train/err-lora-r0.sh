# --lora-r 0 is bad usage (exit 2); nothing is written.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" --lora-r 0 --max-steps 2 -q -o out
rc=$?
[ -e out ] && echo "out was left behind"
exit $rc

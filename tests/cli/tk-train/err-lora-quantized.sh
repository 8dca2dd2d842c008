# A 4-bit base without --lora-r: it cannot be fully fine-tuned (exit 2, the
# message says what to add); nothing is written.
tk-quantize -q "$FIX/train/model" -o nf4 || exit 90
tk-train --model nf4 --data "$FIX/train/blocks" --max-steps 2 -q -o out
rc=$?
[ -e out ] && echo "out was left behind"
exit $rc

# A second run into the same OUT is refused without --force, and with
# --force starts over.
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 2 --save-steps 1 -q"
tk-train $args -o out >/dev/null || exit 99
tk-train $args -o out --max-steps 3
echo "exit $?"
tk-train $args -o out --max-steps 1 --force >/dev/null || exit 98
ls out | grep checkpoint

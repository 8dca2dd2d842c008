# Out of memory when resuming: exit 1 with the plan's message, and the
# checkpoint it resumed from is byte for byte what it was.
args="--model $FIX/train/model --data $FIX/train/blocks -o out --threads 1 -q --save-steps 2"
tk-train $args --max-steps 2 || exit 3
sum() { (cd out/checkpoint-2 && find . -type f | sort | xargs sha256sum); }
sum >before
TK_DEVICE_MEMORY_LIMIT=1200K tk-train $args --max-steps 4 --resume-from-checkpoint latest
rc=$?
sum >after
cmp before after && echo "checkpoint-2 unchanged"
ls out
exit $rc

# A --logging-dir that cannot be made is said at once; training goes on (the
# model is worth keeping), the final metrics still go to stdout, and
# tk-train exits 1.  No event file is left anywhere.
touch file
tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --max-steps 2 \
	--save-strategy no --threads 1 --report-to tensorboard --logging-dir file/runs >/dev/null
rc=$?
ls out
find . -name 'events.out.tfevents.*' | wc -l
exit $rc

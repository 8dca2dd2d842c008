# Outside a terminal, tk-train reports progress between its logging lines
# (TK_PROGRESS, jobs/cli.h: by default every 10 s or 2% of the run; 0 here:
# at every step): step, share, loss, tokens/s, ETA.  A logging step prints
# its own line instead.  tests/run sets TK_PROGRESS=off for every other case.
run() {
	tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" --max-steps 6 \
		--per-device-train-batch-size 2 --logging-steps 3 --no-shuffle --threads 1 \
		--save-strategy no -o "$1" >/dev/null
}
norm() {
	sed -E -e 's/(loss|grad_norm|lr) [-+0-9.e]+/\1 X/g' -e 's/[0-9]+ tokens\/s/N tokens\/s/g' \
		-e 's/ETA [0-9hms]+/ETA T/' -e 's/mem [0-9]+ MB/mem M MB/' -e 's/, [0-9hms]+,/, T,/'
}
TK_PROGRESS=0 run out 2>err || exit $?
norm <err
echo "== off"
TK_PROGRESS=off run out2 2>err || exit $?
grep -c 'progress:' err
echo "== not known"
TK_PROGRESS=often run out3 2>err || exit $?
head -1 err

# One run at a time writes into OUT: a second run on the same (new) OUT
# fails at once (exit 1) naming the first's PID, and the first goes on
# unharmed.  The lock file (OUT/.tk-train.lock) is gone when a run ends,
# is in no checkpoint, and one left by a killed run is taken over.
args="--model $FIX/train/model --data $FIX/train/blocks --per-device-train-batch-size 4
	--save-steps 100 --threads 1 -q"
tk-train $args --max-steps 400 -o out >first.out &
pid=$!
for i in $(seq 1 2000); do
	[ -s out/.tk-train.lock ] && break
	sleep 0.005
done
tk-train $args --max-steps 2 -o out 2>err
echo "exit $?"
sed "s/(pid $pid)/(pid PID)/" err >&2
wait $pid || exit 99
ls -A out
ls -A out/checkpoint-400
# a run killed with the lock held: the next run takes it over
tk-train $args --max-steps 400 -o killed >/dev/null &
pid=$!
for i in $(seq 1 2000); do
	[ -s killed/.tk-train.lock ] && break
	sleep 0.005
done
kill -9 $pid
wait $pid 2>/dev/null
tk-train $args --max-steps 2 -o killed --force >/dev/null && echo took over the lock
[ -e killed/.tk-train.lock ] || echo no lock file left

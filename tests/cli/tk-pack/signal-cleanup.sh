# SIGTERM or SIGINT to tk-pack -o DIR mid-run removes its temporary
# directory DIR.tmp-PID, shards inside it included, and ends the run with the
# signal's status (128 + signal number).  The input is a named pipe held open,
# so tk-pack has read one shard, written blocks and is waiting for more when
# the signal comes.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
mkdir out
touch out/old
set -m # job control: a background job does not ignore SIGINT
for sig in TERM INT HUP; do
	mkfifo fifo
	tk-pack -q -f -s 16 -o out fifo &
	pid=$!
	exec 3>fifo
	cat docs.tks >&3
	for t in $(seq 1 200); do
		[ -e "out.tmp-$pid/train-00000.tks" ] && break
		sleep 0.05
	done
	[ -e "out.tmp-$pid/train-00000.tks" ] || { echo "$sig: no shard written"; kill $pid; exit 99; }
	kill -s $sig $pid
	wait $pid
	echo "$sig: exit $?"
	exec 3>&-
	rm fifo
done
ls
ls out

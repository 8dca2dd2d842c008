# Debris of a run that died without cleaning up (kill -9: OUT.tmp-PID and
# OUT.old-PID beside the output, PID no longer running) is removed when the
# output is written again; a temporary of a live process is left alone.
for i in $(seq 1 40); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
mkdir out.tmp-99999999 out.old-99999998
echo partial > out.tmp-99999999/train-00000.tks
echo old > out.old-99999998/train-00000.tks
sleep 60 &
live=$!
mkdir out.tmp-$live
tk-pack -q -s 16 -o out docs.tks || exit $?
[ -d out.tmp-$live ] && echo "live kept"
rmdir out.tmp-$live
kill $live
# the same for a file output (tk-tokenize -o FILE)
echo partial > docs2.tks.tmp-99999999
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs2.tks || exit 99
ls

# Less data than one block: an error naming the fix; nothing written.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
tk-pack -s 100000 -o out docs.tks
rc=$?
ls
exit $rc

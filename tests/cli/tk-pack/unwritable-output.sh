# The output directory cannot be created (its parent is a file).
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
touch file
tk-pack -s 16 -o file/out docs.tks
rc=$?
ls
exit $rc

# An existing output directory is kept unless --force is given.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
mkdir out
touch out/keep
tk-pack -s 16 -o out docs.tks
rc=$?
ls out
tk-pack -q -f -s 16 -o out docs.tks || exit 99
ls out
exit $rc

# A damaged chunk: the message names the file and the offset; no output.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
cp docs.tks bad.tks
printf '\x55' | dd of=bad.tks bs=1 seek=400 conv=notrunc 2>/dev/null
tk-pack -s 16 -o out bad.tks
rc=$?
ls
exit $rc

# A shard cut short: the message names the file and where it ends; no output.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
half=$(( $(stat -c %s docs.tks) / 2 ))
head -c $half docs.tks > cut.tks
tk-pack -s 16 -o out cut.tks 2>err
rc=$?
cat err >&2
grep -q "^tk-pack: cut.tks: offset $half: " err || echo "the message does not name offset $half"
rm err
ls
exit $rc

# --pad: one block per document; cat'ed shards are read one after the other.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
cat docs.tks docs.tks | tk-pack --pad -s 64 --shard-size 100 -o out || exit $?
ls out

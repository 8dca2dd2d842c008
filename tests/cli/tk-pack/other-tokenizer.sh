# -t names a tokenizer other than the one that made the shard.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
mkdir other
cp "$FIX/gpt2/vocab.json" other/
head -n 1000 "$FIX/gpt2/merges.txt" > other/merges.txt
tk-pack -s 16 -t other -o out docs.tks
rc=$?
ls
exit $rc

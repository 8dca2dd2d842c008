# -t with the tokenizer that made the shard passes.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
tk-pack -q -s 16 -t "$FIX/gpt2" -o out docs.tks || exit $?
ls out

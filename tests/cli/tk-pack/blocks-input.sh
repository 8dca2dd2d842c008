# A blocks shard (tk-pack's own output) given where documents are expected.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
tk-pack -q -s 16 docs.tks > blocks.tks || exit 99
tk-pack -s 16 -o out blocks.tks
rc=$?
ls
exit $rc

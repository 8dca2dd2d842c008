# --pad: one block per document; cat'ed shards are read one after the other.
#
# The counts, by hand: each document is 19 tokens (18 GPT-2 tokens of the
# line, see pack-dir.sh, plus EOS); the shard twice gives 240 documents and
# 240 x 19 = 4560 tokens.  --pad makes one block of 64 per document, padded
# with 64 - 19 = 45 tokens: 240 x 45 = 10800 padding tokens of 240 x 64 =
# 15360, 70.3125%, printed 70.3%.  240 blocks at 100 per shard: 3 shards.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
cat docs.tks docs.tks | tk-pack --pad -s 64 --shard-size 100 -o out || exit $?
ls out

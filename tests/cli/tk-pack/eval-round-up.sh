# --eval-fraction rounds the eval document count up, as datasets'
# train_test_split does (n_test = ceil(test_size * n)): 0.1 of 33 documents
# is 3.3, so 4 go to eval (a truncation would give 3); with --shuffle too.
#
# The counts, by hand: 19 tokens per document (see pack-dir.sh), 33 x 19 =
# 627.  Eval: 4 x 19 = 76 = 4 blocks of 16 (64) + 12 dropped.  Train: 29 x
# 19 = 551 = 34 blocks (544) + 7 dropped.
for i in $(seq 1 33); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
tk-pack -s 16 --eval-fraction 0.1 -o out docs.tks || exit $?
tk-pack -s 16 --eval-fraction 0.1 --shuffle -o out2 docs.tks || exit $?

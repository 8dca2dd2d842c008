# Packs into a directory with an eval split; the summary goes to stdout.
#
# The counts, by hand: each line is 18 GPT-2 tokens ("Quote", " number",
# " N" (every " 1" .. " 120" is one token in GPT-2's vocab), ":", " the",
# " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ",",
# " again", " and", " again", ".") plus the EOS tk-tokenize appends: 19 per
# document, 120 x 19 = 2280 tokens.  They end in EOS already, so tk-pack adds
# none.  Eval: 12 x 19 = 228 tokens = 3 blocks of 64 (192) + 36 dropped.
# Train: 108 x 19 = 2052 = 32 blocks (2048) + 4 dropped.
for i in $(seq 1 120); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
tk-pack -s 64 --eval-docs 12 -o out docs.tks || exit $?
ls out

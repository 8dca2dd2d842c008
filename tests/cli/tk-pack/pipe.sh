# tk-tokenize -q | tk-pack > blocks.tks; the summary goes to stderr.  The blocks
# equal the documents concatenated and cut every 32 tokens.
for i in $(seq 1 50); do echo "Line $i says hello to the world."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt | tk-pack -s 32 --shard-size 2 > blocks.tks || exit $?
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
tk-tokenize -q -t "$FIX/gpt2" --format tks --ids docs.tks | tr '\n' ' ' | tr -s ' ' '\n' | grep . > doc-ids
tk-tokenize -q -t "$FIX/gpt2" --format tks --ids blocks.tks | tr '\n' ' ' | tr -s ' ' '\n' | grep . > block-ids
n=$(wc -l < block-ids)
[ $((n % 32)) -eq 0 ] && [ $n -gt 0 ] || { echo "$n ids in the blocks"; exit 1; }
head -n $n doc-ids | cmp - block-ids || exit 1
echo "$n block ids match"

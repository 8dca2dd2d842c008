# -j1 and -j2 write the same bytes; several batches of documents (> 512 each)
for i in $(seq 1 700); do cat "$FIX/input/lines.txt"; echo "line $i of the test"; done > big.txt
tk-tokenize -q -t "$FIX/gpt2" --split-lines -j1 -o one.tks big.txt || exit
tk-tokenize -q -t "$FIX/gpt2" --split-lines -j2 -o two.tks big.txt || exit
tk-tokenize -q -t "$FIX/gpt2" --split-lines -j 3 -o three.tks big.txt || exit
cmp one.tks two.tks && cmp one.tks three.tks && echo same
tk-tokenize -q -t "$FIX/gpt2" --stats one.tks | head -1

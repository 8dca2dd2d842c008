echo keep > out.tks
tk-tokenize -t "$FIX/gpt2" --split-lines -o out.tks "$FIX/input/lines.txt"
echo "rc=$?"; ls; cat out.tks
tk-tokenize -q -t "$FIX/gpt2" --split-lines --force -o out.tks "$FIX/input/lines.txt"
echo "rc=$?"; ls; cmp -s out.tks - <<<keep || echo replaced

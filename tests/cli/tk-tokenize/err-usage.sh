cp "$FIX/input/lines.txt" l.txt
tk-tokenize --ids l.txt; echo "rc=$?"
tk-tokenize -t "$FIX/gpt2" --show-mask l.txt; echo "rc=$?"
tk-tokenize -t "$FIX/gpt2" --ids --decode l.txt; echo "rc=$?"
tk-tokenize -t "$FIX/gpt2" --format xml l.txt; echo "rc=$?"
tk-tokenize -t "$FIX/gpt2" -j -1 l.txt; echo "rc=$?"
tk-tokenize -t "$FIX/gpt2" --template 'a {b' --ids "$FIX/input/quotes.csv"; echo "rc=$?"
tk-tokenize -t "$FIX/gpt2" --column quote --ids l.txt; echo "rc=$?"
tk-tokenize -t "$FIX/gpt2" --split-lines -q -o l.tks l.txt && tk-tokenize -t "$FIX/gpt2" -o x.tks l.tks; echo "rc=$?"
ls

# without -q: a summary line on stderr
tk-tokenize -t "$FIX/gpt2" --split-lines -o lines.tks "$FIX/input/lines.txt"

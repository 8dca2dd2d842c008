# no FILE: stdin, read as text
tk-tokenize -q -t "$FIX/gpt2" --split-lines --ids < "$FIX/input/lines.txt"

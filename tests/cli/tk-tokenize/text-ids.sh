# a text file is one document
tk-tokenize -q -t "$FIX/gpt2" --ids "$FIX/input/doc.txt"

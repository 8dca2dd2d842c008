# shard -> text: each document and a newline, special tokens kept
tk-tokenize -q -t "$FIX/gpt2" --split-lines -o lines.tks "$FIX/input/lines.txt" || exit
tk-tokenize -q -t "$FIX/gpt2" --decode lines.tks

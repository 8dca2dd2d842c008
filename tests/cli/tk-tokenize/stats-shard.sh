# stats of a shard: bytes are those of the decoded text, special tokens left out
tk-tokenize -q -t "$FIX/gpt2" --split-lines -o lines.tks "$FIX/input/lines.txt" || exit
tk-tokenize -q -t "$FIX/gpt2" --stats lines.tks

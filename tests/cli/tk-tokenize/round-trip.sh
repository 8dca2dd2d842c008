# text -> shard -> text gives the lines back
tk-tokenize -q -t "$FIX/gpt2" --split-lines -o lines.tks "$FIX/input/lines.txt" || exit
tk-tokenize -q -t "$FIX/gpt2" --decode --skip-special-tokens -o back.txt lines.tks || exit
grep -v '^$' "$FIX/input/lines.txt" | cmp - back.txt && echo same
# and from a pipe
tk-tokenize -q -t "$FIX/gpt2" --split-lines "$FIX/input/lines.txt" |
	tk-tokenize -q -t "$FIX/gpt2" --decode --skip-special-tokens | cmp - back.txt && echo same

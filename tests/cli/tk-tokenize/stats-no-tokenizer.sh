# --stats and --ids of token shards need no tokenizer: documents, tokens
# and masked tokens (no bytes: those are of the decoded text), the same
# counts as with -t; ids the same as with -t.  Text inputs, or --decode,
# still need -t (exit 2).
tk-tokenize -q -t "$FIX/gpt2" --split-lines -o lines.tks "$FIX/input/lines.txt" || exit
tk-tokenize --stats lines.tks
tk-tokenize -q -t "$FIX/gpt2" --stats lines.tks | grep -v '^bytes' | diff - <(tk-tokenize -q --stats lines.tks) &&
	echo "counts as with -t"
tk-tokenize -q --stats --format tks <lines.tks | head -1
cmp <(tk-tokenize -q --ids lines.tks) <(tk-tokenize -q -t "$FIX/gpt2" --ids lines.tks) && echo "ids as with -t"
tk-tokenize --stats "$FIX/input/lines.txt"; echo "exit $?"
tk-tokenize --decode lines.tks; echo "exit $?"

# JSONL: blank lines skipped, \u escapes and surrogate pairs, CRLF
tk-tokenize -q -t "$FIX/gpt2" --field quote --ids "$FIX/input/quotes.jsonl"

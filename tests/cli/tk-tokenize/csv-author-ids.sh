# unquoted fields keep their spaces (RFC 4180, like Python's csv)
tk-tokenize -q -t "$FIX/gpt2/tokenizer.json" --column=author --ids "$FIX/input/quotes.csv"

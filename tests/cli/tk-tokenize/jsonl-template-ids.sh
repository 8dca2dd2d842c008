# numbers in a template are written as JSON writes them
tk-tokenize -q -t "$FIX/gpt2" --template '{quote} ({author}, {year})' --ids "$FIX/input/quotes.jsonl"

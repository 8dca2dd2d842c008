# several inputs of different formats, in order
tk-tokenize -q -t "$FIX/gpt2" --column quote --ids "$FIX/input/quotes.csv" "$FIX/input/quotes.jsonl"

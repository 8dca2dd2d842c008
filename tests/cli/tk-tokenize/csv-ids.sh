# CSV (BOM, CRLF, quoted commas, embedded newline, doubled quotes) to ids
tk-tokenize -q -t "$FIX/gpt2" --column quote --ids "$FIX/input/quotes.csv"

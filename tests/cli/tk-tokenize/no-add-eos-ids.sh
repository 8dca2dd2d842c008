tk-tokenize -q -t "$FIX/gpt2" --split-lines --no-add-eos --ids "$FIX/input/lines.txt"

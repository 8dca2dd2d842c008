# invalid bytes become U+FFFD as bytes.decode("utf-8", errors="replace") does
tk-tokenize -q -t "$FIX/gpt2" --split-lines --invalid-utf8 replace --ids "$FIX/input/badutf8.txt"

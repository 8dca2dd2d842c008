cp "$FIX/input/unterminated.csv" q.csv
tk-tokenize -t "$FIX/gpt2" --column quote -o out.tks q.csv
rc=$?; ls out* 2>/dev/null; exit $rc

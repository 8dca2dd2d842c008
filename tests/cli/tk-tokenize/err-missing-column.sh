cp "$FIX/input/quotes.csv" q.csv
tk-tokenize -t "$FIX/gpt2" --column qoute -o out.tks q.csv
rc=$?; ls out* 2>/dev/null; exit $rc

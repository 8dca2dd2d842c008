cp "$FIX/input/tokenizer-notjson.json" tokenizer.json
tk-tokenize -t tokenizer.json -o out.tks "$FIX/input/lines.txt"
rc=$?; ls out* 2>/dev/null; exit $rc

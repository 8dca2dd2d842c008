cp "$FIX/input/notjson.jsonl" d.jsonl
tk-tokenize -t "$FIX/gpt2" -o out.tks d.jsonl
rc=$?; ls out* 2>/dev/null; exit $rc

# cJSON reads 01, 1. and -.5 as numbers; JSON (and json.loads) does not
printf '{"text":"ok"}\n{"text": 01}\n' > a.jsonl
tk-tokenize -t "$FIX/gpt2" -o out.tks a.jsonl
rc=$?; ls out* 2>/dev/null; exit $rc

# a field given twice: json.loads keeps the last, cJSON the first, Arrow's
# JSON reader (datasets) refuses the line, and so does tk-tokenize; also a
# message's content
printf '{"text":"a","id":1,"id":2}\n{"text":"first","text":"last"}\n' > a.jsonl
tk-tokenize -t "$FIX/gpt2" -o out.tks a.jsonl
printf '{"messages":[{"role":"user","content":"a","content":"b"}]}\n' > c.jsonl
tk-tokenize -t "$FIX/generate/chatml" -o out.tks c.jsonl
rc=$?; ls out* 2>/dev/null; exit $rc

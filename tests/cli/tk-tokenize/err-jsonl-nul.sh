# \u0000 cannot be part of a text (cJSON would cut the string there); a raw
# NUL byte is not JSON
printf '{"text":"a\\u0000b"}\n' > a.jsonl
tk-tokenize -t "$FIX/gpt2" -o out.tks a.jsonl
printf '{"text":"ok"}\n{"text":"a\0b"}\n' > b.jsonl
tk-tokenize -t "$FIX/gpt2" -o out.tks b.jsonl
rc=$?; ls out* 2>/dev/null; exit $rc

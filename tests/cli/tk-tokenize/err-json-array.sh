# errors in a JSON array name the line where the record starts and its number
printf '[\n  {"a": "x"},\n  {"a": "y",\n   "b": 1}\n]\n' > missing.json
tk-tokenize -t "$FIX/gpt2" --column b --ids missing.json
printf '[\n  {"a": "x"},\n  {"a": tru}\n]\n' > bad.json
tk-tokenize -t "$FIX/gpt2" --column a --ids bad.json
printf '[{"a": "x"}, "y"]\n' > notobj.json
tk-tokenize -t "$FIX/gpt2" --column a --ids notobj.json
printf '[{"a": "x"},\n{"a": "y"}\n' > open.json
tk-tokenize -t "$FIX/gpt2" --column a --ids open.json
printf '[{"a": "x"},]\n' > comma.json
tk-tokenize -t "$FIX/gpt2" --column a --ids comma.json
printf '[{"a": "x"}] {"a": "y"}\n' > after.json
tk-tokenize -t "$FIX/gpt2" --column a --ids after.json
exit 0

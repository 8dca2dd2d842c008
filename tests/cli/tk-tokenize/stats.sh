tk-tokenize -q -t "$FIX/gpt2" --split-lines --stats "$FIX/input/lines.txt" || exit
tk-tokenize -q -t "$FIX/gpt2" --stats --prompt-field question --response-field answer "$FIX/input/qa.csv"

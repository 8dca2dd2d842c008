# "prompt" and "completion" fields are used without options (TRL's names)
tk-tokenize -q -t "$FIX/gpt2" --ids --show-mask "$FIX/input/qa.jsonl"

# a .json file holding one array of objects (Alpaca's data.json) is read as JSONL is
tk-tokenize -q -t "$FIX/gpt2" --column output --ids "$FIX/input/alpaca.json"

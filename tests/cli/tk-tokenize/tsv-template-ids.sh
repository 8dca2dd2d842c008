# .tsv is CSV with a tab between fields
tk-tokenize -q -t "$FIX/gpt2" --template '{instruction} -> {output}' --ids "$FIX/input/qa.tsv"

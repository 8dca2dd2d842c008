cp "$FIX/input/empty.csv" e.csv
: > e.txt
tk-tokenize -t "$FIX/gpt2" --column quote -o out.tks e.csv
echo "rc=$?"
tk-tokenize -t "$FIX/gpt2" -o out.tks e.txt
echo "rc=$?"
tk-tokenize -t "$FIX/gpt2" --ids < /dev/null
echo "rc=$?"
ls | grep -v '^e\.' || true

# JSONL numbers are the text Python makes of them, str(json.loads(line)["n"])
# (integers with every digit, floats as repr, 1e400 as inf): the ids equal
# those of Python's texts (gen-numbers.py wrote both files) as plain lines
tk-tokenize -q -t "$FIX/gpt2" --field n --ids "$FIX/input/numbers.jsonl" > got || exit
tk-tokenize -q -t "$FIX/gpt2" --ids --split-lines "$FIX/input/numbers.expected" > want || exit
cmp got want && wc -l < got
# a template over booleans and numbers, and CSV fields, which stay as written
printf '{"b":true,"n":1E5,"big":123456789012345678901234567890}\n' > t.jsonl
printf 'b,n,big\ntrue,1E5,1e400\n' > t.csv
for f in t.jsonl t.csv; do
	tk-tokenize -q -t "$FIX/gpt2" --template '{b} {n} {big}' -o $f.tks $f || exit
	tk-tokenize -q -t "$FIX/gpt2" --decode --skip-special-tokens $f.tks || exit
done

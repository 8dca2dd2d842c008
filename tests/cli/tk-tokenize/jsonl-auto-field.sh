# JSONL whose first line has one field: that field is the text, read by name
# from every later line (it once was read from freed memory, and a later
# line gave its first field instead): the ids are those of the same texts
# as plain lines
printf '{"quote":"first"}\n{"zz":"WRONG","quote":"RIGHT"}\n{"quote":"last","a":"WRONG"}\n' > a.jsonl
printf 'first\nRIGHT\nlast\n' > a.txt
tk-tokenize -q -t "$FIX/gpt2" --ids a.jsonl > got || exit
tk-tokenize -q -t "$FIX/gpt2" --ids --split-lines a.txt > want || exit
cmp got want && cat got

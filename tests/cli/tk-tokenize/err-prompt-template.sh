# an unknown column in a template is named with the columns there are; a bad template says where
cp "$FIX/input/alpaca.json" a.json
tk-tokenize -t "$FIX/gpt2" --prompt-template 'Q: {question}\n' --response-column output --ids a.json
echo "exit $?"
tk-tokenize -t "$FIX/gpt2" --prompt-template 'Q: {instruction' --response-column output --ids a.json
echo "exit $?"
tk-tokenize -t "$FIX/gpt2" --prompt-template 'Q: {instruction}' --prompt-column instruction --response-column output --ids a.json
echo "exit $?"
tk-tokenize -t "$FIX/gpt2" --response-template '{output}' --ids a.json
echo "exit $?"
tk-tokenize -t "$FIX/gpt2" --delimiter ';;' --column a --ids a.json
echo "exit $?"

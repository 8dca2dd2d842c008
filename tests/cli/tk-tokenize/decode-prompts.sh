# --decode --prompts: the prompt of each document (its tokens out of the loss),
# -z ending each with a NUL (shown as |): prompts may hold newlines
tk-tokenize -q -t "$FIX/gpt2" --prompt-template 'Instruction: {instruction}\nInput: {input}\nResponse:\n' \
	--response-column output "$FIX/input/alpaca.json" -o docs.tks
tk-tokenize -q -t "$FIX/gpt2" --decode --prompts -z docs.tks | tr '\0' '|'

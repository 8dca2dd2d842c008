# --prompt-template with \n escapes and --response-column: the prompt's tokens out of the loss
tk-tokenize -q -t "$FIX/gpt2" --prompt-template 'Instruction: {instruction}\nInput: {input}\nResponse:\n' \
	--response-column output --ids --show-mask "$FIX/input/alpaca.json"

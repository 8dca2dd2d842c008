# --decode --prompts on blocks: the prompts of the documents that start in a
# block after its first token (the first may continue a document) and whose
# prompt ends inside it
tk-tokenize -q -t "$FIX/gpt2" --prompt-template 'Instruction: {instruction}\nInput: {input}\nResponse:\n' \
	--response-column output "$FIX/input/alpaca.json" | tk-pack -q --seq-len 32 -o blocks
tk-tokenize -q -t "$FIX/gpt2" --decode --prompts -z blocks/train-00000.tks | tr '\0' '|'

# prompt tokens get mask 0, the response and EOS mask 1
tk-tokenize -q -t "$FIX/gpt2" --prompt-column question --response-column answer \
	--ids --show-mask "$FIX/input/qa.csv"

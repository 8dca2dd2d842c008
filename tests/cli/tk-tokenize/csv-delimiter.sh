# --delimiter for a ';'-separated CSV, quotes and doubled quotes as with commas
tk-tokenize -q -t "$FIX/gpt2" --delimiter ';' --prompt-column instruction --response-column output \
	--ids --show-mask "$FIX/input/semicolon.csv"

# a ';'-separated file read with commas: the message suggests --delimiter ';'
cp "$FIX/input/semicolon.csv" s.csv
tk-tokenize -t "$FIX/gpt2" --column output --ids s.csv

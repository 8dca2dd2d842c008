# a token across the prompt/response boundary: the prompt's ids are not a
# prefix of the whole text's; the mask still covers as many tokens, with a warning
tk-tokenize -q -t "$FIX/gpt2" --ids --show-mask "$FIX/input/split.jsonl"

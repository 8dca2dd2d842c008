# A text prompt needs a tokenizer; the fixture model has none.
tk-generate --model "$FIX/models/gpt2" hello

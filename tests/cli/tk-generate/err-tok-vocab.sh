# A tokenizer with more tokens than the model's vocabulary.
tk-generate --model "$FIX/models/gpt2" --tokenizer "$FIX/generate/chatml" hi

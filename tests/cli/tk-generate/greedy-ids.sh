# Greedy continuation of a token-id prompt: the ids transformers' generate()
# gives (tests/fixtures/generate/greedy.json, llama, prompt 10 20 30 40).
tk-generate --model "$FIX/models/llama" --prompt-ids "10 20 30 40" --ids --max-new-tokens 16

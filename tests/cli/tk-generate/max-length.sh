# --max-length counts the prompt: 'Hello world' is 4 tokens, so 3 new ones; with
# --max-new-tokens too, that wins (as transformers).
tk-generate --model "$FIX/generate/chatml" --max-length 7 --ids 'Hello world'
tk-generate --model "$FIX/generate/chatml" --max-length 7 --max-new-tokens 5 --ids 'Hello world'

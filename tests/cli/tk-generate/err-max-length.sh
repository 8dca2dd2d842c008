# --max-length not above the prompt's length is an error, as in transformers.
tk-generate --model "$FIX/generate/chatml" --max-length 4 --ids 'Hello world'

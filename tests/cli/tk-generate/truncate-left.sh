# --truncate left keeps the last 64 tokens; the context is then full, so
# generation ends after one token.
tk-generate --model "$FIX/models/gpt2" --prompt-ids "$(seq -s ' ' 1 70)" --ids --truncate left | wc -w

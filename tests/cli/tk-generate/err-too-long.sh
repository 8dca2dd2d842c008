# A prompt of 70 tokens for a context of 64 is an error without --truncate.
tk-generate --model "$FIX/models/gpt2" --prompt-ids "$(seq -s ' ' 1 70)" --ids

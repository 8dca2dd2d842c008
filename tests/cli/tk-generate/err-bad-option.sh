# An unknown --truncate value is a usage error.
tk-generate --model "$FIX/models/gpt2" --prompt-ids 1 --ids --truncate middle

# An empty PROMPT argument.
tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 ''

# --chat renders the ChatML template with its default system message (text.json:
# chatml, chat, no system).
tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --chat --ids 'Hello world'

# --chat --system on a Llama-3 template (text.json: llama3, chat, system, penalty 1.3).
tk-generate --model "$FIX/generate/llama3" --max-new-tokens 12 --repetition-penalty 1.3 --chat --system 'Be brief.' --ids 'Hello world'

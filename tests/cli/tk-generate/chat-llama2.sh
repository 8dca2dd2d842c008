# --chat on a Llama-2 template, the user text stripped (text.json: llama2, chat).
tk-generate --model "$FIX/generate/llama2" --max-new-tokens 12 --chat --ids '  spaced  out  '

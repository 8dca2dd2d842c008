# A --prompt-file that cannot be opened.
tk-generate --model "$FIX/generate/chatml" --prompt-file nothing.txt

# --stop ends the text after the stop string (text.json: chatml, plain).
tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --stop ' but' --stop 'zzz' 'Hello world'

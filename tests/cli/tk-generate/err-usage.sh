# Usage errors: options that do not go together (each exits 2, prints nothing).
tk-generate --model "$FIX/generate/chatml" --prompt-ids 1 hi; echo $?
tk-generate --model "$FIX/generate/chatml" --prompt-file p.txt hi; echo $?
tk-generate --model "$FIX/generate/chatml" --chat --prompt-ids 1; echo $?
tk-generate --model "$FIX/generate/chatml" --system x hi; echo $?
tk-generate --model "$FIX/generate/chatml" --do-sample --num-return-sequences 100 --batch-size 100 hi; echo $?

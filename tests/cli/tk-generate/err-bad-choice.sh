# Unknown values of options.
tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --truncate both hi; echo $?
tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --batch-size 0 hi; echo $?
tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --top-p 2 hi; echo $?
tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --cache-type q8_0 hi; echo $?

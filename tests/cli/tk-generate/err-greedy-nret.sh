# Greedy decoding cannot give several sequences (transformers refuses too).
tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --num-return-sequences 2 hi

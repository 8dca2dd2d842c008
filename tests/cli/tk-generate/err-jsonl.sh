# A JSONL line without a prompt string.
printf '{"prompt": "Hello world"}\n{"text": "x"}\n' | tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --ids --batch-size 4

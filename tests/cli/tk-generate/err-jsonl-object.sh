# A JSONL stream with a line that is not a JSON object.
printf '{"prompt": "a"}\n[1]\n' | tk-generate --model "$FIX/generate/chatml" --ids --batch-size 2

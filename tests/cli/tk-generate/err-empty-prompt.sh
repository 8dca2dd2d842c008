# An empty prompt line is an error naming the line.
printf 'Hello world\n\n' | tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --ids

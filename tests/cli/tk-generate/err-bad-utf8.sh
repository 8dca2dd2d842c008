# A prompt that is not UTF-8.
printf 'caf\xe9\n' | tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12

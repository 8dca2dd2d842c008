# A prompt per line of stdin, decoded two at a time: the ids transformers gives each
# alone (tests/fixtures/generate/text.json: chatml, plain, repetition_penalty 1).
printf 'Hello world\nThe quick brown fox jumps over\n' | tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --ids --batch-size 2

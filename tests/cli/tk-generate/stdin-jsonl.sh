# JSONL prompts from --prompt-file; the text transformers decodes
# (tests/fixtures/generate/text.json: chatml, plain, repetition_penalty 1).
printf '{"prompt": "Hello world", "id": 1}\n\n{"prompt": "Hello world"}\n' > p.jsonl
tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --prompt-file p.jsonl

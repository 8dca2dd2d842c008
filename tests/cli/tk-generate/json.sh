# --json: prompt, text, ids, log-probabilities (compute_transition_scores with
# normalize_logits; tests/fixtures/generate/text.json, chatml, plain).
tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --json 'Hello world'

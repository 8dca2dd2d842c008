# --truncate right keeps the first 128 tokens of a long text prompt; the context
# is then full and one token comes.
tk-generate --model "$FIX/generate/chatml" --truncate right --ids "$(printf 'word %.0s' $(seq 300))" | wc -w

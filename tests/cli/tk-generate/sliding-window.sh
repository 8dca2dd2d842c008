# Mistral's sliding window in generation: keys more than 8 positions back
# are masked, and a 30-token sequence continues as transformers' generate()
# does (tests/fixtures/swa, made by tests/parity/gen-swa-fixture.py).
read -r prompt want < "$FIX/swa/expected.txt"
got=$(tk-generate -q --model "$FIX/swa/model" --prompt-ids "${prompt//,/ }" --ids \
	--max-new-tokens 24) || exit 1
[ "$got" = "$want" ] && echo same || echo "differs: $got"

# Sliding windows in generation: keys more than W - 1 positions back are
# masked, and a 30-token sequence continues as transformers' generate()
# does: a Mistral (W 8 on every layer) and a Qwen2 with use_sliding_window
# (W 6 on layers 1 and 2 of 3; tests/fixtures/swa, made by
# tests/parity/gen-swa-fixture.py).
for m in model:expected qwen2:expected-qwen2; do
	read -r prompt want < "$FIX/swa/${m#*:}.txt"
	got=$(tk-generate -q --model "$FIX/swa/${m%%:*}" --prompt-ids "${prompt//,/ }" --ids \
		--max-new-tokens 24) || exit 1
	[ "$got" = "$want" ] && echo "${m%%:*} same" || echo "${m%%:*} differs: $got"
done

# Greedy continuations with a LoRA or DoRA adapter applied unmerged (plain bases and
# a bitsandbytes 4-bit base) equal transformers' generate() on the peft
# model: tests/fixtures/generate-adapter/expected.txt, made by
# tests/parity/gen-adapter-generate-fixtures.py.
while read -r model adapter n prompt want; do
	got=$(tk-generate -q --model "$FIX/$model" --adapter "$FIX/$adapter" --max-new-tokens "$n" \
		--prompt-ids "${prompt//,/ }" --ids) || exit 1
	got=${got#${prompt//,/ } }
	if [ "$got" = "$want" ]; then echo "same: $adapter"; else echo "differs: $adapter: $got"; fi
done < "$FIX/generate-adapter/expected.txt"

# A dynamic NTK model (max_position_embeddings 32) generates past its
# context, its rotary table recomputed at each step as transformers'
# generate() does (the cached keys keep their angles): 11 + 40 tokens, the
# ids of tests/fixtures/generate/greedy-families.json.  The Qwen3 and
# SmolLM3 fixtures give theirs too.  The models have no tokenizer: one is
# copied beside them (the ids do not go through it).
for m in rope-dynamic qwen3 smollm3; do
	mkdir "$m" && cp "$FIX/models/$m/"* "$m/" && cp "$FIX/tokenizers/gpt2-style.json" "$m/tokenizer.json"
	prompt="1 50 7 7 88 3 61 12 90 44 17"
	got=$(tk-generate -q --model "$m" --max-new-tokens 40 --prompt-ids "$prompt" --ids) || exit 1
	echo "$m: ${got#"$prompt" }"
done
# a prompt already past the context (40 tokens; the fixture's last case):
# accepted, as transformers' generate() takes it
prompt=$(seq 0 39 | awk '{printf "%s%d", (NR > 1 ? " " : ""), (7 * $1 + 3) % 97}')
got=$(tk-generate -q --model rope-dynamic --max-new-tokens 8 --prompt-ids "$prompt" --ids) || exit 1
echo "rope-dynamic, 40-token prompt: ${got#"$prompt" }"

# config.json ties the lm_head to the embedding, but the file holds its own
# lm_head.weight with other values: transformers' from_pretrained does not
# tie them then (it warns that the config is wrong) and uses the file's
# head, and so does tk.  The fixture llama (untied) with its config made
# tied gives the same greedy ids and log-probabilities as itself.
cp -r "$FIX/models/llama" m
sed 's/"tie_word_embeddings": *false/"tie_word_embeddings": true/' "$FIX/models/llama/config.json" >m/config.json
grep -c '"tie_word_embeddings": true' m/config.json
for d in "$FIX/models/llama" m; do
	tk-generate -q --model "$d" --prompt-ids "5 17 42 7" --max-new-tokens 6 --json >"$(basename "$d").json" || exit 1
done
cmp llama.json m.json && echo "the same tokens and log-probabilities"

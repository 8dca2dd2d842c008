# csv-to-adapter on prompt/response data: a JSON array (Alpaca's form), the
# prompt from --prompt-template, COLUMN the response.  The prompts' tokens
# are out of the loss, and the samples are the prompts of held-out rows.
P=$TK_ROOT/pipelines
awk '{ n = split($0, w, " "); h = int(n / 2); p = ""; r = ""
       for (i = 1; i <= n; i++) if (i <= h) p = p (i > 1 ? " " : "") w[i]; else r = r " " w[i]
       gsub(/\\/, "\\\\", p); gsub(/"/, "\\\"", p); gsub(/\\/, "\\\\", r); gsub(/"/, "\\\"", r)
       printf "%s{\"instruction\": \"%s\", \"output\": \"%s\"}\n", (NR > 1 ? "," : "["), p, r }
     END { print "]" }' "$FIX/train/text.txt" > data.json
"$P/csv-to-adapter" data.json output "$FIX/train/model" ad --seq-len 48 --eval-fraction 0.25 \
	--prompt-template 'Q: {instruction}\nA:' -- --max-steps 2 --save-steps 2 > out 2> err ||
	{ echo "failed: $?"; cat err; }
grep -a '^== ' out | sed 's/^== plot.*/== plot/'
grep -a -A1 '^== tokenize' out | tail -1 | grep -q -- "--prompt-template 'Q: {instruction}\\\\nA:' --response-column output" &&
	echo "tokenized as a pair"
tk-tokenize -q -t "$FIX/train/model" --stats ad.work/docs.tks | grep -q '^masked_tokens: [1-9]' && echo "prompts out of the loss"
# the held-out prompts that the samples start with: whole, newline included
tk-tokenize -q -t "$FIX/train/model" --decode --prompts -z ad.work/blocks/eval-*.tks | head -z -n 2 > want
[ "$(tr -cd '\0' < want | wc -c)" = 2 ] && echo "2 held-out prompts"
while IFS= read -r -d '' p; do
	case $p in "Q: "*$'\n'"A:") ;; *) echo "not a prompt: $p" ;; esac
	grep -aqF -- "${p%$'\n'A:}" ad.work/samples.txt || echo "not sampled: $p"
done < want
grep -ac '^A:' ad.work/samples.txt

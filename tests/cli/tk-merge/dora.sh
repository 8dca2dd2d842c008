# DoRA adapters (tests/fixtures/dora, made by peft) merged into an fp32 base
# and into a bitsandbytes NF4 base (dequantized) generate, greedily, what
# transformers' generate() does on the unmerged peft model
# (generate-adapter/expected.txt); test-dora compares the merged weights
# with merge_and_unload()'s.  A weight other than 1 is refused.
for pair in models/llama:dora/llama qlora/llama-nf4-dq:dora/llama-nf4-dq; do
	base=${pair%%:*} ad=${pair#*:}
	rm -rf m
	tk-merge -q -m "$FIX/$base" -a "$FIX/$ad" --dtype float32 -o m 2>/dev/null || exit 1
	read -r _ _ n prompt want < <(grep " $ad " "$FIX/generate-adapter/expected.txt")
	got=$(tk-generate -q --model m --max-new-tokens "$n" --prompt-ids "${prompt//,/ }" --ids) ||
		exit 2
	got=${got#${prompt//,/ } }
	if [ "$got" = "$want" ]; then echo "merged $ad generates as peft"; else echo "$ad: $got"; fi
done
tk-merge -q -m "$FIX/models/llama" -a "$FIX/dora/llama:0.5" -o half
echo "exit $?"
[ -e half ] && echo "half was left behind"
exit 0

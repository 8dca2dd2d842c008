# a --prompt-ids id the model has no embedding for is bad usage (exit 2)
# naming the option, before anything is generated, and nothing goes to
# stdout: not an empty record, with --max-new-tokens 0 either
v=$(sed -n 's/.*"vocab_size": *\([0-9]*\).*/\1/p' "$FIX/train/model/config.json")
for n in 2 0; do
	tk-generate -q --model "$FIX/train/model" --prompt-ids "1 5 $v" --json --max-new-tokens $n
	echo "max-new-tokens $n: exit $?"
done
tk-generate -q --model "$FIX/train/model" --prompt-ids "1 5 $((v - 1))" --ids --max-new-tokens 1 |
	wc -w

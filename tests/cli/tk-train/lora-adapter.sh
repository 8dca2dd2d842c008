# --adapter continues an adapter that peft made (lora-train/start, B not
# zero): peft's trainable params line for it, its configuration kept in
# OUT, and the first step's loss as the Trainer logged it for the same
# adapter and blocks (test-lora-train compares every value and the weights).
tk-train --model "$FIX/train/model" --adapter "$FIX/lora-train/start" --data "$FIX/train/blocks" \
	--config "$FIX/lora-train/train-args.json" --no-shuffle --threads 1 -o out \
	>/dev/null 2>err || exit $?
ls out
want=$(sed -n 's/^start: //p' "$FIX/lora-train/trainable.txt")
[ -n "$want" ] && [ "$(grep -m1 "^trainable params:" err)" = "$want" ] && echo "peft's trainable params line"
for k in r lora_alpha lora_dropout use_rslora bias fan_in_fan_out; do
	cmp <(sed -n "/^  \"$k\"/,/[],]\$/p" out/adapter_config.json) \
		<(sed -n "/^  \"$k\"/,/[],]\$/p" "$FIX/lora-train/start/adapter_config.json") &&
		echo "same $k"
done
cmp <(sed -n '/"target_modules"/,/]/p' out/adapter_config.json) \
	<(sed -n '/"target_modules"/,/]/p' "$FIX/lora-train/start/adapter_config.json") &&
	echo same target_modules
grep -ao '"base_model\.model\.[A-Za-z0-9_.]*"' out/adapter_model.safetensors | sort | cmp - \
	<(grep -ao '"base_model\.model\.[A-Za-z0-9_.]*"' "$FIX/lora-train/start/adapter_model.safetensors" |
	  sort) && echo same tensors
tk=$(head -1 out/metrics.jsonl | grep -o '"loss":[0-9.]*' | cut -d: -f2)
peft=$(grep -m1 '"loss"' "$FIX/lora-train/expected/expected.json" | grep -o '[0-9][0-9.]*')
awk -v a="$tk" -v b="$peft" \
	'BEGIN { d = (a - b) / b; print (b > 0 && d < 1e-6 && d > -1e-6) ? "step 1 loss as peft" : a " vs " b }'

# DoRA (--use-dora) on an NF4 base from tk-quantize and on the fp32 model:
# OUT is a PEFT adapter with use_dora true and a lora_magnitude_vector
# beside each lora_A/lora_B (the keys peft saves; test-lora-train checks
# the values against the Trainer), training lowers the eval loss, and a
# run resumed from its step-2 checkpoint ends with the same bytes; the
# trainable params line is peft's (dora-train/trainable.txt).
tk-quantize -q "$FIX/train/model" -o nf4 --bnb-4bit-quant-type nf4 --bnb-4bit-use-double-quant \
	|| exit 90
args="--data $FIX/train/blocks --max-steps 4 --per-device-train-batch-size 2
	--learning-rate 2e-2 --logging-steps 1 --lora-r 4 --use-dora --eval-strategy steps
	--eval-steps 4 --save-strategy steps --save-steps 2 --no-shuffle --threads 1 -q"
tk-train --model nf4 $args --lora-target-modules c_attn,c_fc -o out >/dev/null || exit 1
grep -ao '"base_model\.model\.[A-Za-z0-9_.]*"' out/adapter_model.safetensors | sort
grep '"use_dora"' out/adapter_config.json
before=$(tk-train --eval-only --model nf4 --lora-r 4 --use-dora --data "$FIX/train/blocks" \
	--threads 1 -q | grep -o '"eval_loss": [0-9.]*' | cut -d' ' -f2)
after=$(grep -o '"eval_loss":[0-9.]*' out/metrics.jsonl | tail -1 | cut -d: -f2)
awk -v a="$before" -v b="$after" \
	'BEGIN { print (b + 0 > 0 && b + 0 < a + 0) ? "eval_loss went down" : "eval_loss " a " -> " b }'
tk-train --model "$FIX/train/model" $args -o straight >/dev/null || exit 2
mkdir resumed
cp -r straight/checkpoint-2 resumed/
tk-train --model "$FIX/train/model" $args -o resumed --resume-from-checkpoint latest \
	>/dev/null || exit 3
cmp straight/adapter_model.safetensors resumed/adapter_model.safetensors && echo same adapter
cmp straight/checkpoint-4/optimizer.safetensors resumed/checkpoint-4/optimizer.safetensors &&
	echo same optimizer state
# (use_dora from --config this time, as lora_r and the targets)
echo '{"lora_r": 4, "use_dora": true, "lora_target_modules": ["c_attn", "c_fc"]}' >cfg.json
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" --config cfg.json --max-steps 1 \
	--threads 1 -o one >/dev/null 2>err || exit 4
grep '"use_dora"' one/adapter_config.json
want=$(sed -n 's/^dora-r4: //p' "$FIX/dora-train/trainable.txt")
[ -n "$want" ] && [ "$(grep -m1 "^trainable params:" err)" = "$want" ] && echo "peft's trainable params line"

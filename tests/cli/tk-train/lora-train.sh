# LoRA with peft's defaults but r 4 (target c_attn on GPT-2): OUT is a PEFT
# adapter (config and lora_A/lora_B of each layer, no base weights) plus the
# tokenizer and metrics; the first stderr line is peft's
# print_trainable_parameters() line, which gen-lora-train-fixture.py
# recorded from peft 0.21 for LoraConfig(r=4) on this model.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" --max-steps 4 \
	--per-device-train-batch-size 2 --learning-rate 5e-3 --logging-steps 1 --lora-r 4 \
	--no-shuffle --threads 1 -o out >/dev/null 2>err || exit $?
ls out
want=$(sed -n 's/^r4: //p' "$FIX/lora-train/trainable.txt")
[ -n "$want" ] && [ "$(grep -m1 "^trainable params:" err)" = "$want" ] && echo "peft's trainable params line"
grep -ao '"base_model\.model\.[A-Za-z0-9_.]*"' out/adapter_model.safetensors | sort
grep -E '"(peft_type|task_type|r|lora_alpha|fan_in_fan_out|bias|init_lora_weights)"' \
	out/adapter_config.json
grep -A2 '"target_modules"' out/adapter_config.json
grep -c '"loss"' out/metrics.jsonl

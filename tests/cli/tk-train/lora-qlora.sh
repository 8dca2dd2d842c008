# QLoRA: LoRA on all linear layers of an NF4 (double quantization) base made
# by tk-quantize.  The base stays 4-bit and frozen: OUT holds only the
# adapters of the four Conv1D modules of each layer, whose
# base_model_name_or_path is the quantized directory; the trainable params
# line is the one peft 0.21 printed for LoraConfig(r=4,
# target_modules="all-linear") on this base loaded by transformers +
# bitsandbytes (gen-lora-train-fixture.py).
tk-quantize -q "$FIX/train/model" -o nf4 --bnb-4bit-quant-type nf4 --bnb-4bit-use-double-quant \
	|| exit 90
args="--model nf4 --data $FIX/train/blocks --max-steps 8 --per-device-train-batch-size 2
	--learning-rate 2e-2 --logging-steps 1 --lora-r 4 --lora-target-modules all-linear
	--eval-strategy steps --eval-steps 8 --save-strategy no --no-shuffle --threads 1"
tk-train $args -o out >/dev/null 2>err || exit $?
ls out
want=$(sed -n 's/^nf4-r4-all: //p' "$FIX/lora-train/trainable.txt")
[ -n "$want" ] && [ "$(grep -m1 "^trainable params:" err)" = "$want" ] && echo "peft's trainable params line"
grep -ao '"base_model\.model\.[A-Za-z0-9_.]*"' out/adapter_model.safetensors | sort
grep -E '"(base_model_name_or_path|r|lora_alpha)"' out/adapter_config.json
grep -A4 '"target_modules"' out/adapter_config.json
grep -c '"loss"' out/metrics.jsonl
# training lowers the eval loss of the 4-bit model (before: a fresh
# adapter, B = 0, computes what the base does)
before=$(tk-train --eval-only --model nf4 --lora-r 4 --data "$FIX/train/blocks" --threads 1 -q |
	grep -o '"eval_loss": [0-9.]*' | cut -d' ' -f2)
after=$(grep -o '"eval_loss":[0-9.]*' out/metrics.jsonl | tail -1 | cut -d: -f2)
awk -v a="$before" -v b="$after" \
	'BEGIN { print (b + 0 > 0 && b + 0 < a + 0) ? "eval_loss went down" : "eval_loss " a " -> " b }'
# gradient checkpointing (prepare_model_for_kbit_training's default) trains
# the same adapter
tk-train $args --gradient-checkpointing -q -o out-gc >/dev/null || exit 91
cmp out/adapter_model.safetensors out-gc/adapter_model.safetensors && echo same with checkpointing

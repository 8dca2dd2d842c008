# A LoRA run resumed from its step-3 adapter checkpoint ends with the same
# adapter bytes, the same optimizer state and the same log as the
# uninterrupted run (shuffled blocks, gradient accumulation, eval, LoRA
# dropout: its masks depend on the place in the run, not on the process).
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 10
	--per-device-train-batch-size 2 --gradient-accumulation-steps 2 --learning-rate 1e-2
	--weight-decay 0.1 --warmup-steps 3 --lr-scheduler-type cosine --eval-strategy steps
	--eval-steps 5 --logging-steps 1 --lora-r 4 --lora-alpha 16 --lora-dropout 0.1
	--lora-target-modules c_attn,c_fc --use-rslora
	--save-strategy steps --save-steps 3 --threads 1 -q"
tk-train $args -o straight >/dev/null || exit 1
ls straight/checkpoint-3
mkdir resumed
cp -r straight/checkpoint-3 resumed/
tk-train $args -o resumed --resume-from-checkpoint latest >/dev/null || exit 2
ls resumed | grep checkpoint
cmp straight/adapter_model.safetensors resumed/adapter_model.safetensors && echo same adapter
cmp straight/adapter_config.json resumed/adapter_config.json && echo same config
cmp straight/checkpoint-9/optimizer.safetensors resumed/checkpoint-9/optimizer.safetensors &&
	echo same optimizer state
strip() { sed -E 's/"(eval_|train_)(runtime|samples_per_second|steps_per_second|mem_peak_rss_mb)":[0-9.e+-]*,?//g' "$1"; }
cmp <(strip straight/metrics.jsonl) <(strip resumed/metrics.jsonl) && echo same log

# LoRA dropout masks are keyed by the seed and the micro-batch's place in
# the run, so a run resumed from a checkpoint ends with the same adapter
# bytes as an uninterrupted one.
set -e
args="--model $FIX/train/model --data $FIX/train/blocks --lora-r 4 --lora-dropout 0.2 --max-steps 12
	--save-steps 6 --logging-steps 6 --threads 1 -q"
tk-train $args -o a > /dev/null
tk-train $args -o b > /dev/null
rm -r b/checkpoint-12 b/adapter_model.safetensors
tk-train $args -o b --resume-from-checkpoint b/checkpoint-6 > /dev/null
cmp a/adapter_model.safetensors b/adapter_model.safetensors && echo same adapter
cmp a/checkpoint-12/optimizer.safetensors b/checkpoint-12/optimizer.safetensors && echo same optimizer

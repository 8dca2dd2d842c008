# --optim adamw_8bit: bitsandbytes' 8-bit state is saved in each checkpoint
# and resumed byte for byte, so a run resumed from its step-3 checkpoint
# ends with the same model bytes and log as the uninterrupted run.  The
# resumed run takes the optimizer from --config as paged_adamw_8bit, the
# same optimizer.  The start line gives the state's size.
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--save-strategy steps --save-steps 3 --threads 1"
tk-train $args --optim adamw_8bit -o straight 2>err >/dev/null || exit 1
grep -o 'adamw_8bit: optimizer state .*' err
ls straight | grep checkpoint
mkdir resumed
cp -r straight/checkpoint-3 resumed/
sed 's/"seed": 0,/"seed": 0, "optim": "paged_adamw_8bit",/' $FIX/train/train-args.json >args.json
tk-train $args --config args.json -q -o resumed --resume-from-checkpoint latest >/dev/null ||
	exit 2
cmp straight/model.safetensors resumed/model.safetensors && echo same model
cmp straight/checkpoint-9/optimizer.safetensors resumed/checkpoint-9/optimizer.safetensors &&
	echo same optimizer state
strip() { sed -E 's/"(eval_|train_)(runtime|samples_per_second|steps_per_second|mem_peak_rss_mb)":[0-9.e+-]*,?//g' "$1"; }
cmp <(strip straight/metrics.jsonl) <(strip resumed/metrics.jsonl) && echo same log
# the state under bitsandbytes' names: 8-bit codes for the tensors of 4096
# or more elements that are not embeddings (c_fc, mlp.c_proj), fp32 for the
# rest (wte: the Trainer keeps embeddings at 32 bits)
hdr() { n=$(od -An -tu8 -N8 "$1" | tr -d ' '); dd if="$1" bs=1 skip=8 count="$n" 2>/dev/null; }
hdr straight/checkpoint-3/optimizer.safetensors | grep -o '"[^"]*mlp.c_fc.weight.[a-z0-9]*":{"dtype":"[A-Z0-9]*"'
hdr straight/checkpoint-3/optimizer.safetensors | grep -o '"transformer.wte.weight.[a-z0-9]*":{"dtype":"[A-Z0-9]*"'
hdr straight/checkpoint-3/optimizer.safetensors | grep -o '"__metadata__":{[^}]*}'
# an AdamW checkpoint does not resume under the 8-bit optimizer
tk-train $args -q -o torch --max-steps 3 >/dev/null || exit 3
tk-train $args -q -o torch --optim adamw_8bit --resume-from-checkpoint latest >/dev/null
echo "exit $?"

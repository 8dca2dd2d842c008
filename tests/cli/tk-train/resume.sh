# A run resumed from its step-3 checkpoint ends with the same bytes as the
# uninterrupted run and the same log; --save-total-limit keeps the newest.
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--save-strategy steps --save-steps 3 --threads 1 -q"
tk-train $args -o straight >/dev/null || exit 1
ls straight | grep checkpoint
mkdir resumed
cp -r straight/checkpoint-3 resumed/
tk-train $args --save-total-limit 2 -o resumed --resume-from-checkpoint latest >/dev/null || exit 2
ls resumed | grep checkpoint
cmp straight/model.safetensors resumed/model.safetensors && echo same model
strip() { sed -E 's/"(eval_|train_)(runtime|samples_per_second|steps_per_second|mem_peak_rss_mb)":[0-9.e+-]*,?//g' "$1"; }
cmp <(strip straight/metrics.jsonl) <(strip resumed/metrics.jsonl) && echo same log

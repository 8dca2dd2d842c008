# --gradient-checkpointing (or the config key) recomputes activations in
# the backward pass: the same ops on the same inputs, so the model, the
# checkpoints and the log are identical to a run without it.
args="--model $FIX/train/model --data $FIX/train/blocks --save-strategy steps --save-steps 5
	--threads 1 -q"
tk-train $args --config "$FIX/train/train-args.json" -o plain >/dev/null || exit 1
tk-train $args --config "$FIX/train/train-args.json" --gradient-checkpointing -o flag \
	>/dev/null || exit 2
sed 's/^{/{"gradient_checkpointing": true,/' "$FIX/train/train-args.json" >gc.json
tk-train $args --config gc.json -o key >/dev/null || exit 3
strip() { sed -E 's/"(eval_|train_)(runtime|samples_per_second|steps_per_second|mem_peak_rss_mb)":[0-9.e+-]*,?//g' "$1"; }
for run in flag key; do
	cmp plain/model.safetensors $run/model.safetensors &&
		cmp plain/checkpoint-5/optimizer.safetensors $run/checkpoint-5/optimizer.safetensors &&
		cmp <(strip plain/metrics.jsonl) <(strip $run/metrics.jsonl) && echo "$run: same"
done

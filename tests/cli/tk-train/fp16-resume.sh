# --fp16 resumed from a checkpoint taken after a skipped step ends with the
# same bytes and log as the uninterrupted run: the loss scale, its growth
# tracker and the count of skipped steps (which holds back the scheduler
# and AdamW's step) come back from trainer_state.json; the run overflows
# before the checkpoint and again after it.
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--fp16 --initial-scale-power 22 --loss-scale-window 3 --save-strategy steps
	--save-steps 2 --threads 1 -q"
tk-train $args -o straight >/dev/null || exit 1
grep -q '"skipped_steps":	[1-9]' straight/checkpoint-2/trainer_state.json && echo skipped before step 2
mkdir resumed
cp -r straight/checkpoint-2 resumed/
tk-train $args -o resumed --resume-from-checkpoint latest >/dev/null || exit 2
cmp straight/model.safetensors resumed/model.safetensors && echo same model
strip() { sed -E 's/"(eval_|train_)(runtime|samples_per_second|steps_per_second|mem_peak_rss_mb)":[0-9.e+-]*,?//g' "$1"; }
cmp <(strip straight/metrics.jsonl) <(strip resumed/metrics.jsonl) && echo same log
times() { grep -vE '_(runtime|per_second)"' "$1"; }
cmp <(times straight/checkpoint-10/trainer_state.json) \
	<(times resumed/checkpoint-10/trainer_state.json) && echo same state

# reduce_lr_on_plateau lowers the rate after evaluations without
# improvement (torch's ReduceLROnPlateau, stepped with eval_loss after each
# evaluation as the Trainer does); its state travels in the checkpoint, so
# a run resumed from step 4 logs the same rates and ends with the same
# bytes.  Without an eval strategy it is refused, as TrainingArguments does.
args="--model $FIX/train/model --data $FIX/train/blocks --eval-data $FIX/train/blocks
	--max-steps 8 --logging-steps 1 --eval-strategy steps --eval-steps 1
	--learning-rate 0.05 --lr-scheduler-type reduce_lr_on_plateau
	--lr-scheduler-kwargs {\"patience\":0,\"factor\":0.5,\"threshold\":0.5}
	--save-strategy steps --save-steps 4 --threads 1 -q"
tk-train $args -o straight >/dev/null || exit 1
grep -o '"learning_rate":[0-9.e+-]*' straight/metrics.jsonl | cut -d: -f2 | sort -u -g -r | tr '\n' ' '; echo
mkdir resumed
cp -r straight/checkpoint-4 resumed/
tk-train $args -o resumed --resume-from-checkpoint latest >/dev/null || exit 2
cmp straight/model.safetensors resumed/model.safetensors && echo same model
strip() { sed -E 's/"(eval_|train_)(runtime|samples_per_second|steps_per_second|mem_peak_rss_mb)":[0-9.e+-]*,?//g' "$1"; }
cmp <(strip straight/metrics.jsonl) <(strip resumed/metrics.jsonl) && echo same log
tk-train --model $FIX/train/model --data $FIX/train/blocks --max-steps 2 -q \
	--lr-scheduler-type reduce_lr_on_plateau -o no-eval; echo "exit $?"

# The best checkpoint, as the Trainer keeps it (the decisions themselves are
# checked against transformers' code in test-best): with a rate that
# makes the eval loss rise at step 4 and then fall,
# --greater-is-better picks step 4; rotation keeps it beside the newest;
# --load-best-model-at-end writes its model as OUT's; trainer_state.json
# names it.  Early stopping with patience 1 ends the run at the first
# evaluation that is no better (step 4); --save-strategy best saves only
# at a new best; what the Trainer refuses is refused.
args="--model $FIX/train/model --data $FIX/train/blocks --eval-data $FIX/train/blocks
	--max-steps 12 --learning-rate 0.2 --eval-strategy steps --eval-steps 2 --save-steps 2
	--logging-steps 2 --threads 1 -q"
tk-train $args -o plain >/dev/null || exit 1
grep -o '"eval_loss":[0-9.]*' plain/metrics.jsonl | cut -d: -f2 | xargs printf '%.1f '; echo
tk-train $args --load-best-model-at-end --greater-is-better --save-total-limit 2 -o best \
	>/dev/null || exit 2
ls best | grep checkpoint | tr '\n' ' '; echo
cmp best/model.safetensors best/checkpoint-4/model.safetensors && echo output is checkpoint-4
cmp -s best/model.safetensors plain/model.safetensors || echo not the last step\'s model
grep -o '"best_[a-z_]*":[[:space:]]*[^,]*' best/checkpoint-12/trainer_state.json |
	sed -E 's/[[:space:]]+/ /' | awk '/best_metric/ { $2 = sprintf("%.1f", $2) } 1'
tk-train $args --early-stopping-patience 1 --metric-for-best-model loss -o early >/dev/null ||
	exit 3
ls early | grep checkpoint | tr '\n' ' '; echo
grep -o '"train_loss"' early/metrics.jsonl
grep -o '"early_stopping_patience_counter":[[:space:]]*[0-9]*' early/checkpoint-4/trainer_state.json |
	tr -d '\t'
mkdir early2
cp -r early/checkpoint-2 early2/
tk-train $args --early-stopping-patience 1 --metric-for-best-model loss -o early2 \
	--resume-from-checkpoint latest >/dev/null || exit 5
cmp early/model.safetensors early2/model.safetensors && echo resumed: stopped at the same step
tk-train $args --save-strategy best --metric-for-best-model eval_loss -o onbest >/dev/null ||
	exit 4
ls onbest | grep checkpoint | sort -t- -k2 -n | tr '\n' ' '; echo
tk-train $args --load-best-model-at-end --save-steps 3 -o bad 2>&1; echo "exit $?"
tk-train $args --metric-for-best-model accuracy --load-best-model-at-end -o bad 2>&1; echo "exit $?"
tk-train --model $FIX/train/model --data $FIX/train/blocks --max-steps 2 -q \
	--early-stopping-patience 2 --metric-for-best-model loss -o bad 2>&1; echo "exit $?"
test -e bad || echo no output

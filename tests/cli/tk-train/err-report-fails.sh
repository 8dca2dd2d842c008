# A run that fails before its first checkpoint leaves no event file (as it
# leaves no metrics.jsonl): here the loss turns NaN at the first step.
mkdir out
tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --learning-rate 1e30 \
	--max-grad-norm 0 --save-strategy no --max-steps 10 --threads 1 --report-to tensorboard \
	--logging-steps 1
rc=$?
find out | sort
exit $rc

# lr_scheduler_kwargs reach the schedule, given as --lr-scheduler-kwargs or
# as an object in --config (as TrainingArguments takes a dict): the logged
# rates of cosine_with_restarts with num_cycles 2 are the same both ways
# and differ from its default (1 cycle).  The rates themselves are checked
# against transformers in test-schedule.
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 8 --logging-steps 1
	--warmup-steps 2 --learning-rate 0.001 --lr-scheduler-type cosine_with_restarts
	--threads 1 -q"
rates() { grep -o '"learning_rate":[0-9.e+-]*' "$1/metrics.jsonl" | cut -d: -f2 | tr '\n' ' '; echo; }
tk-train $args -o default >/dev/null || exit 1
tk-train $args --lr-scheduler-kwargs '{"num_cycles": 2}' -o option >/dev/null || exit 2
printf '{"lr_scheduler_kwargs": {"num_cycles": 2}}\n' >args.json
tk-train $args --config args.json -o config >/dev/null || exit 3
[ "$(rates option)" = "$(rates config)" ] && echo option and config agree
[ "$(rates option)" != "$(rates default)" ] && echo num_cycles changes the rates
rates option
tk-train $args --lr-scheduler-kwargs '{"power": 2}' -o bad 2>&1 >/dev/null; echo "exit $?"
tk-train $args --lr-scheduler-type warmup_stable_decay -o bad 2>&1 >/dev/null; echo "exit $?"
tk-train $args --lr-scheduler-kwargs '[1]' -o bad 2>&1 >/dev/null; echo "exit $?"
test -e bad || echo no output

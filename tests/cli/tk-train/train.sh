# Fine-tunes the fixture model with the fixture's TrainingArguments JSON: OUT
# becomes a model directory with the tokenizer, one log line per step, two
# evaluations and a summary; stdout gets the final metrics.
tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" --config "$FIX/train/train-args.json" \
	--no-shuffle --threads 1 -o out || exit $?
ls out
grep -c '"loss"' out/metrics.jsonl
grep -c '"eval_loss"' out/metrics.jsonl
grep -c '"train_loss"' out/metrics.jsonl

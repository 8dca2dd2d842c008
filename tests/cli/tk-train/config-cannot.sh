# A TrainingArguments JSON that asks for what tk-train cannot do (upload to
# the Hub, wandb, torch.compile...) trains all the same, after one warning
# that names those keys; the same keys at their defaults (false, null, "")
# and hub_* without push_to_hub say nothing.  --report-to wandb on the
# command line is warned about alike.
run() {
	tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o "$1" --threads 1 \
		--max-steps 2 --per-device-train-batch-size 2 --save-strategy no "${@:2}" >/dev/null
}
cat > args.json <<'J'
{"push_to_hub": true, "hub_model_id": "me/quotes", "hub_token": null,
 "report_to": ["wandb", "tensorboard"], "torch_compile": true, "fsdp": "", "deepspeed": null,
 "learning_rate": 1e-4}
J
run out --config args.json 2>err
echo "exit $?"
grep -E 'warning|^tk-train: done' err | sed -E 's/[0-9.]+ tokens\/s/N tokens\/s/; s/, [0-9hms]+,/, T,/; s/train_loss [0-9.]+/train_loss X/'
ls out/runs | wc -l
echo "== at their defaults"
echo '{"push_to_hub": false, "hub_model_id": "me/quotes", "hub_strategy": "every_save",
 "torch_compile": false, "fsdp": [], "tf32": null, "report_to": "none"}' > quiet.json
run out2 --config quiet.json 2>err
echo "exit $?"
grep -c warning err
echo "== command line"
run out3 --report-to wandb --report-to mlflow 2>err
echo "exit $?"
grep warning err
run out4 --report-to wandbb 2>&1
echo "exit $?"

# report_to and logging_dir as --config keys (a TrainingArguments JSON), and
# the command line wins over them: the last --report-to given decides.
echo '{"report_to": ["tensorboard"], "logging_dir": "tb/run1", "logging_steps": 1}' > args.json
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 3 --save-strategy no -q --threads 1"
tk-train $args -o out1 --config args.json >/dev/null || exit 99
ls tb/run1 | sed -e "s/\.$(hostname)\./.HOST./" -e "s/[0-9][0-9]*/N/g"
grep -ao train/loss tb/run1/* | wc -l
ls out1
tk-train $args -o out2 --config args.json --report-to none >/dev/null || exit 98
tk-train $args -o out3 --report-to tensorboard --report-to none >/dev/null || exit 97
tk-train $args -o out4 >/dev/null || exit 96
ls tb/run1 | wc -l
ls out2 out3 out4 | grep -c runs
tk-train $args -o out5 --report-to all >/dev/null || exit 95
ls out5/runs/*/* | wc -l

# A --config key that is not a training argument is named.
echo '{"learning_rate": 1e-3, "report_to": ["none"], "lerning_rate_typo": 2}' > args.json
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --config args.json
rc=$?
ls
exit $rc

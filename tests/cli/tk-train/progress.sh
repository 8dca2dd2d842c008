# Progress when stderr is not a terminal: the PEFT line, then a line per
# logging step, eval results, checkpoints and a summary.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --max-steps 4 \
	--per-device-train-batch-size 4 --logging-steps 2 --save-steps 3 --eval-strategy epoch \
	--threads 1 >/dev/null

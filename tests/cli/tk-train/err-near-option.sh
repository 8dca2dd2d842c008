# A mistyped long option names the nearest known one; HfArgumentParser's
# snake_case spellings (--num_train_epochs) are the same options; a
# mistyped --config key names the nearest key.  Usage errors: exit 2.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --lora-rank 8
echo "exit $?"
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --max_steps 2 \
	--per_device_train_batch_size 2 --no_shuffle --threads 1 --save_strategy no -q >/dev/null
echo "exit $? (snake_case options)"
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out2 --num-train-epoch 1
echo "exit $?"
echo '{"num_train_epoch": 1}' > args.json
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out2 --config args.json
echo "exit $?"

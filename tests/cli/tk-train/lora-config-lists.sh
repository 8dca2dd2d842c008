# List options in a --config file and on the command line: the command line
# replaces the file's list (not appended to it); a list only in the file
# is taken.
printf '{"lora_target_modules": ["c_fc"], "max_steps": 1}\n' > cfg.json
tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" --config cfg.json --lora-r 2 \
	--lora-target-modules c_attn -o a > /dev/null || exit 1
tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" --config cfg.json --lora-r 2 \
	-o b > /dev/null || exit 1
tr -d ' \n' < a/adapter_config.json | grep -o '"target_modules":\[[^]]*\]'
tr -d ' \n' < b/adapter_config.json | grep -o '"target_modules":\[[^]]*\]'

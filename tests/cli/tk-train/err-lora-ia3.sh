# An adapter directory of another PEFT method (IA3) given to --adapter is
# named as unsupported (exit 1); nothing is written.
mkdir ia3
sed 's/"peft_type": "LORA"/"peft_type": "IA3"/' "$FIX/lora-train/start/adapter_config.json" \
	>ia3/adapter_config.json
grep -q '"IA3"' ia3/adapter_config.json || exit 90
cp "$FIX/lora-train/start/adapter_model.safetensors" ia3/
tk-train --model "$FIX/train/model" --adapter ia3 --data "$FIX/train/blocks" --max-steps 2 -q -o out
rc=$?
[ -e out ] && echo "out was left behind"
exit $rc

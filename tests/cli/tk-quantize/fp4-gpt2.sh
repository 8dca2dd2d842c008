# FP4 of the tiny gpt2 (Conv1D weights transposed before quantizing)
tk-quantize -q "$FIX/models/gpt2" -o q --bnb-4bit-quant-type fp4; echo "rc=$?"
for f in model.safetensors config.json generation_config.json; do
	cmp q/$f "$FIX/bnb/gpt2-fp4/$f" && echo "$f same"
done

# LLM.int8 rows: weight I8 + SCB + weight_format, as transformers saves them
tk-quantize -q "$FIX/models/llama" -o q --load-in-8bit; echo "rc=$?"
for f in model.safetensors config.json generation_config.json; do
	cmp q/$f "$FIX/bnb/llama-int8/$f" && echo "$f same"
done

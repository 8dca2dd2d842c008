# NF4 + double quantization of the tiny llama: the same bytes transformers +
# bitsandbytes saved (tests/parity/gen-bnb-fixtures.py)
tk-quantize "$FIX/models/llama" -o q --bnb-4bit-quant-type nf4 --bnb-4bit-use-double-quant \
	--bnb-4bit-compute-dtype bfloat16; echo "rc=$?"
for f in model.safetensors config.json generation_config.json; do
	cmp q/$f "$FIX/bnb/llama-nf4-dq/$f" && echo "$f same"
done
ls q

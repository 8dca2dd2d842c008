# Phi-3's fused qkv_proj and gate_up_proj quantized whole, NF4 + double
# quantization: the same bytes transformers + bitsandbytes saved
# (tests/parity/gen-bnb-fixtures.py phi3)
tk-quantize -q "$FIX/models/phi3" -o q --bnb-4bit-quant-type nf4 --bnb-4bit-use-double-quant \
	--bnb-4bit-compute-dtype bfloat16; echo "rc=$?"
for f in model.safetensors config.json generation_config.json; do
	cmp q/$f "$FIX/bnb/phi3-nf4-dq/$f" && echo "$f same"
done

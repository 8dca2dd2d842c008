# LLM.int8 of the tied, partial-rotary Phi-3 (fused weights): the same bytes
# transformers + bitsandbytes saved (tests/parity/gen-bnb-fixtures.py phi3)
tk-quantize -q "$FIX/models/phi3-partial" -o q --load-in-8bit; echo "rc=$?"
for f in model.safetensors config.json generation_config.json; do
	cmp q/$f "$FIX/bnb/phi3-partial-int8/$f" && echo "$f same"
done

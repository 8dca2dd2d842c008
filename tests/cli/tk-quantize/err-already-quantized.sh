# a quantized model is refused, and nothing is written
tk-quantize "$FIX/bnb/llama-nf4-dq" -o q; echo "rc=$?"
tk-quantize "$FIX/bnb/llama-int8" -o q --load-in-8bit; echo "rc=$?"
# also when config.json lost its quantization_config
mkdir m && cp "$FIX/bnb/llama-nf4-dq/model.safetensors" m/ && cp "$FIX/models/llama/config.json" m/
tk-quantize m -o q; echo "rc=$?"
ls

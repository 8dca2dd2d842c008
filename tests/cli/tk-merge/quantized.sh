# a 4-bit base is dequantized, merged and written in floating point, and
# tk-merge says so; --requantize nf4 quantizes the merged model again
tk-quantize -q "$FIX/models/llama" -o q4 --bnb-4bit-quant-type nf4 --bnb-4bit-use-double-quant
tk-merge -q -m q4 -a "$FIX/lora/llama-qv" -o m; echo "rc=$?"
ls m
grep -c quantization_config m/config.json
tk-merge -q -m q4 -a "$FIX/lora/llama-qv" -o m4 --requantize nf4; echo "rc=$?"
grep -c '"bnb_4bit_quant_type": "nf4"' m4/config.json

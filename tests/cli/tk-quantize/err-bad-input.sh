# unreadable or broken inputs: exit 1, a message naming the file or
# tensor, no output
tk-quantize missing -o q; echo "rc=$?"
mkdir m && echo '{"model_type": "llama", "dtype": "float32"}' > m/config.json
tk-quantize m -o q; echo "rc=$?"
# a weight holding infinity (F32 [2, 2]: 1, inf, 1, 1)
h='{"model.layers.0.mlp.up_proj.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}'
{ printf "\\x$(printf %02x ${#h})\\0\\0\\0\\0\\0\\0\\0%s" "$h"
  printf '\0\0\x80\x3f\0\0\x80\x7f\0\0\x80\x3f\0\0\x80\x3f'; } > m/model.safetensors
tk-quantize m -o q; echo "rc=$?"
tk-quantize m -o q --load-in-8bit; echo "rc=$?"
echo '{"model_type": "llama", "dtype": "float64"}' > m/config.json
tk-quantize m -o q; echo "rc=$?"
ls

# tensors that do not fit config.json are refused before anything is
# written, as from_pretrained refuses them (exit 1, the tensor named): a
# missing one, one of the wrong shape, a file of no tensors, and a
# model_type tk does not run
cp -r "$FIX/models/llama" m
sed 's/"intermediate_size": *[0-9]*/"intermediate_size": 96/' m/config.json >c && mv c m/config.json
tk-quantize m -o q; echo "rc=$?"
cp "$FIX/models/llama/config.json" m/
h='{"__metadata__":{"format":"pt"}}'
printf "\\x$(printf %02x ${#h})\\0\\0\\0\\0\\0\\0\\0%s" "$h" > m/model.safetensors
tk-quantize m -o q; echo "rc=$?"
sed 's/"model_type": *"llama"/"model_type": "bogus"/' "$FIX/models/llama/config.json" > m/config.json
tk-quantize m -o q; echo "rc=$?"
ls

# unreadable or broken inputs: exit 1, a message naming the file or
# tensor, no output
tk-quantize missing -o q; echo "rc=$?"
mkdir m && echo '{"model_type": "llama", "dtype": "float32"}' > m/config.json
tk-quantize m -o q; echo "rc=$?"
# a weight holding infinity: the fixture llama with element 1 of layer 0's
# up_proj (BF16) set to inf
cp "$FIX/models/llama/config.json" "$FIX/models/llama/model.safetensors" m/
hlen=$(od -An -tu8 -N8 m/model.safetensors | tr -d ' ')
off=$(head -c $((8 + hlen)) m/model.safetensors | tail -c "$hlen" |
	grep -o '"model.layers.0.mlp.up_proj.weight":{[^}]*}' |
	sed 's/.*"data_offsets":\[\([0-9]*\),.*/\1/')
printf '\x80\x7f' | dd of=m/model.safetensors bs=1 seek=$((8 + hlen + off + 2)) conv=notrunc status=none
tk-quantize m -o q; echo "rc=$?"
tk-quantize m -o q --load-in-8bit; echo "rc=$?"
echo '{"model_type": "llama", "dtype": "float64"}' > m/config.json
tk-quantize m -o q; echo "rc=$?"
ls

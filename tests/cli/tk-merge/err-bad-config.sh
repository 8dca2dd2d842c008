# a base whose config.json the forward pass cannot use is refused at load,
# naming the file and the key (exit 1), for each kind of bad value
for kv in '"rope_theta": 0' '"rms_norm_eps": -1e-6' '"num_key_value_heads": 4' \
	'"head_dim": 0' '"vocab_size": 2.5' '"hidden_size": 1e9'; do
	rm -rf b && mkdir b && cp "$FIX"/models/llama/* b/
	sed -i "s/^{/{ $kv,/" b/config.json
	tk-merge -q -m b -a "$FIX/lora/llama-qv" -o out; echo "rc=$?"
done

# peft's llama adapter (all-linear, rsLoRA, lm_head saved) merged in fp32;
# a GPT-2 base with a tokenizer: the tokenizer comes along; two weighted
# adapters one after the other
tk-merge --model "$FIX/models/llama" --adapter "$FIX/lora/llama-all" -o m --dtype float32
echo "rc=$?"
ls m
head -c 3000 m/model.safetensors | grep -ao '"dtype":"[A-Z0-9]*"' | sort | uniq -c
cp -r "$FIX/models/gpt2" base && cp "$FIX/gpt2/tokenizer.json" base/
tk-merge -q -m base -a "$FIX/lora/gpt2-mlp" -o g; echo "rc=$?"
ls g
head -c 3000 g/model.safetensors | grep -ao '"dtype":"[A-Z0-9]*"' | sort | uniq -c
tk-merge -m "$FIX/models/llama" -a "$FIX/lora/llama-qv:0.5" -a "$FIX/lora/llama-seven:-1.5" \
	-o two; echo "rc=$?"
ls

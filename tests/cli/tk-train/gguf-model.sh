# --model FILE.gguf: LoRA on the imported model; the adapter names the GGUF
# as its base, a resumed run (--model given again) ends with the same bytes
mkdir tmp && export TMPDIR=$PWD/tmp
printf 'the thin winter\nan inn: ther!\nthe winter inn\nthin ther\n' > t.txt
cat t.txt t.txt t.txt | tk-tokenize -q -t "$FIX/convert/llama.gguf" --split-lines |
	tk-pack -q --seq-len 8 -o blocks || exit 1
train() {
	tk-train -q --model "$FIX/convert/llama.gguf" --lora-r 2 --lora-target-modules q_proj \
		--data blocks --max-steps 4 --save-steps 2 --threads 1 "$@" > /dev/null
}
train -o ad || exit 2
grep -c '"base_model_name_or_path": ".*/convert/llama.gguf"' ad/adapter_config.json
mkdir again && cp -r ad/checkpoint-2 again/
train -o again --resume-from-checkpoint latest || exit 3
cmp ad/adapter_model.safetensors again/adapter_model.safetensors && echo "resumed to the same adapter"
ls tmp

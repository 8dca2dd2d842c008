# --model FILE.gguf: the merge equals the one on the converted directory
mkdir tmp && export TMPDIR=$PWD/tmp
tk-convert -q "$FIX/convert/llama.gguf" -o m --outtype f32 || exit 1
printf 'the thin winter\nan inn: ther!\nthe winter inn\nthin ther\n' > t.txt
cat t.txt t.txt t.txt | tk-tokenize -q -t m --split-lines | tk-pack -q --seq-len 8 -o blocks || exit 2
tk-train -q --model m --lora-r 2 --lora-target-modules q_proj,v_proj --data blocks -o ad \
	--max-steps 2 --threads 1 > /dev/null || exit 3
tk-merge -q --model "$FIX/convert/llama.gguf" --adapter ad -o a || exit 4
tk-merge -q --model m --adapter ad -o b || exit 5
cmp a/model.safetensors b/model.safetensors && echo "same merge"
ls a
ls tmp

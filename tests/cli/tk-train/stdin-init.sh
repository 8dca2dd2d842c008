# From scratch (--init) on blocks from a pipe: the stream is kept as
# OUT/data.tks, and a resumed run finds it without --data.
tk-train -q --init "$FIX/train/model/config.json" --tokenizer "$FIX/train/model" --data - \
	-o out --max-steps 4 --save-steps 2 --threads 1 < "$FIX/train/blocks/train-00000.tks" >/dev/null || exit 1
cmp out/data.tks "$FIX/train/blocks/train-00000.tks" && echo spilled
mkdir again && cp -r out/checkpoint-2 again/ && cp out/data.tks again/
tk-train -q --resume-from-checkpoint latest -o again --max-steps 4 --save-steps 2 --threads 1 >/dev/null || exit 2
cmp out/model.safetensors again/model.safetensors && echo same model
ls out

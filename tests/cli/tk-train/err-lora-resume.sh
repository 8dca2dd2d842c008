# Resuming an adapter checkpoint: --lora-* options that are its
# configuration are fine (the first command run again with
# --resume-from-checkpoint, as the pipelines do); others are refused
# (exit 2) rather than ignored, as are --lora-* options on a full-model
# checkpoint and --adapter: the checkpoint's configuration resumes.
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 4 --save-steps 2
	--threads 1 -q"
lora="--lora-r 4 --lora-alpha 16 --lora-target-modules c_attn,c_fc"
tk-train $args $lora -o out --max-steps 2 >/dev/null || exit 99
tk-train $args --max-steps 2 -o full >/dev/null || exit 98
for other in "$lora --lora-r 8" "--lora-r 4 --lora-target-modules c_attn,c_fc" \
	"$lora --lora-dropout 0.1" "$lora --use-rslora" "$lora --use-dora" "$lora --lora-bias all" \
	"--lora-r 4 --lora-alpha 16 --lora-target-modules c_attn"; do
	tk-train $args $other -o out --resume-from-checkpoint latest
	echo "exit $?"
done
tk-train $args --lora-r 4 -o full --resume-from-checkpoint latest
echo "exit $?"
tk-train $args --adapter out/checkpoint-2 -o out --resume-from-checkpoint out/checkpoint-2
echo "exit $?"
ls out | grep checkpoint
tk-train $args --lora-r 4 --lora-alpha 16 --lora-target-modules c_fc,c_attn -o out \
	--resume-from-checkpoint latest >/dev/null && echo resumed with the same options
ls out | grep checkpoint

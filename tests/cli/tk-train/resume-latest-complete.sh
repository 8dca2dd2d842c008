# --resume-from-checkpoint latest takes the newest checkpoint that is
# complete: a checkpoint-N that lacks a file (here one half deleted by an
# older tk killed while rotating) is never resumed from.  The leftovers of
# a rotation cut short (OUT/.deleting-checkpoint-N) are removed.
args="--model $FIX/train/model --data $FIX/train/blocks --save-steps 2 --threads 1 -q"
tk-train $args --max-steps 6 -o straight >/dev/null || exit 99
mkdir out
cp -r straight/checkpoint-2 straight/checkpoint-4 out/
rm out/checkpoint-4/trainer_state.json out/checkpoint-4/model.safetensors
cp -r straight/checkpoint-6 out/.deleting-checkpoint-6
tk-train $args --max-steps 6 -o out --resume-from-checkpoint latest >/dev/null || exit 1
cmp straight/model.safetensors out/model.safetensors && echo same model
ls -A out | grep checkpoint
rm -r out/checkpoint-2 out/checkpoint-6 out/checkpoint-4/optimizer.safetensors
tk-train $args --max-steps 6 -o out --resume-from-checkpoint latest

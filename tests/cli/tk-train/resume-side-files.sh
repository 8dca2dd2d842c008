# The tokenizer and generation files of checkpoints and OUT come from the
# model directory the run started from (trainer_state.json records it),
# not from the checkpoint it resumed: here --save-total-limit 1 removes the
# resumed checkpoint-4 while the run goes on, and checkpoint-8 still has
# them.  A side file the model directory had when the run started but has
# no more is an error naming it, not a checkpoint silently without it.
cp -r "$FIX/train/model" model
args="--model model --data $FIX/train/blocks --save-steps 2 --save-total-limit 1 --threads 1 -q"
tk-train $args -o out --max-steps 4 >/dev/null || exit 99
tk-train $args -o out --max-steps 8 --resume-from-checkpoint latest >/dev/null || exit 98
ls out/checkpoint-8
rm model/generation_config.json
tk-train $args -o out --max-steps 10 --resume-from-checkpoint latest
echo "exit $?"
ls out | grep checkpoint

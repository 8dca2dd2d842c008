# --neftune-noise-alpha adds noise to the input embeddings while training
# only: the trained model differs from a run without it, two runs with the
# same seed agree to the byte, a run resumed from step 3 ends with the same
# bytes (the noise is keyed by the micro-batch's place in the run), and
# evaluation sees no noise (eval_loss equal with and without).  The noise's
# range and variance are checked in test-backend-ops.
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 6 --learning-rate 0.01
	--save-steps 3 --logging-steps 3 --threads 1 -q"
tk-train $args -o plain >/dev/null || exit 1
tk-train $args --neftune-noise-alpha 5 -o a >/dev/null || exit 2
tk-train $args --neftune-noise-alpha 5 -o b >/dev/null || exit 3
cmp -s plain/model.safetensors a/model.safetensors || echo noise changes the model
cmp a/model.safetensors b/model.safetensors && echo same seed, same model
mkdir c
cp -r a/checkpoint-3 c/
tk-train $args --neftune-noise-alpha 5 -o c --resume-from-checkpoint latest >/dev/null || exit 4
cmp a/model.safetensors c/model.safetensors && echo resumed, same model
ev() { tk-train --eval-only --model a --data "$FIX/train/blocks" --threads 1 "$@" |
	grep -o '"eval_loss":[0-9.e+-]*'; }
[ "$(ev)" = "$(ev --neftune-noise-alpha 5)" ] && echo no noise in evaluation
tk-train $args --neftune-noise-alpha -1 -o bad 2>&1; echo "exit $?"

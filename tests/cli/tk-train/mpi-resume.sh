# Data parallel resume: 2 processes resumed from their step-3 checkpoint end
# with the bytes of the uninterrupted 2-process run.  A checkpoint resumed
# on another number of processes is refused (each step's data depends on
# it) and nothing is written.
. "$TK_ROOT/tests/cli/tk-train/mpi.bash"
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--save-strategy steps --save-steps 3 --threads 1 -q"
mpi_run 2 $args -o straight >/dev/null || exit 1
ls straight | grep checkpoint
grep -oE '"world_size":[[:space:]]*[0-9]+' straight/checkpoint-3/trainer_state.json | tr -d ' \t'
mkdir resumed single
cp -r straight/checkpoint-3 resumed/
cp -r straight/checkpoint-3 single/
mpi_run 2 $args -o resumed --resume-from-checkpoint latest >/dev/null || exit 2
cmp straight/model.safetensors resumed/model.safetensors && echo same model
cmp straight/checkpoint-9/optimizer.safetensors resumed/checkpoint-9/optimizer.safetensors &&
	echo same optimizer state
tk-train $args -o single --resume-from-checkpoint latest
echo "exit $?"
ls single
tk-train $args --max-steps 3 -o one >/dev/null || exit 3
mpi_run 2 $args -o one --resume-from-checkpoint latest >/dev/null 2>&1
echo "exit $?"
grep -m1 'resumed on' mpi.err
ls one | grep checkpoint

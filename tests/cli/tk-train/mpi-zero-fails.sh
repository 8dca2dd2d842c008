# ZeRO stage 1 failures end the whole run: rank 0 failing to save a
# checkpoint (a file size limit standing in for a full disk) while rank 1
# waits to send it its shard of the optimizer state exits 1 with rank 0's
# message within the timeout, and nothing is left.  A stage other than 0
# or 1 is bad usage, and nothing is written.
. "$TK_ROOT/tests/cli/tk-train/mpi.bash"
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--save-strategy steps --save-steps 3 --threads 1 -q"
timeout 120 "${mpi[@]}" -np 2 sh -c 'trap "" XFSZ; ulimit -f 100; exec tk-train "$@"' sh \
	$args --zero 1 -o full >/dev/null 2>full.err
rc=$?
grep -q 'this build has no MPI support' full.err &&
	{ echo "tk-train was built without MPI (no mpicc at build time)" >&3; exit 77; }
echo "full disk: exit $rc"
grep -m1 -o 'tk-train: full/checkpoint-3: cannot save checkpoint: model.safetensors: .*' full.err
[ -e full ] || echo 'full: removed, nothing was saved'
tk-train $args --zero 2 -o bad
echo "exit $?"
[ -e bad ] || echo 'bad: not created'

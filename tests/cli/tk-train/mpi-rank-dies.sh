# Data parallel failures end the whole run instead of leaving the other
# processes waiting in an all-reduce.  Rank 1 killed mid-run (the test hook
# TK_DIST_TEST_KILL=RANK:N kills it at its N-th all-reduce): mpirun fails
# within the timeout, and no final model is written.  Rank 0 alone failing
# (a checkpoint that cannot be saved, a file size limit standing in for a
# full disk) while rank 1 goes on to the next step: exit 1 with rank 0's
# message, within the timeout.
. "$TK_ROOT/tests/cli/tk-train/mpi.bash"
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--save-strategy steps --save-steps 3 --threads 1 -q"
TK_DIST_TEST_KILL=1:40 mpi_run 2 $args -o killed >/dev/null 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "killed: failed, did not hang"
grep -q 'rank 1 .*exited on signal 9' mpi.err && echo "mpirun names rank 1"
ls killed/model.safetensors 2>/dev/null
timeout 120 "${mpi[@]}" -np 2 sh -c 'trap "" XFSZ; ulimit -f 100; exec tk-train "$@"' sh \
	$args -o full >/dev/null 2>full.err
echo "full disk: exit $?"
grep -m1 -o 'tk-train: full/checkpoint-3: cannot save checkpoint: model.safetensors: .*' full.err
[ -e full ] || echo 'full: removed, nothing was saved'

# ZeRO stage 1 checkpoints: optimizer.safetensors is gathered to rank 0 in
# the layout --zero 0 writes (the same header; the state within 1e-6,
# observed the same bytes), and each process reads its shard back, so a
# --zero 1 checkpoint resumes with --zero 0 and a --zero 0 one with
# --zero 1, ending within 5e-5 of the uninterrupted runs (observed: the
# same bytes).  TK_TRAIN_TEST_ZERO_WIN cuts the gathers small.
. "$TK_ROOT/tests/cli/tk-train/mpi.bash"
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--save-strategy steps --save-steps 3 --threads 1 -q"
export TK_TRAIN_TEST_ZERO_WIN=500
mpi_run 2 $args -o plain >/dev/null || exit 1
mpi_run 2 $args --zero 1 -o zero >/dev/null || exit 2
ls zero | grep checkpoint
for c in 3 10; do
	d=$(maxdiff plain/checkpoint-$c/optimizer.safetensors zero/checkpoint-$c/optimizer.safetensors) ||
		exit 3
	within "$d" 1e-6 && echo "checkpoint-$c: optimizer state within 1e-6"
done
mkdir to-plain to-zero
cp -r zero/checkpoint-3 to-plain/
cp -r plain/checkpoint-3 to-zero/
mpi_run 2 $args -o to-plain --resume-from-checkpoint latest >/dev/null || exit 4
mpi_run 2 $args --zero 1 -o to-zero --resume-from-checkpoint latest >/dev/null || exit 5
d=$(maxdiff zero/model.safetensors to-plain/model.safetensors) || exit 6
within "$d" 5e-5 && echo "--zero 1 checkpoint resumed with --zero 0: within 5e-5"
d=$(maxdiff plain/model.safetensors to-zero/model.safetensors) || exit 7
within "$d" 5e-5 && echo "--zero 0 checkpoint resumed with --zero 1: within 5e-5"
d=$(maxdiff plain/checkpoint-9/optimizer.safetensors to-zero/checkpoint-9/optimizer.safetensors) ||
	exit 8
within "$d" 1e-6 && echo "and its checkpoint-9 optimizer state within 1e-6"

# Data parallel where a step's micro-batches do not divide among the
# processes: 29 blocks in batches of 2 are 15 micro-batches an epoch, so
# with 4 processes of accumulation 1 each epoch's last step has 3 and rank
# 0 computes none (its gradient is zero, it still takes part in the sums).
# The weights are those of 1 process with accumulation 4 within 5e-5
# (observed 7.8e-6), the same steps and epochs are logged.
. "$TK_ROOT/tests/cli/tk-train/mpi.bash"
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--save-strategy no --eval-strategy no --threads 1 -q"
mpi_run 4 $args --gradient-accumulation-steps 1 -o four >/dev/null || exit 1
tk-train $args --gradient-accumulation-steps 4 -o one >/dev/null || exit 2
d=$(maxdiff one/model.safetensors four/model.safetensors) || exit 3
within "$d" 5e-5 && echo "weights within 5e-5"
fields() { grep -v train_runtime "$1" | sed -E 's/.*"epoch":([0-9.e-]+),"step":([0-9]+).*/\1 \2/'; }
cmp <(fields one/metrics.jsonl) <(fields four/metrics.jsonl) && echo same steps and epochs

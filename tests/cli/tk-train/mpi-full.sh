# Data parallel, full fine-tuning: 2 processes with gradient accumulation 2
# train the model 1 process with accumulation 4 trains (the same global
# batches in the same order), up to fp32 summation order: after 10 steps at
# learning rate 5e-3 the weights differ by at most 5e-5 (observed 6.9e-6;
# 1 process with accumulation 2, a different batch, differs by 3e-2).  The
# logged steps and epochs are the same, the losses and eval losses agree to
# 1e-5, rank 0 alone writes OUT, and the start shows the global batch.
. "$TK_ROOT/tests/cli/tk-train/mpi.bash"
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--save-strategy no --threads 1"
mpi_run 2 $args -o two >/dev/null || exit 1
grep -h 'global batch' mpi.err
tk-train $args --gradient-accumulation-steps 4 -o one -q >/dev/null || exit 2
tk-train $args -o other -q >/dev/null || exit 3
ls two
d=$(maxdiff one/model.safetensors two/model.safetensors) || exit 4
within "$d" 5e-5 && echo "weights within 5e-5"
o=$(maxdiff one/model.safetensors other/model.safetensors) || exit 5
within "$o" 5e-5 || echo "a different batch is not"
fields() { grep -v train_runtime "$1" | sed -E 's/.*"epoch":([0-9.e-]+),"step":([0-9]+).*/\1 \2/'; }
cmp <(fields one/metrics.jsonl) <(fields two/metrics.jsonl) && echo same steps and epochs
losses() { grep -v train_runtime "$1" | grep -oE '"(eval_)?loss":[0-9.e-]+' | cut -d: -f2; }
paste <(losses one/metrics.jsonl) <(losses two/metrics.jsonl) |
	awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $1) bad++; n++ }
	     END { if (n == 12 && !bad) print "losses within 1e-5" }'

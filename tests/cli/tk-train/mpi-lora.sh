# Data parallel, LoRA with dropout: 2 processes with gradient accumulation 2
# train the adapter 1 process with accumulation 4 trains (each micro-batch
# gets the dropout mask it gets there), up to fp32 summation order: after
# 10 steps at learning rate 2e-2 the adapter weights differ by at most 5e-6
# (observed 6.8e-8; 1 process with accumulation 2 differs by 1e-1, and
# dropout masks drawn per process by 1.3e-1).  Rank 0 alone writes the PEFT
# adapter directory.
. "$TK_ROOT/tests/cli/tk-train/mpi.bash"
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--save-strategy no --eval-strategy no --threads 1 --lora-r 4 --lora-alpha 8
	--lora-dropout 0.1 --learning-rate 0.02"
mpi_run 2 $args -o two -q >/dev/null || exit 1
tk-train $args --gradient-accumulation-steps 4 -o one -q >/dev/null || exit 2
tk-train $args -o other -q >/dev/null || exit 3
ls two
cmp one/adapter_config.json two/adapter_config.json && echo same adapter_config.json
d=$(maxdiff one/adapter_model.safetensors two/adapter_model.safetensors) || exit 4
within "$d" 5e-6 && echo "adapter within 5e-6"
o=$(maxdiff one/adapter_model.safetensors other/adapter_model.safetensors) || exit 5
within "$o" 5e-6 || echo "a different batch is not"

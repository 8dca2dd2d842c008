# ZeRO stage 1, LoRA with dropout: the adapters' AdamW state sharded over
# 2 processes trains the adapter --zero 0 trains, and the adapter one
# process with twice the accumulation trains, within 5e-6 after 10 steps
# at learning rate 2e-2 (the tolerance of mpi-lora.sh; observed: the same
# bytes as --zero 0, 6.8e-8 from one process).
. "$TK_ROOT/tests/cli/tk-train/mpi.bash"
args="--model $FIX/train/model --data $FIX/train/blocks --config $FIX/train/train-args.json
	--save-strategy no --eval-strategy no --threads 1 --lora-r 4 --lora-alpha 8
	--lora-dropout 0.1 --learning-rate 0.02 -q"
TK_TRAIN_TEST_ZERO_WIN=100 mpi_run 2 $args --zero 1 -o z2 >/dev/null || exit 1
mpi_run 2 $args -o n2 >/dev/null || exit 2
tk-train $args --gradient-accumulation-steps 4 -o one >/dev/null || exit 3
ls z2
d=$(maxdiff n2/adapter_model.safetensors z2/adapter_model.safetensors) || exit 4
within "$d" 5e-6 && echo "adapter within 5e-6 of --zero 0"
d=$(maxdiff one/adapter_model.safetensors z2/adapter_model.safetensors) || exit 5
within "$d" 5e-6 && echo "adapter within 5e-6 of 1 process"

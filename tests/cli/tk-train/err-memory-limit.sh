# A run that the memory plan says does not fit under TK_DEVICE_MEMORY_LIMIT
# stops before it allocates gradients, optimizer state or activations,
# saying what it needs and what would fit (checkpointing with a smaller
# batch; checkpointing or a smaller batch); nothing is written.
args="--model $FIX/train/model --data $FIX/train/blocks -o out --max-steps 2 --threads 1 -q"
TK_DEVICE_MEMORY_LIMIT=920K tk-train $args
echo "exit $?"
TK_DEVICE_MEMORY_LIMIT=2100K tk-train $args
rc=$?
ls
exit $rc

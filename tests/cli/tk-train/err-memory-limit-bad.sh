# A TK_DEVICE_MEMORY_LIMIT that is not a byte count is a usage error.
TK_DEVICE_MEMORY_LIMIT=8GB tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" \
	-o out --max-steps 2 --threads 1
rc=$?
ls
exit $rc

# --eval-only evaluates the eval split of --data (as trainer.evaluate()) and
# writes nothing.
tk-train --eval-only --model "$FIX/train/model" --data "$FIX/train/blocks" \
	--per-device-eval-batch-size 3 --threads 1 || exit $?
ls

# --eval-data DIR without eval-*.tks (tk-pack -o without --eval-fraction):
# its train-*.tks are evaluated, with a note saying so; the loss is that of
# the same blocks given as a file.
mkdir only-train && cp "$FIX/train/blocks/train-00000.tks" only-train/
tk-train --eval-only --model "$FIX/train/model" --data "$FIX/train/blocks" --eval-data only-train \
	--threads 1 > dir.json || exit 1
tk-train -q --eval-only --model "$FIX/train/model" --data "$FIX/train/blocks" \
	--eval-data only-train/train-00000.tks --threads 1 > file.json || exit 2
cmp dir.json file.json && echo same loss
tk-train -q --eval-only --model "$FIX/train/model" --data "$FIX/train/blocks" \
	--eval-data "$FIX/train/blocks" --threads 1 > eval.json || exit 3
cmp -s dir.json eval.json || echo not the eval split

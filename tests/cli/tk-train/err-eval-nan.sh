# --eval-only with a model whose loss is not finite (the step-1 checkpoint
# of a run whose learning rate blew the weights up): the metrics line says
# null (JSON has no nan), and tk-train exits 1 saying why, as training stops.
tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --learning-rate 1e30 \
	--max-grad-norm 0 --save-steps 1 --max-steps 10 --threads 1 2>/dev/null && exit 99
tk-train --eval-only --model out/checkpoint-1 --data "$FIX/train/blocks" --threads 1

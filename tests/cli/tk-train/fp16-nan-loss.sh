# --fp16 with a learning rate of 1e30: step 1's update makes the weights
# too large for fp16, so from step 2 on the loss itself is inf or NaN.
# Where fp32 training stops (err-nan), fp16 skips those steps as
# GradScaler does (scale halved each time) and logs the loss as the
# Trainer's logging_nan_inf_filter does (the window's mean so far: 0 right
# after a log); the run ends normally with the skipped steps counted.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --fp16 \
	--learning-rate 1e30 --max-grad-norm 0 --max-steps 4 --save-steps 2 --logging-steps 1 \
	--threads 1 >/dev/null 2>err
echo "exit $?"
grep -o 'step [0-9]*: fp16 gradients overflowed.*' err
sed -nE 's/.*"loss":([0-9.e-]*),.*"step":([0-9]*)}/step \2 loss \1/p' out/metrics.jsonl
cmp -s out/checkpoint-2/model.safetensors out/model.safetensors && echo steps 3 and 4 left the weights
tr -d ' \t\n' <out/checkpoint-4/trainer_state.json | grep -oE '"skipped_steps":[0-9]+,"scaler":\{[^}]*\}'

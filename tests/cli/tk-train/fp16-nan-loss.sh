# --fp16 with a learning rate of 1e30: step 1's update makes the weights
# too large for fp16, so from step 2 on the loss itself is inf or NaN.
# Where fp32 training stops (err-nan), fp16 skips those steps as
# GradScaler does (scale halved each time) and logs the loss as the
# Trainer's logging_nan_inf_filter does (the window's mean so far: 0 right
# after a log); the run ends normally with the skipped steps counted.
#
# Step 1 sees the batches of the Trainer fixture's step 1 (batch 2 x
# accumulation 2, file order), so its loss is checked against the
# Trainer's fp32 loss there (tests/fixtures/train/expected/expected.json,
# gen-train-fixture.py).  Tolerance 1e-3 relative: fp16 operands carry
# 11 significant bits (relative rounding <= 2^-11 = 4.9e-4 each), fp32
# accumulation; the loss of a 4-block batch moves by a fraction of that.
# Seen: 4.0e-7 (OpenBLAS SkylakeX, Haswell, Prescott kernels).
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --fp16 \
	--learning-rate 1e30 --max-grad-norm 0 --max-steps 4 --save-steps 2 --logging-steps 1 \
	--per-device-train-batch-size 2 --gradient-accumulation-steps 2 --no-shuffle \
	--threads 1 >/dev/null 2>err
echo "exit $?"
grep -o 'step [0-9]*: fp16 gradients overflowed.*' err
want=$(tr -d ' \n' <"$FIX/train/expected/expected.json" | grep -oE '"loss":[0-9.e-]+' | head -1 | cut -d: -f2)
sed -nE 's/.*"loss":([0-9.e-]*),.*"step":([0-9]*)}/\2 \1/p' out/metrics.jsonl |
	awk -v want="$want" '$1 == 1 { d = ($2 - want) / want; if (d < 0) d = -d
		print "step 1 loss " (d < 1e-3 ? "within 1e-3 of the Trainer'"'"'s" : "differs: " $2 " vs " want); next }
		{ print "step " $1 " loss " $2 }'
cmp -s out/checkpoint-2/model.safetensors out/model.safetensors && echo steps 3 and 4 left the weights
tr -d ' \t\n' <out/checkpoint-4/trainer_state.json | grep -oE '"skipped_steps":[0-9]+,"scaler":\{[^}]*\}'

# --fp16 with a first loss scale of 2^22: step 1's scaled gradients
# overflow fp16, so it is skipped (weights as loaded, scheduler not
# stepped: step 2 logs the same learning rate), the scale halves, and
# training proceeds; with --loss-scale-window 2 the scale doubles after
# two good steps.  The scaler's state is in each checkpoint.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --fp16 \
	--initial-scale-power 22 --loss-scale-window 2 --save-steps 1 --max-steps 4 \
	--logging-steps 1 --learning-rate 0.005 --threads 1 >/dev/null 2>err || exit 1
grep -o 'step [0-9]*: fp16 gradients overflowed.*' err
cmp "$FIX/train/model/model.safetensors" out/checkpoint-1/model.safetensors && echo step 1 left the weights
cmp -s out/checkpoint-1/model.safetensors out/checkpoint-2/model.safetensors || echo step 2 changed them
sed -nE 's/.*"learning_rate":([0-9.e-]*),.*"step":([0-9]*)}/step \2 lr \1/p' out/metrics.jsonl
for i in 1 2 3 4; do
	printf 'checkpoint-%s: ' $i
	tr -d ' \t\n' <out/checkpoint-$i/trainer_state.json |
		grep -oE '"skipped_steps":[0-9]+,"scaler":\{[^}]*\}'
done

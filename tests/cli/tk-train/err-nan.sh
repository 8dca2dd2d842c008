# A learning rate of 1e30: the loss overflows, training stops naming the
# step, the checkpoint before it stays and no final model is written.
tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --learning-rate 1e30 \
	--max-grad-norm 0 --save-steps 1 --max-steps 10 --threads 1
rc=$?
ls out
exit $rc

# kill -9 at a random moment after the first checkpoint appears (possibly
# during a save), then --resume-from-checkpoint latest: the final model is
# byte-identical to an uninterrupted run's.
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 300 --save-steps 20
	--per-device-train-batch-size 4 --learning-rate 1e-3 --warmup-steps 0.1 --threads 1 -q"
tk-train $args -o straight >/dev/null || exit 1
tk-train $args -o killed >/dev/null &
pid=$!
for i in $(seq 1 2000); do
	ls killed 2>/dev/null | grep -qx 'checkpoint-[0-9]*' && break
	sleep 0.005
done
sleep "0.0$((RANDOM % 10))"
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
tk-train $args -o killed --resume-from-checkpoint latest >/dev/null || exit 2
cmp straight/model.safetensors killed/model.safetensors && echo same model
echo "$(ls killed | grep -c 'tmp-')"

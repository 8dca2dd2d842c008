# A checkpoint save that fails for lack of space (a file size limit stands
# in for a full disk: writes past it fail with EFBIG): exit 1 with a message
# naming the checkpoint, the file and the system error; the previous
# checkpoint stays intact, no temporary is left, and resuming from it once
# there is room ends with the model of an uninterrupted run.  The limits
# stop model.safetensors (180 KB), then optimizer.safetensors (360 KB).
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 6 --save-steps 3
	--per-device-train-batch-size 2 --threads 1 -q"
tk-train $args -o straight >/dev/null || exit 3
mkdir out
cp -r straight/checkpoint-3 out/
for kb in 100 250; do
	(trap '' XFSZ; ulimit -f $kb; tk-train $args -o out --resume-from-checkpoint latest)
	echo "exit $?"
done
ls out | grep checkpoint
diff -r straight/checkpoint-3 out/checkpoint-3 && echo checkpoint-3 intact
find out -name '*.tmp-*' -o -name '*.old-*'
tk-train $args -o out --resume-from-checkpoint latest >/dev/null || exit 4
cmp straight/model.safetensors out/model.safetensors && echo same model
diff -r straight/checkpoint-6 out/checkpoint-6 && echo same checkpoint-6

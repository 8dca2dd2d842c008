# use_cpu: true in a TrainingArguments JSON (and no_cuda, its older name)
# is --device cpu, over TK_DEVICE, with no warning; use_cpu: false leaves the
# device to TK_DEVICE, and --device on the command line still wins (a
# device name that does not exist shows which one was taken: exit 2).
run() {
	tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o "$1" --threads 1 \
		--max-steps 1 --per-device-train-batch-size 2 --save-strategy no "${@:2}" >/dev/null
}
echo '{"use_cpu": true}' > cpu.json
echo '{"no_cuda": true}' > nocuda.json
echo '{"use_cpu": false}' > off.json
TK_DEVICE=nosuch run o1 --config cpu.json 2>err
echo "use_cpu: exit $?, $(grep -c warning err) warnings"
TK_DEVICE=nosuch run o2 --config nocuda.json 2>err
echo "no_cuda: exit $?, $(grep -c warning err) warnings"
TK_DEVICE=nosuch run o3 --config off.json 2>/dev/null
echo "use_cpu false: exit $?"
run o4 --config cpu.json --device nosuch 2>/dev/null
echo "--device wins: exit $?"
exit 0

# --report-to tensorboard: one event file in OUT/runs/TIME_HOST/ named as
# TensorBoard expects, starting with the file_version record, with a record
# per logging step (train/loss...), per evaluation (eval/loss) and at the
# end (train/train_loss).  (The records are decoded and checked against
# metrics.jsonl with the tensorboard package in tests/parity/check-tboard.py.)
tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --max-steps 4 \
	--per-device-train-batch-size 4 --logging-steps 2 --eval-strategy steps --eval-steps 2 \
	--save-strategy no --threads 1 --report-to tensorboard >/dev/null || exit $?
host=$(hostname)
ls out/runs | wc -l
run=$(ls out/runs)
[[ $run == [A-Z][a-z][a-z][0-3][0-9]_[0-2][0-9]-[0-5][0-9]-[0-5][0-9]_"$host" ]] && echo "run name ok"
ls "out/runs/$run" | wc -l
f=$(ls out/runs/"$run"/*)
[[ ${f##*/} == events.out.tfevents.[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]."$host".[0-9]*.0 ]] &&
	echo "file name ok"
# the file_version record: length 24, then brain.Event:2 at byte 23
od -An -tu8 -N8 "$f" | tr -d ' '
dd if="$f" bs=1 skip=23 count=13 2>/dev/null; echo
for t in train/loss train/grad_norm train/learning_rate train/epoch train/tokens_per_second \
	 eval/loss eval/perplexity train/train_loss; do
	echo "$t $(grep -ao "$t" "$f" | wc -l)"
done

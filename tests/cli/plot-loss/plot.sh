# A tk-train run's metrics.jsonl drawn as a PNG: loss.png beside it by
# default (its path on stdout), or the file named.
tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --max-steps 6 \
	--per-device-train-batch-size 4 --logging-steps 1 --eval-strategy steps --eval-steps 3 \
	--save-strategy no --threads 1 >/dev/null || exit 99
"$TK_ROOT/pipelines/plot-loss" out/metrics.jsonl || exit $?
"$TK_ROOT/pipelines/plot-loss" out/metrics.jsonl curve.png || exit $?
for f in out/loss.png curve.png; do
	head -c 8 "$f" | od -An -tx1
	[ "$(stat -c %s "$f")" -gt 2000 ] && echo "$f: not empty"
done
ls | grep tmp | wc -l

# --bf16, --tf32 and --fp16 (also as the config keys bf16, tf32, fp16) train
# on the CPU, which emulates them: each run's weights differ from the fp32
# run's (the matmul operands were rounded) and from each other's, and
# training makes progress (the final loss is below the first logged one).
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 6 --logging-steps 1
	--learning-rate 0.005 --save-strategy no --threads 1 -q"
tk-train $args -o fp32 >/dev/null || exit 1
echo '{"bf16": true}' >bf16.json
echo '{"tf32": true}' >tf32.json
tk-train $args -o bf16 --config bf16.json >/dev/null || exit 2
tk-train $args -o tf32 --config tf32.json >/dev/null || exit 3
tk-train $args -o fp16 --fp16 >/dev/null || exit 4
for p in bf16 tf32 fp16; do
	cmp -s fp32/model.safetensors $p/model.safetensors || echo "$p differs from fp32"
done
cmp -s bf16/model.safetensors fp16/model.safetensors || echo bf16 differs from fp16
cmp -s tf32/model.safetensors fp16/model.safetensors || echo tf32 differs from fp16
for p in fp32 bf16 tf32 fp16; do
	sed -nE 's/.*"loss":([0-9.]*),.*"step":([0-9]*)}/\1/p' $p/metrics.jsonl |
		awk -v p=$p 'NR == 1 { first = $1 } END { print p, ($1 < first ? "learns" : "does not learn") }'
done

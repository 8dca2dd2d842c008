# The GPU conformance harness without a GPU: tests/run-gpu and
# tests/gpu/e2e.sh with TK_GPU_DUT=cpu (the "GPU side" on the CPU backend
# with 3 threads) pass and print their table: the end-to-end rows, the op
# rows of test-cuda-perf and the throughput rows.  A difference on the
# device side fails (tk-train there with another AdamW epsilon), and
# without the override the end-to-end script skips, or fails under
# TK_REQUIRE_GPU=1.  Skipped where a GPU is present.
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && { echo "a GPU is here" >&2; exit 77; }
TK_BIN=$(dirname "$(command -v tk-train)")
export TK_BIN
TK_GPU_DUT=cpu TK_GPU_MD=$PWD/table.md "$TK_ROOT/tests/run-gpu" e2e perf >out 2>&1
echo "run-gpu: exit $?, $(grep -E '^[0-9]+ passed' out)"
cmp -s table.md <(sed -n '/^### tk CUDA/,/^<\/details>/p' out) && echo "table.md is the table printed"
grep -c '^| device | CPU backend (TK_GPU_DUT=cpu)' table.md
# case and result of every end-to-end and op row
grep -E '\| (pass|FAIL) \|' table.md | awk -F' \\| ' '{ print $1 " |", $4 }'
# the throughput rows, each with a positive number
grep -E '\| (GFLOP/s|tokens/s.*) \|$' table.md | awk -F' \\| ' '$3 + 0 > 0 { print $1 " |", $4 }'
TK_GPU_DUT=cpu TK_GPU_E2E_TRAIN_ARGS="--adam-epsilon 1e-3" bash "$TK_ROOT/tests/gpu/e2e.sh" >bad
echo "epsilon 1e-3 on the device side: exit $?"
grep '^FAIL' bad | cut -d: -f1
bash "$TK_ROOT/tests/gpu/e2e.sh" | cut -d: -f1-2
echo "no GPU: exit ${PIPESTATUS[0]}"
TK_REQUIRE_GPU=1 bash "$TK_ROOT/tests/gpu/e2e.sh" | cut -d: -f1-2
echo "no GPU, TK_REQUIRE_GPU=1: exit ${PIPESTATUS[0]}"
TK_GPU_DUT=tpu bash "$TK_ROOT/tests/gpu/e2e.sh"
echo "TK_GPU_DUT=tpu: exit $?"

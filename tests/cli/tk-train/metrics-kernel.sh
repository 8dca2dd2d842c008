# metrics.jsonl's final entry names the CPU's GEMM kernel the run used:
# the one --version reports, or the one TK_CPU_KERNEL forced.
unset OPENBLAS_CORETYPE # tk's own choice is tested: a user's setting would win over it
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 1 -q --threads 1"
want=$(tk-train --version | sed -n 's/^gemm: OpenBLAS [0-9.]*, \([A-Za-z]*\) kernels.*/\1/p')
tk-train $args -o a >/dev/null
got=$(tail -1 a/metrics.jsonl | grep -o '"train_cpu_gemm_kernel":"[A-Za-z]*"' | cut -d'"' -f4)
[ -n "$got" ] && [ "$got" = "$want" ] && echo "default: the kernel --version names"
TK_CPU_KERNEL=prescott tk-train $args -o b >/dev/null
tail -1 b/metrics.jsonl | grep -o '"train_cpu_gemm_kernel":"[A-Za-z]*"'

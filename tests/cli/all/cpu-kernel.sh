# The GEMM kernel: chosen from the CPU's features, forced with
# TK_CPU_KERNEL (an unknown name is a usage error naming the choices),
# and a user's own OPENBLAS_CORETYPE wins over both; --version says which
# kernel runs and why.  (Prescott, SSE3, runs on every x86-64 CPU.)
unset OPENBLAS_CORETYPE # tk's own choice is tested: a user's setting would win over it
tk-pack --version >v
echo "exit $?"
sed -n '1s/ [0-9][0-9.]*$/ VERSION/p; 2s/^\(build: CPU\).*/\1.../p; 3s/^\(cpu: \).*\[.*\]$/\1MODEL [ISAS]/p' v
sed -n 's/^gemm: OpenBLAS [0-9.]*, [A-Za-z]* kernels (\(.*\))$/gemm: OpenBLAS, a kernel (\1)/p' v
grep -q '^kernels this CPU runs (TK_CPU_KERNEL):.* prescott$' v && echo "the list ends with prescott"
TK_CPU_KERNEL=prescott tk-pack --version | sed -n 's/^gemm: OpenBLAS [0-9.]*, //p'
OPENBLAS_CORETYPE=Prescott TK_CPU_KERNEL=haswell tk-pack --version | sed -n 's/^gemm: OpenBLAS [0-9.]*, //p'
# a run that computes: the library is loaded before the first GEMM
TK_CPU_KERNEL=prescott tk-generate --model "$FIX/train/model" --max-new-tokens 2 \
	--do-sample false "Hello" >/dev/null
echo "prescott: exit $?"
TK_CPU_KERNEL=fastest tk-generate --model "$FIX/train/model" --max-new-tokens 2 "Hello"
echo "unknown kernel: exit $?"

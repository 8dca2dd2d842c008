# --cpu-kernel and --cpu-isa, the command-line form of TK_CPU_KERNEL and
# TK_CPU_ISA in the tools that compute: they win over the variables, a bad
# name is a usage error naming the option, and a user's own
# OPENBLAS_CORETYPE still wins over the kernel.  (Prescott, SSE3, and the
# generic loops run on every x86-64 CPU.)
unset OPENBLAS_CORETYPE TK_CPU_ISA # tk's own choice is tested
for t in tk-train tk-generate tk-merge; do
	$t --help | grep -q -- '--cpu-kernel NAME' && $t --help | grep -q -- '--cpu-isa NAME' &&
		echo "$t: both in --help"
	$t --cpu-kernel prescott --cpu-isa generic --version |
		sed -n 's/^gemm: OpenBLAS [0-9.]*, /gemm: /p; s/^loops: \([a-z0-9]*\) .*/loops: \1/p'
done
TK_CPU_KERNEL=haswell tk-generate --cpu-kernel prescott --version | sed -n 's/^gemm: OpenBLAS [0-9.]*, /over the variable: /p'
TK_CPU_KERNEL=prescott tk-generate --cpu-kernel auto --version |
	sed -n 's/^gemm: OpenBLAS [0-9.]*, [A-Za-z]* kernels (\(.*\))$/auto over the variable: \1/p'
OPENBLAS_CORETYPE=Prescott tk-generate --cpu-kernel haswell --version | sed -n 's/^gemm: OpenBLAS [0-9.]*, /a user'"'"'s OPENBLAS_CORETYPE: /p'
# a run that computes with them
tk-generate --cpu-kernel prescott --cpu-isa generic --model "$FIX/train/model" \
	--max-new-tokens 2 --do-sample false "Hello" >/dev/null
echo "generate: exit $?"
tk-train --cpu-kernel prescott --model "$FIX/train/model" --data "$FIX/train/blocks" \
	--max-steps 1 -q --threads 1 -o a >/dev/null
echo "train: exit $?"
tail -1 a/metrics.jsonl | grep -o '"train_cpu_gemm_kernel":"[A-Za-z]*"'
tk-generate --cpu-kernel fastest --model "$FIX/train/model" --max-new-tokens 2 "Hello"
echo "unknown kernel: exit $?"
tk-train --cpu-isa avx3 --model "$FIX/train/model" --data "$FIX/train/blocks" -o b
echo "unknown level: exit $?"
[ ! -e b ] && echo "no output"
exit 0

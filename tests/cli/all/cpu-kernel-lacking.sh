# TK_CPU_KERNEL naming a kernel this CPU cannot run is refused before any
# GEMM (OpenBLAS kernels on a CPU without their instructions crash or
# compute wrong results), naming what it needs and the best kernel here.
# Skipped on a CPU that runs every kernel (an AMD Zen 4 does).
unset OPENBLAS_CORETYPE # tk's own choice is tested: a user's setting would win over it
all="cooperlake skylakex zen haswell sandybridge nehalem prescott"
runs=" $(tk-pack --version | sed -n 's/^kernels this CPU runs[^:]*://p') "
for k in $all; do
	[[ $runs == *" $k "* ]] || { lacking=$k; break; }
done
[ -n "${lacking:-}" ] || { echo "this CPU runs every kernel" >&2; exit 77; }
TK_CPU_KERNEL=$lacking tk-generate --model "$FIX/train/model" --max-new-tokens 2 "Hello" 2>err
echo "exit $?"
sed -E "s/the $lacking kernel/the KERNEL kernel/; s/needs [^;]*;/needs ISAS;/; s/best here is [a-z]+/best here is BEST/" err

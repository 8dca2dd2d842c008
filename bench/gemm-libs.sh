#!/bin/bash
# gemm-libs.sh - runs bench/gemm-libs.c for each CPU GEMM library in turn,
# ROUNDS times (default 5), and prints the median GFLOP/s of each library,
# precision and shape as a Markdown table (docs/CPU-KERNELS.md holds one).
#
#   MKL_DIR=.../mkl-*.data/data/lib SCIPY_OPENBLAS=.../libscipy_openblas.so \
#     BLIS=/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4 bench/gemm-libs.sh [ROUNDS]
#
# Libraries whose variable is unset are left out; oneDNN is Debian's
# libdnnl-dev, OpenBLAS Debian's libopenblas0 with the core type tk chooses
# (as bin/tk-pack --version names it; TK_CORETYPE to give another).  2
# threads (TK_BENCH_THREADS).
set -euo pipefail
rounds=${1:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
here=$(dirname "$0")
coretype=${TK_CORETYPE:-$("$here/../bin/tk-pack" --version 2>/dev/null |
	sed -n 's/^gemm: OpenBLAS [^,]*, \([A-Za-z]*\) kernels.*/\1/p')}
cc -O2 -o "$tmp/gemm-libs" "$here/gemm-libs.c" -ldnnl -ldl
export TK_BENCH_THREADS=${TK_BENCH_THREADS:-2}
export OMP_NUM_THREADS=$TK_BENCH_THREADS OPENBLAS_NUM_THREADS=$TK_BENCH_THREADS
for ((r = 0; r < rounds; r++)); do
	OPENBLAS_CORETYPE=$coretype \
		"$tmp/gemm-libs" openblas /usr/lib/x86_64-linux-gnu/libopenblas.so.0
	[[ -n ${SCIPY_OPENBLAS:-} ]] && "$tmp/gemm-libs" scipy "$SCIPY_OPENBLAS"
	[[ -n ${MKL_DIR:-} ]] && MKL_THREADING_LAYER=GNU LD_LIBRARY_PATH=$MKL_DIR \
		"$tmp/gemm-libs" mkl "$MKL_DIR/libmkl_rt.so.2"
	[[ -n ${BLIS:-} ]] && "$tmp/gemm-libs" blis "$BLIS"
	"$tmp/gemm-libs" onednn -
done | tee "$tmp/all" >&2
# median per (library, precision, shape)
awk '!/^#/ && $4 != "none" { k = $1 " " $2 " " $3; v[k] = v[k] " " $4; impl[k] = $5 }
END {
	for (k in v) {
		n = split(v[k], a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		med = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		split(k, f, " ")
		printf "| %s | %s | %s | %.1f | %d | %s |\n", f[1], f[2], f[3], med, n, impl[k]
	}
}' "$tmp/all" | sort >"$tmp/rows"
echo "| library | prec | M x N x K | GFLOP/s (median) | rounds | impl |"
echo "|---|---|---|---|---|---|"
cat "$tmp/rows"

/* blas.h - the CPU's GEMM and GEMV, with the kernel chosen by the CPU's
 * features.
 *
 * OpenBLAS is loaded at run time (dlopen), after tk has chosen its kernel
 * (OpenBLAS's "core type") from the instruction sets cpuid reports (cpu.h), never
 * from a table of CPU models: OpenBLAS 0.3.21 (Debian 12) does not know
 * CPUs newer than itself, and on a Sapphire Rapids Xeon it fell back to its
 * SSE3 kernels at a fifth of the speed.  OpenBLAS reads its core type once,
 * when it is loaded, so the choice must be made before that: hence dlopen
 * rather than linking it.
 *
 * Precedence: the user's own OPENBLAS_CORETYPE wins (tk leaves it alone);
 * else TK_CPU_KERNEL (or a tool's --cpu-kernel) names one of
 * tk_blas_kernels[] (one the CPU lacks is refused); else the best the CPU
 * runs.
 */
#ifndef TK_BLAS_H
#define TK_BLAS_H

#include <cblas.h>

#include "base/tk.h"

/* The kernels tk chooses among, best first, with the instruction sets
 * each needs. */
struct tk_blas_kernel {
	const char *name;     /* tk's name, lowercase: "skylakex" */
	const char *coretype; /* OPENBLAS_CORETYPE: "SkylakeX" */
	const char *needs;    /* e.g. "AVX-512 F/CD/BW/DQ/VL" */
	int (*cpu_has)(void);
};
extern const struct tk_blas_kernel tk_blas_kernels[];

/* Checks a kernel's name as TK_CPU_KERNEL (what: the setting's name, for
 * the message) takes it: *out is the kernel (NULL for "auto"), 0; or
 * TK_E_INVAL when no kernel has that name or this CPU cannot run it. */
int tk_blas_kernel_check(const char *what, const char *name, const struct tk_blas_kernel **out,
			 struct tk_diag *d);

/* Loads OpenBLAS with the kernel chosen as above (once per process; later
 * calls return the first call's result).  TK_E_INVAL when TK_CPU_KERNEL
 * names no kernel or one this CPU cannot run, TK_E_DEVICE when OpenBLAS
 * cannot be loaded; d says which and what to do. */
int tk_blas_init(struct tk_diag *d);

/* One line naming the library, its version and the kernel it runs, and why
 * ("OpenBLAS 0.3.21, SkylakeX kernels (chosen from the CPU's features)");
 * "" before a successful tk_blas_init. */
const char *tk_blas_describe(void);

/* The kernel in use as OpenBLAS names it ("SkylakeX"); "" before init. */
const char *tk_blas_kernel_name(void);

/* The best kernel of tk_blas_kernels[] this CPU runs. */
const struct tk_blas_kernel *tk_blas_best_kernel(void);

/* cblas_sgemm / cblas_sgemv of the loaded library (row-major only);
 * tk_blas_init must have succeeded. */
void tk_sgemm(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
	      const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void tk_sgemv(int m, int n, float alpha, const float *a, int lda, const float *x, int incx,
	      float beta, float *y, int incy);

/* openblas_set_num_threads of the loaded library (no-op before init). */
void tk_blas_set_threads(int n);

#endif

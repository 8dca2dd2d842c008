/* bf16.h - the CPU's bf16 matmuls: which path --bf16 takes, and the bf16
 * GEMM of the hardware path.
 *
 * Two paths compute a matmul of bf16 operands with fp32 accumulation:
 *
 *   hw       oneDNN's matmul primitive (Debian's libdnnl 2.6, loaded at run
 *            time) on bf16 operands, fp32 result.  oneDNN runs it with
 *            AVX512_BF16 or AMX instructions where the CPU has them; on a
 *            CPU without them it converts to fp32 itself (slowly), which is
 *            how the path is tested on such a CPU.
 *   emulate  operands rounded to bf16 and kept as fp32, then the fp32 GEMM
 *            (blas.h): exact products (two 8-bit significands fit fp32's
 *            24), fp32 sums.  The same values as hw up to the order of the
 *            fp32 sums.
 *
 * The path: the environment variable TK_BF16 (hw, emulate; auto or unset:
 * choose) forces one; else hw where cpuid reports AVX512_BF16
 * (CPUID.(EAX=7,ECX=1):EAX[5]) or AMX-BF16 (CPUID.(7,0):EDX[22], with the
 * OS saving tile state) and oneDNN loads and has a bf16 matmul, emulate
 * elsewhere (a missing libdnnl2 costs speed, not the run).  oneDNN itself
 * asks Linux for the AMX tile permission (arch_prctl ARCH_REQ_XCOMP_PERM).
 */
#ifndef TK_BF16_H
#define TK_BF16_H

#include "base/tk.h"

enum tk_bf16_path {
	TK_BF16_EMULATE = 0,
	TK_BF16_HW = 1,
};

/* The path TK_BF16 forces, else the one the CPU's features and oneDNN
 * allow (choosing loads oneDNN on a CPU with bf16 hardware).  Reads the
 * environment on each call (tests change it); an unknown value counts as
 * unset here and is refused by tk_bf16_check. */
enum tk_bf16_path tk_bf16_path(void);

/* 1 when the CPU (and OS) has bf16 matmul hardware: AVX512_BF16 or AMX. */
int tk_bf16_cpu_has(void);

/* Checks TK_BF16 and, for the hw path, loads oneDNN (once per process):
 * 0, or TK_E_INVAL (TK_BF16 names no path) / TK_E_DEVICE (TK_BF16=hw but
 * oneDNN cannot be loaded) with d saying which and what to do; TK_E_INVAL
 * too when TK_BF16=hw and oneDNN has no bf16 matmul for this CPU (one
 * without AVX-512).  Unforced, a oneDNN that fails is no error: the path
 * is emulate. */
int tk_bf16_check(struct tk_diag *d);

/* "hw" or "emulate" (static). */
const char *tk_bf16_path_name(enum tk_bf16_path p);

/* One line saying which path --bf16 takes here and why, e.g. "emulated:
 * operands rounded to bf16, fp32 arithmetic (this CPU has neither
 * AVX512_BF16 nor AMX)" or "oneDNN 2.6.3 bf16 matmul, avx512_core_amx
 * (chosen from the CPU's features)"; a failure to load oneDNN is named in
 * it, and so is the reason an unforced path on bf16 hardware emulates.  Loads oneDNN when the path is hw.  Static storage, rewritten by each
 * call. */
const char *tk_bf16_describe(void);

/* C = alpha op(A) op(B) + beta C, row major, with A and B bf16 codes
 * (tk_bf16_code), products and sums in fp32: op(A) [m,k] is A [m,k] (row
 * stride lda) or, when ta, A [k,m] transposed; op(B) [k,n] is B [k,n] or,
 * when tb, B [n,k] transposed.  threads: the OpenMP threads oneDNN uses
 * (<= 0: its default).  tk_bf16_check must have returned 0 with the hw
 * path.  Returns 0, or TK_E_DEVICE when oneDNN refuses the shape (d says
 * what it said). */
int tk_bf16_gemm(int ta, int tb, int m, int n, int k, float alpha, const unsigned short *a,
		 int lda, const unsigned short *b, int ldb, float beta, float *c, int ldc,
		 int threads, struct tk_diag *d);

#endif

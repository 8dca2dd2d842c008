/* backend-cpu-int.h - the CPU backend's matrix-vector products for decode
 * steps (backend-cpu-gemv.c), private to lib/compute.
 *
 * A decode step multiplies a few rows of activations (m <= 8: one per
 * sequence of the batch) by every weight matrix, so its time is the time to
 * read the weights: these loops stream each weight row once, from its fp32
 * values or its 4-bit codes, and use it for all m rows of x.  One thread
 * takes each slab of output rows (compute/pool.h, nt threads).  Each output is
 * summed in an order that depends on neither the thread count nor m nor the
 * position of its row in a group: per x row and weight row, one vector
 * accumulator (two for 4-bit: even and odd nibbles) over the columns in
 * order, then the tail, then a fixed horizontal sum.
 */
#ifndef TK_BACKEND_CPU_INT_H
#define TK_BACKEND_CPU_INT_H

#include <stddef.h>
#include <stdint.h>

#include "base/quant.h"
#include "compute/backend.h" /* struct tk_gemv_item */
#include "compute/cpu.h"

/* Rows of x the GEMV loops take at most per pass over the weight. */
#define TK_GEMV_MAX_ROWS 8

/* y[i ldy + r] = alpha sum_c x[i ldx + c] w[r ldw + c] (+ beta y[i ldy + r]
 * when beta != 0; beta 0 never reads y) for i < m, r < n: x W^T for a
 * row-major weight W [n, k].  Any m (in passes of TK_GEMV_MAX_ROWS); isa
 * (AVX2 or AVX-512: tk_cpu_gemv_f32_ok) picks the loops. */
int tk_cpu_gemv_f32_ok(enum tk_cpu_isa isa);
void tk_cpu_gemv_f32(enum tk_cpu_isa isa, int nt, int m, int n, int k, float alpha,
		     const float *x, size_t ldx, const float *w, size_t ldw, float beta, float *y,
		     size_t ldy);

/* tk_cpu_gemv_f32 (alpha 1) for rows row0 .. row0+n-1 of the half weight
 * q (TK_QK_BF16, TK_QK_F16: tk_cpu_gemv_half_ok) read as 16-bit values and
 * widened in the loops: the bits tk_cpu_gemv_f32 gives on q widened to
 * fp32.  x [m, q->cols]. */
int tk_cpu_gemv_half_ok(enum tk_cpu_isa isa, enum tk_qkind kind);
void tk_cpu_gemv_half(enum tk_cpu_isa isa, int nt, const struct tk_qweight *q, int64_t row0,
		      int n, int m, const float *x, float *y, size_t ldy, float beta);

/* Inner dimension up to which tk_cpu_thin takes a product (above it
 * OpenBLAS is as fast or faster: tk_cpu_thin_takes). */
#define TK_THIN_K_MAX 32

/* c[i ldc + j] = alpha sum_p a[i lda + p] op(B)[p, j] (+ beta c[i ldc + j]
 * when beta != 0; beta 0 never reads c) for i < m, j < n, p < k: a GEMM
 * whose inner dimension k is small (tk_cpu_thin_ok: 1 <= k <=
 * TK_THIN_K_MAX, AVX2 and FMA or AVX-512), such as LoRA's rank-r
 * products.  op(B) is B [k, n] (row stride ldb) or, with tb, B^T for B
 * [n, k].  Each element is one fused multiply-add chain over p in order,
 * then alpha times it plus beta c: the same bits at either isa and for
 * any nt (backend-cpu-thin.c). */
int tk_cpu_thin_ok(enum tk_cpu_isa isa, int k);

/* Whether tk_matmul's GEMMs (more than TK_GEMV_MAX_ROWS rows, A not
 * transposed) go to tk_cpu_thin: at beta 0 and k <= TK_THIN_K_MAX only.  Measured on
 * the 2-core Zen 3 here, 1024 rows, interleaved in one process, C in
 * cache: n 3072, beta 0: k 16 0.86 ms against OpenBLAS's 1.40 (which first
 * zeroes C in a pass of its own), k 32 1.55-1.69 against 1.93-2.29, k 64
 * 2.96-3.63 against 3.04-3.29; at beta 1 OpenBLAS was faster at every k
 * (k 16: 0.79-0.86 against 1.00-1.06 ms). */
static inline int tk_cpu_thin_takes(enum tk_cpu_isa isa, int k, float beta)
{
	return beta == 0.0f && tk_cpu_thin_ok(isa, k);
}
void tk_cpu_thin(enum tk_cpu_isa isa, int nt, int tb, int m, int n, int k, float alpha,
		 const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
		 size_t ldc);

/* Whether tk_cpu_qgemv4 takes q at this isa: NF4 or FP4 with cols and the
 * block size multiples of 64 (every 64 columns of a row then lie in one
 * block, at a byte boundary), AVX2 or AVX-512. */
int tk_cpu_qgemv4_ok(enum tk_cpu_isa isa, const struct tk_qweight *q);

/* Floats of workspace tk_cpu_qgemv4 needs for m rows of x. */
size_t tk_cpu_qgemv4_ws(const struct tk_qweight *q, int m);

/* y[i ldy + r] = sum_c x[i cols + c] W[row0 + r][c] (+ beta y) for i < m,
 * r < n, W the 4-bit weight q (tk_cpu_qgemv4_ok), straight from the packed
 * bytes.  AVX-512: each weight element with the bits tk_qweight_rows gives
 * (code * block absmax), one permute over the block's 16 values per 16
 * codes; AVX2: the codes' values looked up with vpshufb in byte tables,
 * each block's sum of code * x times its absmax (one rounding more per
 * product and per block).  The same bits for any nt.  ws:
 * tk_cpu_qgemv4_ws floats, 64-byte aligned (x reordered to the codes'
 * order). */
void tk_cpu_qgemv4(enum tk_cpu_isa isa, int nt, const struct tk_qweight *q, int64_t row0, int n,
		   int m, const float *x, float *y, int ldy, float beta, float *ws);

/* y_j = x W_j^T (as tk_cpu_gemv_f32 with alpha 1, beta 0, tk_cpu_gemv_half
 * or tk_cpu_qgemv4 with beta 0: the same bits) for the count <=
 * TK_GEMV_GROUP_MAX items of a group on one x [m, k], m <= TK_GEMV_MAX_ROWS,
 * fp32 and half weights in any mix, or all 4-bit of one kind, with k
 * columns: the blocks of all of them in one loop of the
 * pool.  ws: tk_cpu_qgemv4_ws floats for 4-bit (x reordered once).
 * Returns 0, or TK_E_UNSUPPORTED for a group it does not take. */
int tk_cpu_gemv_group(enum tk_cpu_isa isa, int nt, int m, int k, const float *x,
		      const struct tk_gemv_item *it, int count, float *ws);

#endif

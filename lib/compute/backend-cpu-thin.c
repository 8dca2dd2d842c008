/* backend-cpu-thin.c - see backend-cpu-int.h.
 *
 * C [m, n] = alpha A [m, k] op(B) (+ beta C) with k <= TK_THIN_K_MAX: the
 * rank-r products of LoRA (y = scale u B^T, dx = du A).  There is k times
 * less arithmetic than data to write, so the time is C's; at beta 0
 * OpenBLAS's GEMM first zeroes C in a pass of its own (tk_cpu_thin_takes
 * has the measurements and the rule).  Here
 * C is written once: jobs of a thread's slab of rows by THIN_NC columns, each packing
 * its columns of op(B) (k x THIN_NC, in L1) and holding 4 rows by two
 * vectors of sums in registers.  Every element is one fused multiply-add
 * chain over p = 0 .. k-1 from zero, then alpha times it added to beta C
 * (one more fused multiply-add): the same bits at AVX2 and AVX-512 and
 * for any thread count, row or column position.
 */
#include "compute/backend-cpu-int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TK_THIN_X86 1
#endif

/* Columns per job: its block of op(B) fills half of L1 at k 32. */
#define THIN_NC 256

int tk_cpu_thin_ok(enum tk_cpu_isa isa, int k)
{
#ifdef TK_THIN_X86
	return k >= 1 && k <= TK_THIN_K_MAX && isa >= TK_CPU_ISA_AVX2;
#else
	(void)isa, (void)k;
	return 0;
#endif
}

#ifdef TK_THIN_X86
/* bp [k, ncp] (ncp a multiple of 32, zeros past nc) = op(B)[:, j0 .. j0+nc). */
static void thin_pack(int tb, int k, int j0, int nc, int ncp, const float *b, size_t ldb,
		      float *bp)
{
	for (int p = 0; p < k; p++) {
		float *d = bp + (size_t)p * ncp;
		if (tb)
			for (int j = 0; j < nc; j++)
				d[j] = b[(size_t)(j0 + j) * ldb + p];
		else
			for (int j = 0; j < nc; j++)
				d[j] = b[(size_t)p * ldb + j0 + j];
		for (int j = nc; j < ncp; j++)
			d[j] = 0.0f;
	}
}

/* One register block: R (1 or 4) rows by two vectors of V floats from
 * column j, for the ISA whose intrinsics the macros name (VEC, ZERO,
 * LOADA, BCAST, FMA, MUL); the sums are plain variables, so that they stay
 * in registers. */
#define THIN_SUMS(R, V, VEC, ZERO, LOADA, BCAST, FMA)                                    \
	VEC s00 = ZERO(), s01 = ZERO(), s10 = ZERO(), s11 = ZERO();                      \
	VEC s20 = ZERO(), s21 = ZERO(), s30 = ZERO(), s31 = ZERO();                      \
	for (int p = 0; p < k; p++) {                                                    \
		VEC b0 = LOADA(bp + (size_t)p * ncp + j);                                \
		VEC b1 = LOADA(bp + (size_t)p * ncp + j + (V));                          \
		VEC x = BCAST(a + p);                                                    \
		s00 = FMA(x, b0, s00), s01 = FMA(x, b1, s01);                            \
		if ((R) > 1) {                                                           \
			x = BCAST(a + lda + p);                                          \
			s10 = FMA(x, b0, s10), s11 = FMA(x, b1, s11);                    \
			x = BCAST(a + 2 * lda + p);                                      \
			s20 = FMA(x, b0, s20), s21 = FMA(x, b1, s21);                    \
			x = BCAST(a + 3 * lda + p);                                      \
			s30 = FMA(x, b0, s30), s31 = FMA(x, b1, s31);                    \
		}                                                                        \
	}                                                                                \
	VEC sum[4][2] = { { s00, s01 }, { s10, s11 }, { s20, s21 }, { s30, s31 } };

/* c = alpha s (+ beta c) through the store STORE(cp, value) and load LOAD(cp). */
#define THIN_OUT(FMA, MUL, LOAD, STORE, s, cp)                                           \
	STORE(cp, beta == 0.0f	 ? MUL(va, s)                                            \
		  : beta == 1.0f ? FMA(va, s, LOAD(cp))                                  \
				 : FMA(va, s, MUL(vb, LOAD(cp))))

__attribute__((target("avx2,fma"), always_inline)) static inline void
thin_avx2_rows(const int R, int k, const float *a, size_t lda, const float *bp, int ncp, int nc,
	       float alpha, float beta, float *c, size_t ldc)
{
	static const int lanes[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
	for (int j = 0; j < nc; j += 16) {
		THIN_SUMS(R, 8, __m256, _mm256_setzero_ps, _mm256_load_ps, _mm256_broadcast_ss,
			  _mm256_fmadd_ps)
		const __m256 va = _mm256_broadcast_ss(&alpha), vb = _mm256_broadcast_ss(&beta);
		for (int h = 0; h < 2; h++) {
			int left = nc - (j + 8 * h);
			if (left <= 0)
				break;
			__m256i mk = _mm256_loadu_si256((const __m256i *)(lanes + 8 -
									  (left < 8 ? left : 8)));
			for (int r = 0; r < R; r++) {
				float *cp = c + (size_t)r * ldc + j + 8 * h;
				if (left >= 8) {
					THIN_OUT(_mm256_fmadd_ps, _mm256_mul_ps, _mm256_loadu_ps,
						 _mm256_storeu_ps, sum[r][h], cp);
				} else {
#define MLOAD(q) _mm256_maskload_ps(q, mk)
#define MSTORE(q, v) _mm256_maskstore_ps(q, mk, v)
					THIN_OUT(_mm256_fmadd_ps, _mm256_mul_ps, MLOAD, MSTORE,
						 sum[r][h], cp);
#undef MLOAD
#undef MSTORE
				}
			}
		}
	}
}

/* NAME: rows of C in blocks of 4 rows, then one at a time, by ROWS. */
#define THIN_ALL_ROWS(NAME, ROWS, TGT)                                                        \
	TGT __attribute__((noinline)) static void NAME(int rows, int k, const float *a,        \
						       size_t lda, const float *bp, int ncp,   \
						       int nc, float alpha, float beta,        \
						       float *c, size_t ldc)                   \
	{                                                                                     \
		int i = 0;                                                                    \
		for (; i + 4 <= rows; i += 4)                                                 \
			ROWS(4, k, a + (size_t)i * lda, lda, bp, ncp, nc, alpha, beta,        \
			     c + (size_t)i * ldc, ldc);                                       \
		for (; i < rows; i++)                                                         \
			ROWS(1, k, a + (size_t)i * lda, lda, bp, ncp, nc, alpha, beta,        \
			     c + (size_t)i * ldc, ldc);                                       \
	}

THIN_ALL_ROWS(thin_avx2, thin_avx2_rows, __attribute__((target("avx2,fma"))))

__attribute__((target("avx512f"), always_inline)) static inline __m512 thin_bcast512(const float *q)
{
	return _mm512_set1_ps(*q);
}

__attribute__((target("avx512f"), always_inline)) static inline void
thin_avx512_rows(const int R, int k, const float *a, size_t lda, const float *bp, int ncp,
		 int nc, float alpha, float beta, float *c, size_t ldc)
{
	for (int j = 0; j < nc; j += 32) {
		THIN_SUMS(R, 16, __m512, _mm512_setzero_ps, _mm512_load_ps, thin_bcast512,
			  _mm512_fmadd_ps)
		const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
		for (int h = 0; h < 2; h++) {
			int left = nc - (j + 16 * h);
			if (left <= 0)
				break;
			__mmask16 mk = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
			for (int r = 0; r < R; r++) {
				float *cp = c + (size_t)r * ldc + j + 16 * h;
#define MLOAD(q) _mm512_maskz_loadu_ps(mk, q)
#define MSTORE(q, v) _mm512_mask_storeu_ps(q, mk, v)
				THIN_OUT(_mm512_fmadd_ps, _mm512_mul_ps, MLOAD, MSTORE, sum[r][h],
					 cp);
#undef MLOAD
#undef MSTORE
			}
		}
	}
}

THIN_ALL_ROWS(thin_avx512, thin_avx512_rows, __attribute__((target("avx512f"))))
#endif

void tk_cpu_thin(enum tk_cpu_isa isa, int nt, int tb, int m, int n, int k, float alpha,
		 const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
		 size_t ldc)
{
#ifdef TK_THIN_X86
	/* a slab of rows per thread, so that each packs a block of op(B) once */
	int mb = ((m + nt - 1) / nt + 3) / 4 * 4;
	int mj = (m + mb - 1) / mb, nj = (n + THIN_NC - 1) / THIN_NC;
	int jobs = mj * nj, wide = isa >= TK_CPU_ISA_AVX512;
#pragma omp parallel for num_threads(nt) schedule(static) if (jobs > 1 && (long)m * n >= 16384)
	for (int job = 0; job < jobs; job++) {
		float bp[TK_THIN_K_MAX * THIN_NC] __attribute__((aligned(64)));
		int i0 = job / nj * mb, j0 = job % nj * THIN_NC;
		int rows = m - i0 < mb ? m - i0 : mb;
		int nc = n - j0 < THIN_NC ? n - j0 : THIN_NC, ncp = (nc + 31) / 32 * 32;
		thin_pack(tb, k, j0, nc, ncp, b, ldb, bp);
		if (wide)
			thin_avx512(rows, k, a + (size_t)i0 * lda, lda, bp, ncp, nc, alpha, beta,
				    c + (size_t)i0 * ldc + j0, ldc);
		else
			thin_avx2(rows, k, a + (size_t)i0 * lda, lda, bp, ncp, nc, alpha, beta,
				  c + (size_t)i0 * ldc + j0, ldc);
	}
#else
	(void)isa, (void)nt, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda;
	(void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
#endif
}

/* backend-cpu-gemv.c - see backend-cpu-int.h.
 *
 * fp32 (and bf16/fp16 weights, widened to fp32 as they are loaded, in the
 * same loops: WT): each pass takes NR weight rows and MR <= 8 rows of x; per column
 * chunk (16 floats with AVX-512, 8 with AVX2) NR weight loads and MR x
 * loads feed MR * NR fused multiply-adds, so the weights are read from
 * memory once and x from L1, each x chunk once (XREG).  NR is chosen so
 * that the MR * NR accumulators fit the registers (32 zmm, 16 ymm).
 * Output rows go to threads in blocks of GEMV_BLOCK (a strip of blocks
 * per thread: tk_pool_for_strips), each read in column
 * panels that keep x's part in L1 (f32_panel), the accumulators kept
 * between panels: a row's sum has the same order whichever pass, block or
 * panel computes it.
 *
 * 4-bit, AVX-512: per 64 columns (32 bytes) of a weight row, the bytes are
 * widened to 16 16-bit lanes of 4 codes; in lane j the 4 nibbles are
 * elements 4j+1, 4j, 4j+3, 4j+2 of the 64, so a shift by 0, 4, 8, 12 puts
 * each in the lane's low bits, and one permute over the block's 16 values
 * (code * absmax, the bits tk_qweight_rows gives) turns 16 codes into 16
 * weights.  Two weight rows go side by side, so each chunk of x loaded
 * feeds both, and each dequantized chunk feeds all m <= 8 rows of x.
 * AVX2 (whose permute over 8 floats runs on one port only on Intel):
 * vpshufb over byte tables of the unscaled codes, q4_span256.  x is
 * reordered once per call to the order the weights come out in (ws), so
 * no weight is ever shuffled back; the blocks' absmax are looked up once
 * per row block and panel (q4_amc), not in the loops.
 */
#include "compute/backend-cpu-int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TK_GEMV_X86 1
#endif
#include <string.h>

#include "base/quant-common.h"
#include "compute/pool.h"

/* Weight elements per call below which one thread does it all. */
#define GEMV_PAR_MIN (1L << 15)
/* Output rows per block handed to a thread (a multiple of every NR). */
#define GEMV_BLOCK 48

/* ---- fp32 ---- */

/* Prefetch: bytes of weights ahead that the loops for F32_PF_MR rows of x
 * and more ask for (the hardware's own prefetch keeps too few lines in
 * flight for loops that spend MR multiply-adds on each weight chunk;
 * measured on the Zen 5 here, out of cache, 2 threads: m = 8 1.2-1.6x
 * faster with it, m = 4 a little, m = 1 and 2 slower). */
#define F32_PF 8192
#define F32_PF_MR 3
/* The AVX2 loops prefetch 16-bit weights (WT_BF16, WT_F16) for every m:
 * measured on a 2-core Zen 3, SmolLM2-135M in bf16 at batch 1, 51.5 ->
 * 59.5 tokens/s (three runs each), where fp32 weights at m = 1 lost with
 * it (47.7 -> 45.0) read 4 rows side by side; read one row at a time
 * (F32_ROW1_BYTES) they gain 3-8% on the same Zen 3 (rows of 576 and 512,
 * 2 threads, alternating in one process; less in whole decode steps,
 * below), so those prefetch too.  The AVX-512 loops keep F32_PF_MR (not
 * measured). */
/* fp32 rows of weights shorter than this many bytes go through the AVX2
 * loop for one row of x one weight row at a time (NR 1: one stream of
 * memory per thread, prefetched) instead of 4 side by side (4 streams of
 * at most 40 cache lines each).  Measured on a 2-core Zen 3, 2 threads,
 * out of cache, the two loops alternating in one process: rows of 576
 * (SmolLM2-135M's hidden size) 2-8% faster, of 512 10-15%; rows of 768
 * even, of 1024 10% slower.  In SmolLM2-135M's decode steps (all
 * variants alternating token by token in one process) the gain shrank to
 * 0-3%.  bf16 rows of 576 and 768, 14-20% faster alone, were as often
 * slower as faster there, so 16-bit weights keep NR 4.  The same bits
 * either way (the order of a row's sum does not depend on NR). */
#define F32_ROW1_BYTES 2560
/* Bytes of x's MR rows a column panel holds at most: the panels split k
 * evenly, in multiples of 16 columns.  Measured at m = 8, 2 threads, out
 * of cache (Zen 5 here): 4096x4096 1.7x faster (AVX2) and 1.2x (AVX-512)
 * than whole rows, whose 8 rows of x 16 KiB apart fight over L1's sets;
 * 1B Llama shapes about even (2048x5632 15% slower at AVX2, the others a
 * little faster); 16 and 24 KiB no better. */
#define F32_PANEL_BYTES 32768
static inline int f32_panel(int mr, int k)
{
	long bytes = (long)k * mr * (long)sizeof(float);
	long np = bytes > F32_PANEL_BYTES ? (bytes + F32_PANEL_BYTES - 1) / F32_PANEL_BYTES : 1;
	long kc = ((k + np - 1) / np + 15) & ~15L;
	return (int)(kc < k ? kc : k);
}

/* y = alpha s (+ beta y), as sgemv writes it. */
static inline void put(float *y, float s, float alpha, float beta)
{
	*y = beta == 0.0f ? alpha * s : alpha * s + beta * *y;
}

#ifdef TK_GEMV_X86
#define AI __attribute__((always_inline)) static inline

/* The most weight rows a pass of the fp32 loops takes (the F32_512 and
 * F32_256 instances below). */
#define F32_NR 4
/* x's chunk in a register for all NR weight rows: left to itself, gcc
 * folds the load into each row's multiply-add, NR loads of the same chunk
 * that outnumber the multiply-adds' ports (measured on the Zen 5 here: m =
 * 8 at half the rate, in cache and out of it). */
#define XREG(v) __asm__("" : "+v"(v))

#define TGT512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
#define TGT256 __attribute__((target("avx2,fma,f16c")))

/* The weights' element type (WT): fp32, or a checkpoint's 16-bit floats
 * (tk_qweight kinds TK_QK_BF16, TK_QK_F16) widened to fp32 as they are
 * loaded, which is exact: the same products and sums, the same bits, from
 * half the bytes. */
enum { WT_F32, WT_BF16, WT_F16 };
AI size_t wt_size(const int WT)
{
	return WT == WT_F32 ? sizeof(float) : sizeof(uint16_t);
}

/* 16 weights from element i of w. */
TGT512 AI __m512 wload512(const int WT, const void *w, size_t i)
{
	const __m256i *h = (const __m256i *)((const uint16_t *)w + i);

	if (WT == WT_BF16)
		return _mm512_castsi512_ps(
			_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(h)), 16));
	if (WT == WT_F16)
		return _mm512_cvtph_ps(_mm256_loadu_si256(h));
	return _mm512_loadu_ps((const float *)w + i);
}

/* The weights of the lanes in mask from element i of w, 0 in the others. */
TGT512 AI __m512 wtail512(const int WT, __mmask16 mask, const void *w, size_t i)
{
	const uint16_t *h = (const uint16_t *)w + i;

	if (WT == WT_BF16)
		return _mm512_castsi512_ps(_mm512_slli_epi32(
			_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, h)), 16));
	if (WT == WT_F16)
		return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, h));
	return _mm512_maskz_loadu_ps(mask, (const float *)w + i);
}

/* MR rows of x times NR rows of w over columns [c0, c1), 16 at a time: the
 * accumulators start at zero (c0 = 0) or from part[r][i], and go back to
 * part unless c1 = k, where they are summed into s[i][r].  w: elements of
 * type WT, rows ldw elements apart; pf: prefetch distance in elements. */
TGT512 AI void f32_block512(const int WT, const int MR, const int NR, int c0, int c1, int k,
			    const float *x, size_t ldx, const void *w, size_t ldw, size_t pf,
			    __m512 part[][TK_GEMV_MAX_ROWS], float s[TK_GEMV_MAX_ROWS][F32_NR])
{
	__m512 acc[TK_GEMV_MAX_ROWS][F32_NR];
	const int k16 = c1 & ~15;
	const __mmask16 tail = (__mmask16)((1u << (c1 & 15)) - 1);
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			acc[i][r] = c0 ? part[r][i] : _mm512_setzero_ps();
	for (int c = c0; c < k16; c += 16) {
		__m512 wv[F32_NR];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			if (MR >= F32_PF_MR)
				_mm_prefetch((const char *)w + (r * ldw + c + pf) * wt_size(WT),
					     _MM_HINT_T0);
			wv[r] = wload512(WT, w, r * ldw + c);
		}
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++) {
			__m512 xv = _mm512_loadu_ps(x + i * ldx + c);
			XREG(xv);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
		}
	}
	if (tail) {
		__m512 wv[F32_NR];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			wv[r] = wtail512(WT, tail, w, r * ldw + k16);
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++) {
			__m512 xv = _mm512_maskz_loadu_ps(tail, x + i * ldx + k16);
			XREG(xv);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
		}
	}
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			if (c1 < k)
				part[r][i] = acc[i][r];
			else
				s[i][r] = _mm512_reduce_add_ps(acc[i][r]);
		}
}

/* Rows [r0, r1) (at most GEMV_BLOCK) of the output for MR rows of x, NR
 * weight rows a pass (the last n % NR one at a time), in column panels of
 * f32_panel so that x's panel stays in L1 while every row's part of it
 * is read; each output's accumulators carry over from panel to panel
 * (part), so its sum has the same order whatever MR, NR and the panels. */
#define F32_ROWS(NAME, BLOCK, VEC, TGT)                                                       \
	TGT AI void NAME(const int WT, const int MR, const int NR, int r0, int r1, int k,     \
			 float alpha, const float *x, size_t ldx, const void *w, size_t ldw,  \
			 float beta, float *y, size_t ldy)                                    \
	{                                                                                     \
		VEC part[GEMV_BLOCK][TK_GEMV_MAX_ROWS];                                       \
		float s[TK_GEMV_MAX_ROWS][F32_NR];                                            \
		/* prefetch: the same columns of the rows a pass at least F32_PF        \
		 * bytes ahead reads (rows follow each other in memory) */              \
		const size_t pb = NR * ldw * wt_size(WT);                                     \
		const size_t pf = MR < F32_PF_MR && WT == WT_F32 && NR > 1                    \
					  ? 0                                                 \
					  : (F32_PF + pb - 1) / pb * NR * ldw;                \
		const int kc = f32_panel(MR, k);                                              \
		int c0 = 0;                                                                   \
		do { /* once for k = 0: the outputs are alpha 0 + beta y */             \
			const int c1 = k - c0 <= kc ? k : c0 + kc;                            \
			int r = r0;                                                           \
			for (; r + NR <= r1; r += NR) {                                       \
				BLOCK(WT, MR, NR, c0, c1, k, x, ldx,                          \
				      (const char *)w + (size_t)r * ldw * wt_size(WT), ldw,    \
				      pf, part + (r - r0), s);                                \
				if (c1 == k)                                                  \
					for (int i = 0; i < MR; i++)                          \
						for (int j = 0; j < NR; j++)                  \
							put(y + (size_t)i * ldy + r + j,      \
							    s[i][j], alpha, beta);            \
			}                                                                     \
			for (; r < r1; r++) {                                                 \
				BLOCK(WT, MR, 1, c0, c1, k, x, ldx,                           \
				      (const char *)w + (size_t)r * ldw * wt_size(WT), ldw,    \
				      pf, part + (r - r0), s);                                \
				if (c1 == k)                                                  \
					for (int i = 0; i < MR; i++)                          \
						put(y + (size_t)i * ldy + r, s[i][0], alpha,  \
						    beta);                                    \
			}                                                                     \
			c0 = c1;                                                              \
		} while (c0 < k);                                                             \
	}

F32_ROWS(f32_rows512_t, f32_block512, __m512, TGT512)

/* The sum of a register's 8 floats, in a fixed order. */
TGT256 AI float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* 8 weights from element i of w. */
TGT256 AI __m256 wload256(const int WT, const void *w, size_t i)
{
	const __m128i *h = (const __m128i *)((const uint16_t *)w + i);

	if (WT == WT_BF16)
		return _mm256_castsi256_ps(
			_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(h)), 16));
	if (WT == WT_F16)
		return _mm256_cvtph_ps(_mm_loadu_si128(h));
	return _mm256_loadu_ps((const float *)w + i);
}

/* The first n < 8 weights from element i of w, 0 in the other lanes (tail:
 * the lanes below n set). */
TGT256 AI __m256 wtail256(const int WT, __m256i tail, int n, const void *w, size_t i)
{
	uint16_t h[8] = { 0 };

	if (WT == WT_F32)
		return _mm256_maskload_ps((const float *)w + i, tail);
	memcpy(h, (const uint16_t *)w + i, (size_t)n * sizeof(uint16_t));
	return wload256(WT, h, 0);
}

TGT256 AI void f32_block256(const int WT, const int MR, const int NR, int c0, int c1, int k,
			    const float *x, size_t ldx, const void *w, size_t ldw, size_t pf,
			    __m256 part[][TK_GEMV_MAX_ROWS], float s[TK_GEMV_MAX_ROWS][F32_NR])
{
	__m256 acc[TK_GEMV_MAX_ROWS][F32_NR];
	const int k8 = c1 & ~7;
	const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(c1 & 7),
						_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			acc[i][r] = c0 ? part[r][i] : _mm256_setzero_ps();
	for (int c = c0; c < k8; c += 8) {
		__m256 wv[F32_NR];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			if (pf && !(c & 15))
				_mm_prefetch((const char *)w + (r * ldw + c + pf) * wt_size(WT),
					     _MM_HINT_T0);
			wv[r] = wload256(WT, w, r * ldw + c);
		}
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++) {
			__m256 xv = _mm256_loadu_ps(x + i * ldx + c);
			XREG(xv);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
		}
	}
	if (c1 & 7) {
		__m256 wv[F32_NR];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			wv[r] = wtail256(WT, tail, c1 & 7, w, r * ldw + k8);
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++) {
			__m256 xv = _mm256_maskload_ps(x + i * ldx + k8, tail);
			XREG(xv);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
		}
	}
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			if (c1 < k)
				part[r][i] = acc[i][r];
			else
				s[i][r] = hsum256(acc[i][r]);
		}
}

F32_ROWS(f32_rows256_t, f32_block256, __m256, TGT256)

/* One instance per MR, NR chosen by measurement (Zen 5 here, out of cache
 * and in) among those whose MR * NR accumulators, NR weight chunks and one
 * x chunk fit the registers (32 zmm, 16 ymm). */
typedef void (*f32_rows_fn)(int, int, int, float, const float *, size_t, const void *, size_t,
			    float, float *, size_t);

#define F32_ONE(ISA, TGT, ROWS, NAME, WT, MR, NR)                                             \
	TGT __attribute__((noinline)) static void NAME##_##ISA##_##MR(                        \
		int r0, int r1, int k, float alpha, const float *x, size_t ldx, const void *w, \
		size_t ldw, float beta, float *y, size_t ldy)                                 \
	{                                                                                     \
		ROWS(WT, MR, NR, r0, r1, k, alpha, x, ldx, w, ldw, beta, y, ldy);              \
	}
/* The loops for MR rows of x, NR weight rows a pass, for each weight type. */
#define F32_512(MR, NR)                                                      \
	F32_ONE(512, TGT512, f32_rows512_t, f32, WT_F32, MR, NR)             \
	F32_ONE(512, TGT512, f32_rows512_t, b16, WT_BF16, MR, NR)            \
	F32_ONE(512, TGT512, f32_rows512_t, h16, WT_F16, MR, NR)
#define F32_256(MR, NR)                                                      \
	F32_ONE(256, TGT256, f32_rows256_t, f32, WT_F32, MR, NR)             \
	F32_ONE(256, TGT256, f32_rows256_t, b16, WT_BF16, MR, NR)            \
	F32_ONE(256, TGT256, f32_rows256_t, h16, WT_F16, MR, NR)
F32_512(1, 4)
F32_512(2, 4)
F32_512(3, 4)
F32_512(4, 4)
F32_512(5, 4)
F32_512(6, 4)
F32_512(7, 3)
F32_512(8, 3)
F32_256(1, 4)
F32_ONE(256, TGT256, f32_rows256_t, f32r, WT_F32, 1, 1)
F32_256(2, 4)
F32_256(3, 3)
F32_256(4, 3)
F32_256(5, 2)
F32_256(6, 2)
F32_256(7, 1)
F32_256(8, 1)

#define F32_TABLE(NAME, ISA)                                                                  \
	{                                                                                     \
		NULL, NAME##_##ISA##_1, NAME##_##ISA##_2, NAME##_##ISA##_3, NAME##_##ISA##_4, \
			NAME##_##ISA##_5, NAME##_##ISA##_6, NAME##_##ISA##_7, NAME##_##ISA##_8 \
	}
/* [WT][MR] */
static const f32_rows_fn f32_512[3][TK_GEMV_MAX_ROWS + 1] = {
	F32_TABLE(f32, 512), F32_TABLE(b16, 512), F32_TABLE(h16, 512)
};
static const f32_rows_fn f32_256[3][TK_GEMV_MAX_ROWS + 1] = {
	F32_TABLE(f32, 256), F32_TABLE(b16, 256), F32_TABLE(h16, 256)
};
#endif

int tk_cpu_gemv_f32_ok(enum tk_cpu_isa isa)
{
#ifdef TK_GEMV_X86
	return isa >= TK_CPU_ISA_AVX2;
#else
	return 0;
#endif
}

/* One tk_cpu_gemv_f32 or tk_cpu_gemv_half call, for its blocks run on the
 * pool; wt: the weights' WT_. */
struct f32_job {
	enum tk_cpu_isa isa;
	int wt, m, n, k;
	float alpha, beta;
	const float *x;
	const void *w;
	size_t ldx, ldw, ldy;
	float *y;
};

/* Output rows [bl GEMV_BLOCK, + GEMV_BLOCK) of the job, for all its rows of x. */
static void f32_block(void *p, int bl, int tid)
{
	const struct f32_job *j = p;
	int r0 = bl * GEMV_BLOCK, r1 = j->n - r0 < GEMV_BLOCK ? j->n : r0 + GEMV_BLOCK;

	(void)tid;
	for (int i0 = 0; i0 < j->m; i0 += TK_GEMV_MAX_ROWS) {
		int mr = j->m - i0 < TK_GEMV_MAX_ROWS ? j->m - i0 : TK_GEMV_MAX_ROWS;
		const float *xi = j->x + (size_t)i0 * j->ldx;
		float *yi = j->y + (size_t)i0 * j->ldy;
#ifdef TK_GEMV_X86
		if (j->isa == TK_CPU_ISA_AVX512)
			f32_512[j->wt][mr](r0, r1, j->k, j->alpha, xi, j->ldx, j->w, j->ldw,
					   j->beta, yi, j->ldy);
		else
			(mr == 1 && j->wt == WT_F32 && (size_t)j->k * sizeof(float) < F32_ROW1_BYTES
				 ? f32r_256_1
				 : f32_256[j->wt][mr])(r0, r1, j->k, j->alpha, xi, j->ldx, j->w,
						       j->ldw, j->beta, yi, j->ldy);
#endif
		(void)mr, (void)xi, (void)yi;
	}
}

/* j's blocks on the pool, on one thread below GEMV_PAR_MIN weights. */
static void f32_run(int nt, struct f32_job *j)
{
	if ((long)j->n * j->k < GEMV_PAR_MIN)
		nt = 1;
	/* blocks of GEMV_BLOCK rows handed out as threads come for them: on
	 * a machine shared with other work, a thread that loses its core
	 * holds up only the block it has (pool.h); in strips, so that each
	 * thread reads one run of rows (measured on a 2-core Zen 3 in
	 * SmolLM2-135M's decode steps, with and without alternating token by
	 * token in one process, 4 runs: bf16 weights 3-8% faster, fp32 -0.5
	 * to +3%; NF4 4% in 2 runs) */
	tk_pool_for_strips(nt, (j->n + GEMV_BLOCK - 1) / GEMV_BLOCK, f32_block, j);
}

void tk_cpu_gemv_f32(enum tk_cpu_isa isa, int nt, int m, int n, int k, float alpha,
		     const float *x, size_t ldx, const float *w, size_t ldw, float beta, float *y,
		     size_t ldy)
{
	struct f32_job j = { isa, WT_F32, m, n, k, alpha, beta, x, w, ldx, ldw, ldy, y };

	f32_run(nt, &j);
}

/* The job of rows row0 .. row0+n-1 of the half weight q (alpha 1). */
static struct f32_job half_job(enum tk_cpu_isa isa, const struct tk_qweight *q, int64_t row0,
			       int n, int m, const float *x, float *y, size_t ldy, float beta)
{
	const size_t k = (size_t)q->cols;

	return (struct f32_job){ isa, q->kind == TK_QK_BF16 ? WT_BF16 : WT_F16, m, n, (int)k,
				 1.0f, beta, x, (const uint16_t *)q->data + (size_t)row0 * k, k,
				 k, ldy, y };
}

int tk_cpu_gemv_half_ok(enum tk_cpu_isa isa, enum tk_qkind kind)
{
	return tk_qkind_half(kind) && tk_cpu_gemv_f32_ok(isa) &&
	       (kind == TK_QK_BF16 || isa >= TK_CPU_ISA_AVX512 || tk_cpu_features()->f16c);
}

void tk_cpu_gemv_half(enum tk_cpu_isa isa, int nt, const struct tk_qweight *q, int64_t row0,
		      int n, int m, const float *x, float *y, size_t ldy, float beta)
{
	struct f32_job j = half_job(isa, q, row0, n, m, x, y, ldy, beta);

	f32_run(nt, &j);
}

/* ---- 4-bit ---- */

/* The absmax of block b: tk_qweight_absmax's formula (a rounded product,
 * then a rounded sum: -std=c11 contracts nothing), inline in the loops. */
static inline float q4_absmax(const struct tk_qweight *q, size_t b)
{
	if (!q->nested)
		return q->absmax[b];
	float v = tk_dynamic_code[q->qabsmax[b]] * q->nested_absmax[b / TK_Q4_NESTED_BLOCKSIZE];
	return v + q->offset;
}

int tk_cpu_qgemv4_ok(enum tk_cpu_isa isa, const struct tk_qweight *q)
{
#ifdef TK_GEMV_X86
	return isa >= TK_CPU_ISA_AVX2 && (q->kind == TK_QK_NF4 || q->kind == TK_QK_FP4) &&
	       q->cols > 0 && q->cols % 64 == 0 && q->blocksize % 64 == 0;
#else
	return 0;
#endif
}

size_t tk_cpu_qgemv4_ws(const struct tk_qweight *q, int m)
{
	return (size_t)m * (size_t)q->cols;
}

#ifdef TK_GEMV_X86
/* Bytes of codes ahead that the 4-bit loops prefetch when a panel spans
 * whole rows (the rows follow each other in memory): the hardware's own
 * prefetch kept too few lines in flight for loops that load 32 bytes per
 * 20 instructions (measured on the Xeon here, 1-4 KiB: 2 best). */
#define Q4_PF 16384
/* Rows per block a thread takes: their accumulators stay in L1 between
 * column panels. */
#define Q4_RB 16
/* Floats of x per column panel: MR rows of it stay in L1 (16 KiB) while
 * the block's rows stream past, whatever m and cols. */
#define Q4_PANEL(MR) ((size_t)(4096 / (MR)) & ~(size_t)63)
/* 64-column chunks in a panel at most (m = 1 has the widest). */
#define Q4_NCH (Q4_PANEL(1) / 64)

/* xs = x with each group of 64 elements in q4_span512's order:
 * xs[g + 16 k + j] = x[g + 4 j + {1, 0, 3, 2}[k]].  Two-source permutes
 * over 32 elements (index bit 4 picks the source), so that the reorder,
 * done on one thread before the parallel loop, stays small next to the
 * product at 135M-model shapes. */
TGT512 static void reorder_x512(float *xs, const float *x, size_t n)
{
	static const int nib[4] = { 1, 0, 3, 2 };
	__m512i ix[4];
	for (int k = 0; k < 4; k++) {
		int32_t e[16];
		for (int j = 0; j < 16; j++)
			e[j] = (4 * j + nib[k]) & 31;
		ix[k] = _mm512_loadu_si512(e);
	}
	for (size_t g = 0; g < n; g += 64) {
		__m512 v0 = _mm512_loadu_ps(x + g), v1 = _mm512_loadu_ps(x + g + 16);
		__m512 v2 = _mm512_loadu_ps(x + g + 32), v3 = _mm512_loadu_ps(x + g + 48);
		for (int k = 0; k < 4; k++) {
			__m512 lo = _mm512_permutex2var_ps(v0, ix[k], v1);
			__m512 hi = _mm512_permutex2var_ps(v2, ix[k], v3);
			_mm512_store_ps(xs + g + 16 * k, _mm512_mask_blend_ps(0xff00, lo, hi));
		}
	}
}

/* xs = x with each group of 64 elements in q4_span256's order: byte
 * 16 L + 4 k + s of the 32 holds elements 2 (16 L + 4 k + s) (high
 * nibble, h 0) and that + 1 (low, h 1), and weight vector 4 h + k holds
 * it in slot 4 L + s. */
static void reorder_x256(float *xs, const float *x, size_t n)
{
	for (size_t g = 0; g < n; g += 64)
		for (int h = 0; h < 2; h++)
			for (int k = 0; k < 4; k++)
				for (int l = 0; l < 2; l++)
					for (int s = 0; s < 4; s++)
						xs[g + 32 * h + 8 * k + 4 * l + s] =
							x[g + 2 * (16 * l + 4 * k + s) + h];
}

/* amc[r nch + j] = the absmax of the block that holds columns p0 + 64 j
 * .. + 63 (one block: tk_cpu_qgemv4_ok) of weight row r < nr, row 0
 * starting at element e0, nch = (p1 - p0) / 64; amc has room for 15 more.
 * Looked up once per panel, 8 chunks at a time (over all nr rows at once
 * when the panel spans whole rows: their chunks follow each other): the
 * 8 chunks lie in at most 8 blocks from bl (block sizes from 64), whose
 * stored values one load brings and a permute spreads, and in at most 2
 * groups of nested blocks.  Inline in the loops, the formula's loads and
 * the test for a new block took as many instructions per 64 columns as
 * the products themselves.  The same bits as q4_absmax (a rounded
 * product, then a rounded sum). */
TGT256 static void q4_amc(const struct tk_qweight *q, size_t e0, int nr, size_t cols, size_t p0,
			  size_t p1, float *amc)
{
	const int lbs = __builtin_ctzll((unsigned long long)q->blocksize);
	const size_t nb = ((size_t)q->rows * cols + q->blocksize - 1) >> lbs;
	const size_t ng = (nb + TK_Q4_NESTED_BLOCKSIZE - 1) / TK_Q4_NESTED_BLOCKSIZE;
	const size_t nch = (p1 - p0) / 64;
	const int segs = p0 == 0 && p1 == cols ? 1 : nr;
	const size_t len = segs == 1 ? (size_t)nr * nch : nch;
	const __m256i lane = _mm256_setr_epi32(0, 64, 128, 192, 256, 320, 384, 448);
	const __m128i sh = _mm_cvtsi32_si128(lbs);
	for (int r = 0; r < segs; r++) {
		float *o = amc + (size_t)r * nch;
		for (size_t j = 0; j < len; j += 8) {
			size_t e = e0 + (size_t)r * cols + p0 + 64 * j, bl = e >> lbs;
			if (bl + 8 > nb) { /* the last blocks: no load past the end */
				for (size_t t = j; t < len && t < j + 8; t++)
					o[t] = q4_absmax(q, (e + 64 * (t - j)) >> lbs);
				continue;
			}
			/* chunk t of the 8 is in block bl + rel[t], rel[t] < 8 */
			__m256i rel = _mm256_srl_epi32(
				_mm256_add_epi32(_mm256_set1_epi32((int)(e & (q->blocksize - 1))), lane),
				sh);
			__m256 v;
			if (!q->nested) {
				v = _mm256_permutevar8x32_ps(_mm256_loadu_ps(q->absmax + bl), rel);
			} else {
				__m256i c = _mm256_cvtepu8_epi32(
					_mm_loadl_epi64((const __m128i *)(q->qabsmax + bl)));
				c = _mm256_permutevar8x32_epi32(c, rel);
				size_t g = bl / TK_Q4_NESTED_BLOCKSIZE;
				float n0 = q->nested_absmax[g];
				float n1 = g + 1 < ng ? q->nested_absmax[g + 1] : n0;
				/* group of chunk t: (bl % 256 + rel[t]) / 256, 0 or 1 */
				__m256i gi = _mm256_srli_epi32(
					_mm256_add_epi32(
						_mm256_set1_epi32((int)(bl % TK_Q4_NESTED_BLOCKSIZE)),
						rel),
					8);
				__m256 na = _mm256_blendv_ps(_mm256_set1_ps(n0), _mm256_set1_ps(n1),
							     _mm256_castsi256_ps(_mm256_slli_epi32(gi, 31)));
				v = _mm256_mul_ps(_mm256_i32gather_ps(tk_dynamic_code, c, 4), na);
				v = _mm256_add_ps(v, _mm256_set1_ps(q->offset));
			}
			/* past len: the next row's slots (written after) or the 7 spare */
			_mm256_storeu_ps(o + j, v);
		}
	}
}

/* q4_amc with AVX-512, 16 chunks at a time: the double-quantized codes
 * looked up in tk_dynamic_code by 8 two-source permutes over 32 of its
 * values each and 7 blends on the code's 3 high bits, where the AVX2
 * gather took a quarter of the loops' time at m = 1 (135M shapes, in
 * L2).  Not nested: q4_amc (a load and a permute per 8). */
TGT512 static void q4_amc512(const struct tk_qweight *q, size_t e0, int nr, size_t cols,
			     size_t p0, size_t p1, float *amc)
{
	if (!q->nested) {
		q4_amc(q, e0, nr, cols, p0, p1, amc);
		return;
	}
	const int lbs = __builtin_ctzll((unsigned long long)q->blocksize);
	const size_t nb = ((size_t)q->rows * cols + q->blocksize - 1) >> lbs;
	const size_t ng = (nb + TK_Q4_NESTED_BLOCKSIZE - 1) / TK_Q4_NESTED_BLOCKSIZE;
	const size_t nch = (p1 - p0) / 64;
	const int segs = p0 == 0 && p1 == cols ? 1 : nr;
	const size_t len = segs == 1 ? (size_t)nr * nch : nch;
	const __m512i lane = _mm512_setr_epi32(0, 64, 128, 192, 256, 320, 384, 448, 512, 576, 640,
					       704, 768, 832, 896, 960);
	const __m128i sh = _mm_cvtsi32_si128(lbs);
	__m512 lo[8], hi[8];
	for (int k = 0; k < 8; k++) {
		lo[k] = _mm512_loadu_ps(tk_dynamic_code + 32 * k);
		hi[k] = _mm512_loadu_ps(tk_dynamic_code + 32 * k + 16);
	}
	for (int r = 0; r < segs; r++) {
		float *o = amc + (size_t)r * nch;
		for (size_t j = 0; j < len; j += 16) {
			size_t e = e0 + (size_t)r * cols + p0 + 64 * j, bl = e >> lbs;
			if (bl + 16 > nb) {
				for (size_t t = j; t < len && t < j + 16; t++)
					o[t] = q4_absmax(q, (e + 64 * (t - j)) >> lbs);
				continue;
			}
			/* chunk t of the 16 is in block bl + rel[t], rel[t] < 16 */
			__m512i rel = _mm512_srl_epi32(
				_mm512_add_epi32(_mm512_set1_epi32((int)(e & (q->blocksize - 1))), lane),
				sh);
			__m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q->qabsmax + bl)));
			c = _mm512_permutexvar_epi32(rel, c);
			__m512 v[8];
			for (int k = 0; k < 8; k++)
				v[k] = _mm512_permutex2var_ps(lo[k], c, hi[k]);
			__mmask16 b5 = _mm512_test_epi32_mask(c, _mm512_set1_epi32(32));
			__mmask16 b6 = _mm512_test_epi32_mask(c, _mm512_set1_epi32(64));
			__mmask16 b7 = _mm512_test_epi32_mask(c, _mm512_set1_epi32(128));
			for (int k = 0; k < 4; k++)
				v[k] = _mm512_mask_blend_ps(b5, v[2 * k], v[2 * k + 1]);
			v[0] = _mm512_mask_blend_ps(b6, v[0], v[1]);
			v[1] = _mm512_mask_blend_ps(b6, v[2], v[3]);
			v[0] = _mm512_mask_blend_ps(b7, v[0], v[1]);
			size_t g = bl / TK_Q4_NESTED_BLOCKSIZE;
			float n0 = q->nested_absmax[g];
			float n1 = g + 1 < ng ? q->nested_absmax[g + 1] : n0;
			__mmask16 g1 = _mm512_test_epi32_mask(
				_mm512_add_epi32(_mm512_set1_epi32((int)(bl % TK_Q4_NESTED_BLOCKSIZE)), rel),
				_mm512_set1_epi32(TK_Q4_NESTED_BLOCKSIZE));
			__m512 na = _mm512_mask_blend_ps(g1, _mm512_set1_ps(n0), _mm512_set1_ps(n1));
			__m512 w = _mm512_add_ps(_mm512_mul_ps(v[0], na), _mm512_set1_ps(q->offset));
			/* past len: the next row's slots (written after) or the 15 spare */
			_mm512_storeu_ps(o + j, w);
		}
	}
}

/* Columns [c0, c1) (multiples of 64) of NR <= 2 consecutive weight rows,
 * the first starting at element e0, dotted with MR rows of xs (row stride
 * cols) into acc[(r MR + i) A + a], A accumulators per pair (weight
 * vector k of a 64-column chunk goes to a = k % A), which carry over from
 * the previous panel: the same operations in the same order as one span
 * over the row.  Per 32 bytes, the bytes are widened to 16 16-bit lanes
 * of 4 codes (lane j: elements 4j+1, 4j, 4j+3, 4j+2), so a shift by 0,
 * 4, 8, 12 puts each in the lane's low bits, and one permute over the
 * chunk's 16 values (code * absmax, the bits tk_qweight_rows gives, from
 * amc: absmax per chunk, (c1 - c0) / 64 a row) turns 16 codes into 16 weights.
 * Two rows share each load of x; A and NR are chosen so that no
 * accumulator takes a new product before the last one's 4 cycles are out
 * (one accumulator of 4 products per 64 columns held m = 1 to 8 cycles
 * per 64 columns, a third of the memory's rate on the Zen 5 here). */
TGT512 AI void q4_span512(const int MR, const int NR, const int A, const struct tk_qweight *q,
			  size_t e0, const float *amc, const float *xs, size_t cols, size_t c0,
			  size_t c1, size_t pf, const void *tabs, __m512 *acc)
{
	const __m512 code = _mm512_loadu_ps((const float *)tabs);
	const uint8_t *d = q->data + (e0 >> 1);
	const size_t rb = cols >> 1;
	__m512 a[4][TK_GEMV_MAX_ROWS][4];
#pragma GCC unroll 4
	for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
			for (int k = 0; k < A; k++)
				a[r][i][k] = acc[(r * MR + i) * A + k];
	for (size_t c = c0, j = 0; c < c1; c += 64, j++) {
		__m512 w[4][4];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			const uint8_t *p = d + r * rb + (c >> 1);
			_mm_prefetch((const char *)p + pf, _MM_HINT_T0);
			__m512 tab = _mm512_mul_ps(code, _mm512_set1_ps(amc[r * ((c1 - c0) >> 6) + j]));
			__m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
			w[r][0] = _mm512_permutexvar_ps(v, tab);
			w[r][1] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), tab);
			w[r][2] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 8), tab);
			w[r][3] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 12), tab);
		}
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
			for (int k = 0; k < 4; k++) {
				__m512 xv = _mm512_load_ps(xs + i * cols + c + 16 * k);
				/* in a register for all NR rows: left to itself,
				 * GCC loads it again as each FMA's memory operand,
				 * twice the loads (m = 8: 12% slower) */
				if (NR > 1)
					__asm__("" : "+v"(xv));
#pragma GCC unroll 4
				for (int r = 0; r < NR; r++)
					a[r][i][k % A] = _mm512_fmadd_ps(w[r][k], xv, a[r][i][k % A]);
			}
	}
#pragma GCC unroll 4
	for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
			for (int k = 0; k < A; k++)
				acc[(r * MR + i) * A + k] = a[r][i][k];
}

/* q4_span512 with AVX2 (NR = A = 1): per 32 bytes (64 columns), the high
 * nibbles and the low ones index 4 byte tables (pl[b][c]: byte b of code
 * c, unscaled) with vpshufb, and two rounds of byte and 16-bit unpacks
 * put the 4 bytes of each code together: 8 x 8 weights whose order
 * reorder_x256 gives x.  Each block's products are summed apart (in 2
 * accumulators per row of x up to m = 4, 1 above: 16 registers) and
 * times its absmax added to acc; m up to 8 in one pass, so each chunk is
 * dequantized once (passes of 4, twice for m = 8, were 4-10% slower at
 * the 135M down and 7B shapes, 3% faster at 1536 x 576) (vpermps, the AVX2 permute over 8
 * floats, runs on one port only on Intel; vpshufb and the unpacks share
 * two). */
TGT256 AI void q4_span256(const int MR, const int NR, const int A, const struct tk_qweight *q,
			  size_t e0, const float *amc, const float *xs, size_t cols, size_t c0,
			  size_t c1, size_t pf, const void *tabs, __m256 *acc)
{
	const uint8_t(*pl)[16] = tabs;
	const uint8_t *d = q->data + (e0 >> 1);
	const int lbs = __builtin_ctzll((unsigned long long)q->blocksize);
	const __m256i m0f = _mm256_set1_epi8(0x0f);
	__m256i tb[4];
	__m256 a[TK_GEMV_MAX_ROWS];
	(void)NR, (void)A;
#pragma GCC unroll 4
	for (int b = 0; b < 4; b++)
		tb[b] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pl[b]));
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
		a[i] = acc[i];
	for (size_t c = c0; c < c1;) {
		size_t b = (e0 + c) >> lbs, ce = ((b + 1) << lbs) - e0;
		__m256 am = _mm256_set1_ps(amc[(c - c0) >> 6]);
		__m256 p0[TK_GEMV_MAX_ROWS], p1[TK_GEMV_MAX_ROWS];
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++)
			p0[i] = _mm256_setzero_ps(), p1[i] = _mm256_setzero_ps();
		for (ce = ce < c1 ? ce : c1; c < ce; c += 64) {
			const uint8_t *p = d + (c >> 1);
			_mm_prefetch((const char *)p + pf, _MM_HINT_T0);
			__m256i v = _mm256_loadu_si256((const __m256i *)p);
			__m256i ix[2] = { _mm256_and_si256(_mm256_srli_epi16(v, 4), m0f),
					  _mm256_and_si256(v, m0f) };
#pragma GCC unroll 2
			for (int h = 0; h < 2; h++) {
				__m256i b0 = _mm256_shuffle_epi8(tb[0], ix[h]);
				__m256i b1 = _mm256_shuffle_epi8(tb[1], ix[h]);
				__m256i b2 = _mm256_shuffle_epi8(tb[2], ix[h]);
				__m256i b3 = _mm256_shuffle_epi8(tb[3], ix[h]);
				__m256i l01 = _mm256_unpacklo_epi8(b0, b1), h01 = _mm256_unpackhi_epi8(b0, b1);
				__m256i l23 = _mm256_unpacklo_epi8(b2, b3), h23 = _mm256_unpackhi_epi8(b2, b3);
				__m256 w0 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(l01, l23));
				__m256 w1 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(l01, l23));
				__m256 w2 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(h01, h23));
				__m256 w3 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(h01, h23));
#pragma GCC unroll 8
				for (int i = 0; i < MR; i++) {
					const float *xi = xs + i * cols + c + 32 * h;
					__m256 *q1 = MR <= 4 ? &p1[i] : &p0[i];
					p0[i] = _mm256_fmadd_ps(w0, _mm256_load_ps(xi), p0[i]);
					*q1 = _mm256_fmadd_ps(w1, _mm256_load_ps(xi + 8), *q1);
					p0[i] = _mm256_fmadd_ps(w2, _mm256_load_ps(xi + 16), p0[i]);
					*q1 = _mm256_fmadd_ps(w3, _mm256_load_ps(xi + 24), *q1);
				}
			}
		}
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++)
			a[i] = _mm256_fmadd_ps(MR <= 4 ? _mm256_add_ps(p0[i], p1[i]) : p0[i], am, a[i]);
	}
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
		acc[i] = a[i];
}

typedef void (*q4_rows_fn)(const struct tk_qweight *, int64_t, int, int, const float *, size_t,
			   const void *, float *, int, float);

/* Output rows [r0, r1) (r1 - r0 <= Q4_RB) for MR rows of x, in column
 * panels, NR weight rows a span (the last (r1 - r0) % NR one at a time:
 * the same order per output); y[i ldy + r] = sum (+ beta y). */
#define Q4_ROWS(NAME, TGT, VEC, SPAN, AMC, ZERO, RED, MR, NR, A)                                    \
	TGT __attribute__((noinline)) static void NAME(const struct tk_qweight *q, int64_t row0, \
						       int r0, int r1, const float *xs,          \
						       size_t cols, const void *tabs, float *y,  \
						       int ldy, float beta)                      \
	{                                                                                     \
		VEC acc[Q4_RB * MR * A];                                                      \
		float amc[Q4_RB * Q4_NCH + 16];                                               \
		const size_t kc = Q4_PANEL(MR), e0 = (size_t)(row0 + r0) * cols;             \
		/* prefetch: the same columns of the rows kp spans on, the first at             \
		 * least Q4_PF bytes of reading ahead: the rows a span reads                   \
		 * side by side make a linear distance land in a row read already */          \
		const size_t kw = kc < cols ? kc : cols, sb = NR * kw / 2;                    \
		const size_t pf = (Q4_PF + sb - 1) / sb * NR * (cols / 2);                    \
		for (size_t p0 = 0; p0 < cols; p0 += kc) {                                    \
			size_t p1 = cols - p0 < kc ? cols : p0 + kc;                          \
			AMC(q, e0, r1 - r0, cols, p0, p1, amc);                               \
			int r = r0;                                                           \
			for (; r + NR <= r1; r += NR) {                                       \
				VEC *ac = acc + (size_t)(r - r0) * MR * A;                    \
				if (!p0)                                                      \
					for (int j = 0; j < NR * MR * A; j++)                 \
						ac[j] = ZERO();                               \
				SPAN(MR, NR, A, q, e0 + (size_t)(r - r0) * cols,              \
				     amc + (r - r0) * ((p1 - p0) / 64), xs, cols, p0, p1, pf, tabs, ac); \
			}                                                                     \
			for (; r < r1; r++) {                                                 \
				VEC *ac = acc + (size_t)(r - r0) * MR * A;                    \
				if (!p0)                                                      \
					for (int j = 0; j < MR * A; j++)                      \
						ac[j] = ZERO();                               \
				SPAN(MR, 1, A, q, e0 + (size_t)(r - r0) * cols,               \
				     amc + (r - r0) * ((p1 - p0) / 64), xs, cols, p0, p1, pf, tabs, ac); \
			}                                                                     \
		}                                                                             \
		for (int r = r0; r < r1; r++)                                                 \
			for (int i = 0; i < MR; i++) {                                        \
				float sum = RED(acc + ((size_t)(r - r0) * MR + i) * A, A);    \
				float *o = y + (size_t)i * ldy + r;                           \
				*o = beta == 0.0f ? sum : sum + beta * *o;                    \
			}                                                                     \
	}

/* The sum of a[0 .. A), A = 1, 2 or 4, in a fixed order. */
TGT512 AI float red512(const __m512 *a, const int A)
{
	__m512 s = A == 4 ? _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])) :
		   A == 2 ? _mm512_add_ps(a[0], a[1]) : a[0];
	return _mm512_reduce_add_ps(s);
}

TGT256 AI float red256(const __m256 *a, const int A)
{
	(void)A;
	return hsum256(a[0]);
}

/* NR = 2 weight rows a span share each load of x; A accumulators per row
 * pair: 2 up to m = 4, 1 from 5 (then 10 to 16 chains, each with 4
 * products per 64 columns, hidden behind the 2 x 4 m fused multiply-adds
 * of a span step at 2 a cycle).  Measured at m = 1 (Zen 5, 1 thread):
 * NR 2 with A 2 or 4 or NR 4 with A 1 or 2 within noise of each other,
 * NR 2 with A 1 a quarter slower; at m = 8, NR 2 and A 1 over NR 1 and
 * A 2 by 10-20%. */
#define Q4_512(MR, NR, A)                                                                    \
	Q4_ROWS(q4_512_##MR, TGT512, __m512, q4_span512, q4_amc512, _mm512_setzero_ps, red512, MR, \
		NR, A)
#define Q4_256(MR)                                                                           \
	Q4_ROWS(q4_256_##MR, TGT256, __m256, q4_span256, q4_amc, _mm256_setzero_ps, red256, MR, 1, 1)
Q4_512(1, 2, 2)
Q4_512(2, 2, 2)
Q4_512(3, 2, 2)
Q4_512(4, 2, 2)
Q4_512(5, 2, 1)
Q4_512(6, 2, 1)
Q4_512(7, 2, 1)
Q4_512(8, 2, 1)
Q4_256(1)
Q4_256(2)
Q4_256(3)
Q4_256(4)
Q4_256(5)
Q4_256(6)
Q4_256(7)
Q4_256(8)

static const q4_rows_fn q4_512[TK_GEMV_MAX_ROWS + 1] = {
	NULL, q4_512_1, q4_512_2, q4_512_3, q4_512_4, q4_512_5, q4_512_6, q4_512_7, q4_512_8,
};
static const q4_rows_fn q4_256[TK_GEMV_MAX_ROWS + 1] = {
	NULL, q4_256_1, q4_256_2, q4_256_3, q4_256_4, q4_256_5, q4_256_6, q4_256_7, q4_256_8,
};

/* One tk_cpu_qgemv4 call, for its blocks run on the pool. */
struct q4_job {
	enum tk_cpu_isa isa;
	const struct tk_qweight *q;
	int64_t row0;
	int n, m;
	size_t cols;
	const float *ws;
	float *y;
	int ldy;
	float beta;
	const void *tabs; /* q4_prepare's */
};

/* Output rows [bl Q4_RB, + Q4_RB) of the job, for all its rows of x. */
static void q4_block(void *p, int bl, int tid)
{
	const struct q4_job *j = p;
	int r0 = bl * Q4_RB, r1 = j->n - r0 < Q4_RB ? j->n : r0 + Q4_RB;

	(void)tid;
	for (int i0 = 0; i0 < j->m; i0 += TK_GEMV_MAX_ROWS) {
		int mr = j->m - i0 < TK_GEMV_MAX_ROWS ? j->m - i0 : TK_GEMV_MAX_ROWS;
		const float *xs = j->ws + (size_t)i0 * j->cols;
		float *yi = j->y + (size_t)i0 * j->ldy;
		if (j->isa == TK_CPU_ISA_AVX512)
			q4_512[mr](j->q, j->row0, r0, r1, xs, j->cols, j->tabs, yi, j->ldy, j->beta);
		else
			q4_256[mr](j->q, j->row0, r0, r1, xs, j->cols, j->tabs, yi, j->ldy, j->beta);
	}
}
#endif

#ifdef TK_GEMV_X86
/* What every block of a 4-bit product reads besides the codes: the code
 * table in the form the ISA's span takes (AVX-512: the 16 floats; AVX2:
 * their bytes split into 4 tables pl[b][c], filled here), returned; and
 * the m rows of x [m, cols] reordered into ws as the span reads them. */
static const void *q4_prepare(enum tk_cpu_isa isa, int kind, uint8_t pl[4][16], float *ws,
			      const float *x, int m, size_t cols)
{
	const float *code = kind == TK_QK_FP4 ? tk_fp4_code : tk_nf4_code;

	for (int i = 0; i < m; i++)
		if (isa == TK_CPU_ISA_AVX512)
			reorder_x512(ws + (size_t)i * cols, x + (size_t)i * cols, cols);
		else
			reorder_x256(ws + (size_t)i * cols, x + (size_t)i * cols, cols);
	if (isa == TK_CPU_ISA_AVX512)
		return code;
	for (int c = 0; c < 16; c++) {
		uint32_t bits;
		memcpy(&bits, &code[c], 4);
		for (int b = 0; b < 4; b++)
			pl[b][c] = (uint8_t)(bits >> 8 * b);
	}
	return pl;
}
#endif

void tk_cpu_qgemv4(enum tk_cpu_isa isa, int nt, const struct tk_qweight *q, int64_t row0, int n,
		   int m, const float *x, float *y, int ldy, float beta, float *ws)
{
#ifdef TK_GEMV_X86
	const size_t cols = (size_t)q->cols;
	uint8_t pl[4][16];
	const void *tabs = q4_prepare(isa, q->kind, pl, ws, x, m, cols);
	struct q4_job j = { isa, q, row0, n, m, cols, ws, y, ldy, beta, tabs };

	if ((long)n * (long)cols < GEMV_PAR_MIN)
		nt = 1;
	tk_pool_for_strips(nt, (n + Q4_RB - 1) / Q4_RB, q4_block, &j);
#else
	(void)isa, (void)nt, (void)q, (void)row0, (void)n, (void)m, (void)x, (void)y, (void)ldy,
		(void)beta, (void)ws;
#endif
}

/* A group's jobs and where each one's blocks start in the loop. */
struct group_job {
	int count, first[TK_GEMV_GROUP_MAX + 1];
	tk_pool_fn fn;
	union {
		struct f32_job f32;
#ifdef TK_GEMV_X86
		struct q4_job q4;
#endif
	} j[TK_GEMV_GROUP_MAX];
};

/* Block i of the group: block i - first[j] of job j. */
static void group_block(void *p, int i, int tid)
{
	struct group_job *g = p;
	int j = 0;

	while (i >= g->first[j + 1])
		j++;
	g->fn(&g->j[j], i - g->first[j], tid);
}

int tk_cpu_gemv_group(enum tk_cpu_isa isa, int nt, int m, int k, const float *x,
		      const struct tk_gemv_item *it, int count, float *ws)
{
#ifdef TK_GEMV_X86
	struct group_job g = { .count = count };
	/* 4-bit (all of one kind), or fp32 and half weights in any mix */
	const int q4 = it[0].w == NULL && !tk_qkind_half(it[0].q->kind);
	uint8_t pl[4][16];
	long work = 0;

	if (count < 1 || count > TK_GEMV_GROUP_MAX || m > TK_GEMV_MAX_ROWS || k < 1)
		return TK_E_UNSUPPORTED;
	for (int j = 0; j < count; j++) {
		const struct tk_qweight *q = it[j].w ? NULL : it[j].q;
		if (q4 ? !q || !tk_cpu_qgemv4_ok(isa, q) || q->kind != it[0].q->kind
		       : q ? !tk_cpu_gemv_half_ok(isa, q->kind) || q->cols != k
			   : !tk_cpu_gemv_f32_ok(isa))
			return TK_E_UNSUPPORTED;
		work += (long)it[j].n * k;
	}
	/* for 4-bit weights, x once for the whole group, in the codes' order */
	const void *tabs = q4 ? q4_prepare(isa, it[0].q->kind, pl, ws, x, m, (size_t)k) : NULL;
	g.fn = q4 ? q4_block : f32_block;
	for (int j = 0; j < count; j++) {
		int rb = q4 ? Q4_RB : GEMV_BLOCK;
		if (q4)
			g.j[j].q4 = (struct q4_job){ isa, it[j].q, it[j].row0, it[j].n, m, (size_t)k,
						     ws, it[j].y, it[j].n, 0.0f, tabs };
		else if (it[j].w)
			g.j[j].f32 = (struct f32_job){ isa, WT_F32, m, it[j].n, k, 1.0f, 0.0f, x,
						       it[j].w, (size_t)k, (size_t)k,
						       (size_t)it[j].n, it[j].y };
		else
			g.j[j].f32 = half_job(isa, it[j].q, it[j].row0, it[j].n, m, x, it[j].y,
					      (size_t)it[j].n, 0.0f);
		g.first[j + 1] = g.first[j] + (it[j].n + rb - 1) / rb;
	}
	/* the threshold of one product, for the group's elements */
	tk_pool_for_strips(work < GEMV_PAR_MIN ? 1 : nt, g.first[count], group_block, &g);
	return 0;
#else
	(void)isa, (void)nt, (void)m, (void)k, (void)x, (void)it, (void)count, (void)ws;
	return TK_E_UNSUPPORTED;
#endif
}

/* backend-cpu-gemv.c - see backend-cpu-int.h.
 *
 * fp32: each pass takes NR weight rows and MR <= 8 rows of x; per column
 * chunk (16 floats with AVX-512, 8 with AVX2) NR weight loads and MR x
 * loads feed MR * NR fused multiply-adds, so the weights are read from
 * memory once and x from L1.  NR is chosen so that the MR * NR
 * accumulators fit the registers (32 zmm, 16 ymm).
 *
 * 4-bit, AVX-512: per 64 columns (32 bytes) of a weight row, the bytes are
 * widened to 16 16-bit lanes of 4 codes; in lane j the 4 nibbles are
 * elements 4j+1, 4j, 4j+3, 4j+2 of the 64, so a shift by 0, 4, 8, 12 puts
 * each in the lane's low bits, and one permute over the block's 16 values
 * (code * absmax, the bits tk_qweight_rows gives) turns 16 codes into 16
 * weights.  AVX2 (whose permute over 8 floats runs on one port only):
 * vpshufb over byte tables of the unscaled codes, q4_span256.  x is
 * reordered once per call to the order the weights come out in (ws), so
 * no weight is ever shuffled back.
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
#define GEMV_BLOCK 32

/* ---- fp32 ---- */

/* y = alpha s (+ beta y), as sgemv writes it. */
static inline void put(float *y, float s, float alpha, float beta)
{
	*y = beta == 0.0f ? alpha * s : alpha * s + beta * *y;
}

#ifdef TK_GEMV_X86
#define AI __attribute__((always_inline)) static inline

/* MR rows of x times NR rows of w, 16 columns at a time; s[i][r]. */
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) AI void
f32_block512(const int MR, const int NR, int k, const float *x, size_t ldx, const float *w,
	     size_t ldw, float s[TK_GEMV_MAX_ROWS][4])
{
	__m512 acc[TK_GEMV_MAX_ROWS][4];
	const int k16 = k & ~15;
	const __mmask16 tail = (__mmask16)((1u << (k & 15)) - 1);
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			acc[i][r] = _mm512_setzero_ps();
	for (int c = 0; c < k16; c += 16) {
		__m512 wv[4];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			wv[r] = _mm512_loadu_ps(w + r * ldw + c);
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++) {
			__m512 xv = _mm512_loadu_ps(x + i * ldx + c);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
		}
	}
	if (tail) {
		__m512 wv[4];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			wv[r] = _mm512_maskz_loadu_ps(tail, w + r * ldw + k16);
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++) {
			__m512 xv = _mm512_maskz_loadu_ps(tail, x + i * ldx + k16);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
		}
	}
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			s[i][r] = _mm512_reduce_add_ps(acc[i][r]);
}

/* Rows [r0, r1) of the output for MR rows of x, NR weight rows a pass
 * (the last n % NR one at a time: the same order per output). */
#define F32_ROWS(NAME, BLOCK, TGT)                                                            \
	TGT AI void NAME(const int MR, const int NR, int r0, int r1, int k, float alpha,      \
			 const float *x, size_t ldx, const float *w, size_t ldw, float beta,  \
			 float *y, size_t ldy)                                                \
	{                                                                                     \
		float s[TK_GEMV_MAX_ROWS][4];                                                 \
		int r = r0;                                                                   \
		for (; r + NR <= r1; r += NR) {                                               \
			BLOCK(MR, NR, k, x, ldx, w + (size_t)r * ldw, ldw, s);                \
			for (int i = 0; i < MR; i++)                                          \
				for (int j = 0; j < NR; j++)                                  \
					put(y + (size_t)i * ldy + r + j, s[i][j], alpha, beta); \
		}                                                                             \
		for (; r < r1; r++) {                                                         \
			BLOCK(MR, 1, k, x, ldx, w + (size_t)r * ldw, ldw, s);                 \
			for (int i = 0; i < MR; i++)                                          \
				put(y + (size_t)i * ldy + r, s[i][0], alpha, beta);           \
		}                                                                             \
	}

#define TGT512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
#define TGT256 __attribute__((target("avx2,fma")))

F32_ROWS(f32_rows512_t, f32_block512, TGT512)

/* The sum of a register's 8 floats, in a fixed order. */
TGT256 AI float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

TGT256 AI void f32_block256(const int MR, const int NR, int k, const float *x, size_t ldx,
			    const float *w, size_t ldw, float s[TK_GEMV_MAX_ROWS][4])
{
	__m256 acc[TK_GEMV_MAX_ROWS][4];
	const int k8 = k & ~7;
	const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(k & 7),
						_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			acc[i][r] = _mm256_setzero_ps();
	for (int c = 0; c < k8; c += 8) {
		__m256 wv[4];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			wv[r] = _mm256_loadu_ps(w + r * ldw + c);
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++) {
			__m256 xv = _mm256_loadu_ps(x + i * ldx + c);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
		}
	}
	if (k & 7) {
		__m256 wv[4];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			wv[r] = _mm256_maskload_ps(w + r * ldw + k8, tail);
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++) {
			__m256 xv = _mm256_maskload_ps(x + i * ldx + k8, tail);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
		}
	}
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			s[i][r] = hsum256(acc[i][r]);
}

F32_ROWS(f32_rows256_t, f32_block256, TGT256)

/* One instance per MR, with NR as many weight rows as the accumulators
 * allow: MR * NR <= 16 (AVX-512, of 32 registers) or 8 (AVX2, of 16). */
typedef void (*f32_rows_fn)(int, int, int, float, const float *, size_t, const float *, size_t,
			    float, float *, size_t);

#define F32_512(MR, NR)                                                                     \
	TGT512 __attribute__((noinline)) static void f32_512_##MR(int r0, int r1, int k,     \
								float alpha, const float *x, \
								size_t ldx, const float *w,  \
								size_t ldw, float beta,      \
								float *y, size_t ldy)        \
	{                                                                                   \
		f32_rows512_t(MR, NR, r0, r1, k, alpha, x, ldx, w, ldw, beta, y, ldy);      \
	}
#define F32_256(MR, NR)                                                                     \
	TGT256 __attribute__((noinline)) static void f32_256_##MR(int r0, int r1, int k,     \
								float alpha, const float *x, \
								size_t ldx, const float *w,  \
								size_t ldw, float beta,      \
								float *y, size_t ldy)        \
	{                                                                                   \
		f32_rows256_t(MR, NR, r0, r1, k, alpha, x, ldx, w, ldw, beta, y, ldy);      \
	}
F32_512(1, 4)
F32_512(2, 4)
F32_512(3, 4)
F32_512(4, 4)
F32_512(5, 2)
F32_512(6, 2)
F32_512(7, 2)
F32_512(8, 2)
F32_256(1, 4)
F32_256(2, 4)
F32_256(3, 2)
F32_256(4, 2)
F32_256(5, 1)
F32_256(6, 1)
F32_256(7, 1)
F32_256(8, 1)

static const f32_rows_fn f32_512[TK_GEMV_MAX_ROWS + 1] = {
	NULL, f32_512_1, f32_512_2, f32_512_3, f32_512_4, f32_512_5, f32_512_6, f32_512_7, f32_512_8,
};
static const f32_rows_fn f32_256[TK_GEMV_MAX_ROWS + 1] = {
	NULL, f32_256_1, f32_256_2, f32_256_3, f32_256_4, f32_256_5, f32_256_6, f32_256_7, f32_256_8,
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

/* One tk_cpu_gemv_f32 call, for its blocks run on the pool. */
struct f32_job {
	enum tk_cpu_isa isa;
	int m, n, k;
	float alpha, beta;
	const float *x, *w;
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
			f32_512[mr](r0, r1, j->k, j->alpha, xi, j->ldx, j->w, j->ldw, j->beta, yi,
				    j->ldy);
		else
			f32_256[mr](r0, r1, j->k, j->alpha, xi, j->ldx, j->w, j->ldw, j->beta, yi,
				    j->ldy);
#endif
		(void)mr, (void)xi, (void)yi;
	}
}

void tk_cpu_gemv_f32(enum tk_cpu_isa isa, int nt, int m, int n, int k, float alpha,
		     const float *x, size_t ldx, const float *w, size_t ldw, float beta, float *y,
		     size_t ldy)
{
	struct f32_job j = { isa, m, n, k, alpha, beta, x, w, ldx, ldw, ldy, y };

	if ((long)n * k < GEMV_PAR_MIN)
		nt = 1;
	/* blocks of GEMV_BLOCK rows handed out as threads come for them: on
	 * a machine shared with other work, a thread that loses its core
	 * holds up only the block it has (pool.h) */
	tk_pool_for(nt, (n + GEMV_BLOCK - 1) / GEMV_BLOCK, f32_block, &j);
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
#define Q4_PF 2048
/* xs = x with each group of 64 elements in q4_span512's order:
 * xs[g + 16 k + j] = x[g + 4 j + {1, 0, 3, 2}[k]]. */
static void reorder_x512(float *xs, const float *x, size_t n)
{
	static const int nib[4] = { 1, 0, 3, 2 };
	for (size_t g = 0; g < n; g += 64)
		for (int k = 0; k < 4; k++)
			for (int j = 0; j < 16; j++)
				xs[g + (size_t)k * 16 + j] = x[g + 4 * (size_t)j + nib[k]];
}

/* xs = x with each group of 32 elements in q4_span256's order: byte p of
 * the 16 holds elements 2p (high nibble, high lane) and 2p + 1 (low
 * nibble, low lane); weight vector k holds p = 4 k + i in slot 4 L + i of
 * lane L. */
static void reorder_x256(float *xs, const float *x, size_t n)
{
	for (size_t g = 0; g < n; g += 32)
		for (int k = 0; k < 4; k++)
			for (int l = 0; l < 2; l++)
				for (int i = 0; i < 4; i++)
					xs[g + 8 * k + 4 * l + i] = x[g + 2 * (4 * k + i) + !l];
}

/* Columns [c0, c1) (multiples of 64) of the weight row starting at element
 * e0, dotted with MR rows of xs (row stride cols) into acc[2 i] (even
 * nibbles) and acc[2 i + 1] (odd), which carry over from the previous
 * span: the same operations in the same order as one span over the row. */
TGT512 AI void q4_span512(const int MR, const struct tk_qweight *q, size_t e0, const float *xs,
			  size_t cols, size_t c0, size_t c1, const uint8_t (*pl)[16], size_t pf,
			  __m512 *acc)
{
	(void)pl;
	const __m512 code = _mm512_loadu_ps(q->kind == TK_QK_FP4 ? tk_fp4_code : tk_nf4_code);
	const uint8_t *d = q->data + (e0 >> 1);
	const int lbs = __builtin_ctzll((unsigned long long)q->blocksize);
	__m512 a0[TK_GEMV_MAX_ROWS], a1[TK_GEMV_MAX_ROWS], tab = code;
	size_t bcur = (size_t)-1;
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
		a0[i] = acc[2 * i], a1[i] = acc[2 * i + 1];
	for (size_t c = c0; c < c1; c += 64) {
		size_t b = (e0 + c) >> lbs;
		if (b != bcur) {
			tab = _mm512_mul_ps(code, _mm512_set1_ps(q4_absmax(q, b)));
			bcur = b;
		}
		_mm_prefetch((const char *)(d + (c >> 1)) + pf, _MM_HINT_T0);
		__m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(d + (c >> 1))));
		__m512 w0 = _mm512_permutexvar_ps(v, tab);
		__m512 w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), tab);
		__m512 w2 = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 8), tab);
		__m512 w3 = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 12), tab);
#pragma GCC unroll 8
		for (int i = 0; i < MR; i++) {
			const float *xi = xs + i * cols + c;
			a0[i] = _mm512_fmadd_ps(w0, _mm512_load_ps(xi), a0[i]);
			a1[i] = _mm512_fmadd_ps(w1, _mm512_load_ps(xi + 16), a1[i]);
			a0[i] = _mm512_fmadd_ps(w2, _mm512_load_ps(xi + 32), a0[i]);
			a1[i] = _mm512_fmadd_ps(w3, _mm512_load_ps(xi + 48), a1[i]);
		}
	}
#pragma GCC unroll 8
	for (int i = 0; i < MR; i++)
		acc[2 * i] = a0[i], acc[2 * i + 1] = a1[i];
}

/* q4_span512 with AVX2: per 16 bytes (32 columns), the low nibbles in the
 * low 128-bit lane and the high ones in the high lane index 4 byte tables
 * (pl[b][c]: byte b of code c, unscaled) with vpshufb, and two rounds of
 * byte and 16-bit unpacks put the 4 bytes of each code together: 4 x 8
 * weights whose order reorder_x256 gives x.  Each block's products are
 * summed apart and times its absmax added to acc (vpermps, the AVX2
 * permute over 8 floats, runs on one port only; vpshufb and the unpacks
 * share two). */
TGT256 AI void q4_span256(const int MR, const struct tk_qweight *q, size_t e0, const float *xs,
			  size_t cols, size_t c0, size_t c1, const uint8_t (*pl)[16], size_t pf,
			  __m256 *acc)
{
	const uint8_t *d = q->data + (e0 >> 1);
	const int lbs = __builtin_ctzll((unsigned long long)q->blocksize);
	const __m256i m0f = _mm256_set1_epi8(0x0f);
	__m256i tb[4];
	__m256 a0[4], a1[4];
#pragma GCC unroll 4
	for (int b = 0; b < 4; b++)
		tb[b] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pl[b]));
#pragma GCC unroll 4
	for (int i = 0; i < MR; i++)
		a0[i] = acc[2 * i], a1[i] = acc[2 * i + 1];
	for (size_t c = c0; c < c1;) {
		size_t b = (e0 + c) >> lbs, ce = ((b + 1) << lbs) - e0;
		__m256 p0[4], p1[4];
#pragma GCC unroll 4
		for (int i = 0; i < MR; i++)
			p0[i] = _mm256_setzero_ps(), p1[i] = _mm256_setzero_ps();
		for (ce = ce < c1 ? ce : c1; c < ce; c += 64) {
			_mm_prefetch((const char *)(d + (c >> 1)) + pf, _MM_HINT_T0);
#pragma GCC unroll 2
			for (int h = 0; h < 2; h++) {
				__m256i v = _mm256_broadcastsi128_si256(
					_mm_loadu_si128((const __m128i *)(d + (c >> 1) + 16 * h)));
				__m256i ix = _mm256_and_si256(
					_mm256_blend_epi32(v, _mm256_srli_epi16(v, 4), 0xf0), m0f);
				__m256i b0 = _mm256_shuffle_epi8(tb[0], ix);
				__m256i b1 = _mm256_shuffle_epi8(tb[1], ix);
				__m256i b2 = _mm256_shuffle_epi8(tb[2], ix);
				__m256i b3 = _mm256_shuffle_epi8(tb[3], ix);
				__m256i l01 = _mm256_unpacklo_epi8(b0, b1), h01 = _mm256_unpackhi_epi8(b0, b1);
				__m256i l23 = _mm256_unpacklo_epi8(b2, b3), h23 = _mm256_unpackhi_epi8(b2, b3);
				__m256 w0 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(l01, l23));
				__m256 w1 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(l01, l23));
				__m256 w2 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(h01, h23));
				__m256 w3 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(h01, h23));
#pragma GCC unroll 4
				for (int i = 0; i < MR; i++) {
					const float *xi = xs + i * cols + c + 32 * h;
					p0[i] = _mm256_fmadd_ps(w0, _mm256_load_ps(xi), p0[i]);
					p1[i] = _mm256_fmadd_ps(w1, _mm256_load_ps(xi + 8), p1[i]);
					p0[i] = _mm256_fmadd_ps(w2, _mm256_load_ps(xi + 16), p0[i]);
					p1[i] = _mm256_fmadd_ps(w3, _mm256_load_ps(xi + 24), p1[i]);
				}
			}
		}
		__m256 am = _mm256_set1_ps(q4_absmax(q, b));
#pragma GCC unroll 4
		for (int i = 0; i < MR; i++) {
			a0[i] = _mm256_fmadd_ps(p0[i], am, a0[i]);
			a1[i] = _mm256_fmadd_ps(p1[i], am, a1[i]);
		}
	}
#pragma GCC unroll 4
	for (int i = 0; i < MR; i++)
		acc[2 * i] = a0[i], acc[2 * i + 1] = a1[i];
}

/* Rows per block a thread takes: their accumulators stay in L1 between
 * column panels. */
#define Q4_RB 16
/* Floats of x per column panel: MR rows of it stay in L1 (16 KiB) while
 * the block's rows stream past, whatever m and cols. */
#define Q4_PANEL(MR) ((size_t)(4096 / (MR)) & ~(size_t)63)

typedef void (*q4_rows_fn)(const struct tk_qweight *, int64_t, int, int, const float *, size_t,
			   const uint8_t (*)[16], float *, int, float);

/* Output rows [r0, r1) (r1 - r0 <= Q4_RB) for MR rows of x, in column
 * panels; y[i ldy + r] = sum (+ beta y). */
#define Q4_ROWS(NAME, TGT, VEC, SPAN, ZERO, RED, MR)                                          \
	TGT __attribute__((noinline)) static void NAME(const struct tk_qweight *q, int64_t row0, \
						       int r0, int r1, const float *xs,          \
						       size_t cols, const uint8_t (*pl)[16],     \
						       float *y, int ldy, float beta)            \
	{                                                                                     \
		VEC acc[Q4_RB][2 * MR];                                                       \
		const size_t kc = Q4_PANEL(MR);                                               \
		/* prefetch: the codes Q4_PF bytes on, or with panels the next                \
		 * row's codes of this panel (those come next) */                             \
		const size_t pf = kc >= cols ? Q4_PF : cols / 2;                              \
		for (size_t p0 = 0; p0 < cols; p0 += kc) {                                    \
			size_t p1 = cols - p0 < kc ? cols : p0 + kc;                          \
			for (int r = r0; r < r1; r++) {                                       \
				if (!p0)                                                      \
					for (int j = 0; j < 2 * MR; j++)                      \
						acc[r - r0][j] = ZERO();                      \
				SPAN(MR, q, (size_t)(row0 + r) * cols, xs, cols, p0, p1, pl,  \
				     pf, acc[r - r0]);                                        \
			}                                                                     \
		}                                                                             \
		for (int r = r0; r < r1; r++)                                                 \
			for (int i = 0; i < MR; i++) {                                        \
				float sum = RED(acc[r - r0][2 * i], acc[r - r0][2 * i + 1]);  \
				float *o = y + (size_t)i * ldy + r;                           \
				*o = beta == 0.0f ? sum : sum + beta * *o;                    \
			}                                                                     \
	}

TGT512 AI float red512(__m512 a, __m512 b)
{
	return _mm512_reduce_add_ps(_mm512_add_ps(a, b));
}

TGT256 AI float red256(__m256 a, __m256 b)
{
	return hsum256(_mm256_add_ps(a, b));
}

#define Q4_512(MR) Q4_ROWS(q4_512_##MR, TGT512, __m512, q4_span512, _mm512_setzero_ps, red512, MR)
#define Q4_256(MR) Q4_ROWS(q4_256_##MR, TGT256, __m256, q4_span256, _mm256_setzero_ps, red256, MR)
Q4_512(1)
Q4_512(2)
Q4_512(3)
Q4_512(4)
Q4_512(5)
Q4_512(6)
Q4_512(7)
Q4_512(8)
Q4_256(1)
Q4_256(2)
Q4_256(3)
Q4_256(4)

static const q4_rows_fn q4_512[TK_GEMV_MAX_ROWS + 1] = {
	NULL, q4_512_1, q4_512_2, q4_512_3, q4_512_4, q4_512_5, q4_512_6, q4_512_7, q4_512_8,
};
static const q4_rows_fn q4_256[5] = { NULL, q4_256_1, q4_256_2, q4_256_3, q4_256_4 };

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
	const uint8_t (*pl)[16];
};

/* Output rows [bl Q4_RB, + Q4_RB) of the job, for all its rows of x. */
static void q4_block(void *p, int bl, int tid)
{
	const struct q4_job *j = p;
	const int group = j->isa == TK_CPU_ISA_AVX512 ? TK_GEMV_MAX_ROWS : 4;
	int r0 = bl * Q4_RB, r1 = j->n - r0 < Q4_RB ? j->n : r0 + Q4_RB;

	(void)tid;
	for (int i0 = 0; i0 < j->m; i0 += group) {
		int mr = j->m - i0 < group ? j->m - i0 : group;
		const float *xs = j->ws + (size_t)i0 * j->cols;
		float *yi = j->y + (size_t)i0 * j->ldy;
		if (j->isa == TK_CPU_ISA_AVX512)
			q4_512[mr](j->q, j->row0, r0, r1, xs, j->cols, j->pl, yi, j->ldy, j->beta);
		else
			q4_256[mr](j->q, j->row0, r0, r1, xs, j->cols, j->pl, yi, j->ldy, j->beta);
	}
}
#endif

void tk_cpu_qgemv4(enum tk_cpu_isa isa, int nt, const struct tk_qweight *q, int64_t row0, int n,
		   int m, const float *x, float *y, int ldy, float beta, float *ws)
{
#ifdef TK_GEMV_X86
	const size_t cols = (size_t)q->cols;
	const float *code = q->kind == TK_QK_FP4 ? tk_fp4_code : tk_nf4_code;
	uint8_t pl[4][16];

	for (int c = 0; c < 16; c++) {
		uint32_t bits;
		memcpy(&bits, &code[c], 4);
		for (int b = 0; b < 4; b++)
			pl[b][c] = (uint8_t)(bits >> 8 * b);
	}
	for (int i = 0; i < m; i++)
		if (isa == TK_CPU_ISA_AVX512)
			reorder_x512(ws + (size_t)i * cols, x + (size_t)i * cols, cols);
		else
			reorder_x256(ws + (size_t)i * cols, x + (size_t)i * cols, cols);
	struct q4_job j = { isa, q, row0, n, m, cols, ws, y, ldy, beta, pl };

	if ((long)n * (long)cols < GEMV_PAR_MIN)
		nt = 1;
	tk_pool_for(nt, (n + Q4_RB - 1) / Q4_RB, q4_block, &j);
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
	const int q4 = it[0].w == NULL;
	uint8_t pl[4][16];
	long work = 0;

	if (count < 1 || count > TK_GEMV_GROUP_MAX || m > TK_GEMV_MAX_ROWS || k < 1)
		return TK_E_UNSUPPORTED;
	for (int j = 0; j < count; j++) {
		if ((it[j].w == NULL) != q4 ||
		    (q4 ? !tk_cpu_qgemv4_ok(isa, it[j].q) || it[j].q->kind != it[0].q->kind
			: !tk_cpu_gemv_f32_ok(isa)))
			return TK_E_UNSUPPORTED;
		work += (long)it[j].n * k;
	}
	if (q4) {
		const float *code = it[0].q->kind == TK_QK_FP4 ? tk_fp4_code : tk_nf4_code;
		for (int c = 0; c < 16; c++) {
			uint32_t bits;
			memcpy(&bits, &code[c], 4);
			for (int b = 0; b < 4; b++)
				pl[b][c] = (uint8_t)(bits >> 8 * b);
		}
		/* x once for the whole group, in the codes' order */
		for (int i = 0; i < m; i++)
			if (isa == TK_CPU_ISA_AVX512)
				reorder_x512(ws + (size_t)i * k, x + (size_t)i * k, (size_t)k);
			else
				reorder_x256(ws + (size_t)i * k, x + (size_t)i * k, (size_t)k);
	}
	g.fn = q4 ? q4_block : f32_block;
	for (int j = 0; j < count; j++) {
		int rb = q4 ? Q4_RB : GEMV_BLOCK;
		if (q4)
			g.j[j].q4 = (struct q4_job){ isa, it[j].q, it[j].row0, it[j].n, m, (size_t)k,
						     ws, it[j].y, it[j].n, 0.0f, pl };
		else
			g.j[j].f32 = (struct f32_job){ isa, m, it[j].n, k, 1.0f, 0.0f, x, it[j].w,
						       (size_t)k, (size_t)k, (size_t)it[j].n,
						       it[j].y };
		g.first[j + 1] = g.first[j] + (it[j].n + rb - 1) / rb;
	}
	/* the threshold of one product, for the group's elements */
	tk_pool_for(work < GEMV_PAR_MIN ? 1 : nt, g.first[count], group_block, &g);
	return 0;
#else
	(void)isa, (void)nt, (void)m, (void)k, (void)x, (void)it, (void)count, (void)ws;
	return TK_E_UNSUPPORTED;
#endif
}

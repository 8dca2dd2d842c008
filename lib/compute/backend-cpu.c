/* backend-cpu.c - the CPU backend: fp32, OpenBLAS for GEMM, OpenMP across
 * rows and heads, everything else written here with loops the compiler
 * vectorizes (`omp simd`), except two kernels written with AVX-512
 * intrinsics where the CPU has it: attention's register tiles and AdamW
 * (which GCC leaves scalar).  They compute the same operations in the same
 * order as the portable loops that other CPUs run (AdamW: the same bits;
 * the tiles: fused multiply-adds where the portable loop rounds twice).
 * Decode steps (1..8 rows times a weight, fp32 or 4-bit) run the AVX2 or
 * AVX-512 loops of backend-cpu-gemv.c.  Which loops run is the level
 * cpu.h chooses (TK_CPU_ISA lowers it).
 *
 * Threads: every OpenMP region asks for be->threads, GEMMs included: they
 * are cut into slabs that single-threaded OpenBLAS computes on the OpenMP
 * threads, so that one pool of threads does all the work (cpu_matmul).
 * OpenBLAS is loaded with the kernel the CPU's features allow (blas.h).
 *
 * Determinism: every op gives bit-identical results when called twice, and
 * the reductions across rows (embedding_bwd, bias_grad, the dw/db of the
 * norms, sum_squares, the loss of cross_entropy) also do not depend on the
 * thread count: each column, chunk or row is summed by one thread in a
 * fixed order, and partial sums are combined in index order.
 *
 * Scratch: one workspace per backend (be->ctx), grown when an op needs more
 * (attention, cross_entropy, sum_squares) and kept for the next call.
 */
/* Without trapping math GCC if-converts the float compares in the loops
 * (tk_expf_poly's clamps, the max of a row) and so vectorizes them; tk never
 * looks at floating-point exception flags, and no result changes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "compute/backend.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/adamw8-common.h"
#include "base/math-common.h"
#include "base/quant-common.h"
#include "base/quant.h"
#include "base/rng.h"
#include "compute/bf16.h"
#include "compute/blas.h"
#include "compute/backend-cpu-int.h"
#include "compute/cpu.h"
#include "compute/pool.h"

/* Matrices held (tk_hold) while --bf16 takes the hw path: their bf16
 * codes, converted once. */
#define CPU_HELD 4
struct cpu_held {
	const float *p; /* NULL: a free entry */
	int rows, cols, ld;
	unsigned short *codes; /* [rows, cols], packed */
};

struct cpu_ctx {
	void *ws;      /* workspace, 64-byte aligned */
	size_t ws_cap; /* bytes */
	struct cpu_held held[CPU_HELD];
	/* bytes held by alloc and the workspace, their peak, and the limit
	 * (TK_DEVICE_MEMORY_LIMIT; 0: none) */
	_Atomic size_t in_use, peak;
	size_t limit;
};

/* Takes bytes from the count: 0, or -1 (nothing taken) when that would go
 * beyond the limit.  The peak is raised to the new total. */
static int mem_take(struct cpu_ctx *c, size_t bytes)
{
	size_t now = atomic_fetch_add(&c->in_use, bytes) + bytes;
	if (c->limit && (now > c->limit || now < bytes)) {
		atomic_fetch_sub(&c->in_use, bytes);
		return -1;
	}
	size_t pk = atomic_load(&c->peak);
	while (now > pk && !atomic_compare_exchange_weak(&c->peak, &pk, now))
		;
	return 0;
}

static void mem_give(struct cpu_ctx *c, size_t bytes)
{
	atomic_fetch_sub(&c->in_use, bytes);
}

/* Work below this many elements runs on one thread. */
#define PAR_MIN 16384
/* The forward ops of a decode step (at most TK_GEMV_MAX_ROWS rows) run on
 * one thread, whatever their size: their GEMVs and attention run on the
 * pool (pool.h), and an OpenMP team woken between them spins on after its
 * region, on the cores the pool's loops need (measured on the 2-core Zen 5
 * here: a 1B model's batch-8 decode spent 30% of its time in libgomp's
 * spin).  Row ops say so by their rows; flat ops, which know only their
 * length, by FLAT_PAR_MIN: above 8 rows of a 7B Llama's 11008-wide MLP. */
#define PAR_ROWS(rows, work) ((rows) > TK_GEMV_MAX_ROWS && (size_t)(work) >= PAR_MIN)
#define FLAT_PAR_MIN (1L << 17)
/* Columns per block in the column-ordered reductions. */
#define COLS 64
/* Elements per chunk of sum_squares: partial sums combined in order. */
#define SUM_CHUNK 32768
/* Query rows per attention task. */
#define ATT_ROWS 16
/* Largest head_dim for RoPE (the angle tables live on the stack). */
#define ROPE_MAX_DIM 1024

/* Copies of the hot loops for AVX-512, AVX2 and plain x86-64 (the library
 * is built for plain x86-64): NAME_body, always inlined into NAME_avx512,
 * NAME_avx2 and NAME_generic, each vectorized by the compiler for its own
 * instruction set.  ISA_COPY(NAME, isa) picks one by tk_cpu_isa(), read
 * once per op, so TK_CPU_ISA reaches these loops as it reaches the GEMM's
 * and GEMV's (GCC's target_clones, used before, picked by the CPU alone:
 * the test matrix's avx2 leg ran the AVX-512 copies).  args may name
 * ISA_LEVEL, the copy's own enum tk_cpu_isa.  OpenMP regions call them on
 * chunks: the functions GCC outlines for a region are not copied. */
#define ISA_COPY_1(ret, RET, name, level, params, args) \
	static ret name params                          \
	{                                               \
		const enum tk_cpu_isa ISA_LEVEL = level; \
		(void)ISA_LEVEL;                        \
		RET args;                               \
	}
#if defined(__x86_64__) && defined(__GNUC__)
#define ISA_BODY static inline __attribute__((always_inline))
#define ISA_COPIES_(ret, RET, name, body, params, args)                                   \
	__attribute__((target("avx512f")))                                                 \
	ISA_COPY_1(ret, RET, name##_avx512, TK_CPU_ISA_AVX512, params, body args)           \
	__attribute__((target("avx2")))                                                    \
	ISA_COPY_1(ret, RET, name##_avx2, TK_CPU_ISA_AVX2, params, body args)               \
	ISA_COPY_1(ret, RET, name##_generic, TK_CPU_ISA_GENERIC, params, body args)         \
	static ret(*const name##_isa[3]) params = { name##_generic, name##_avx2, name##_avx512 }
#define ISA_COPY(name, isa) (name##_isa[(isa)])
#else
#define ISA_BODY static inline
#define ISA_COPIES_(ret, RET, name, body, params, args)                                   \
	ISA_COPY_1(ret, RET, name##_generic, TK_CPU_ISA_GENERIC, params, body args)         \
	static ret(*const name##_isa[1]) params = { name##_generic }
#define ISA_COPY(name, isa) (name##_isa[0])
#endif
/* ISA_COPIES for a function that returns ret, ISA_VOID_COPIES for one that
 * returns nothing; params and args in parentheses.  ISA_VOID_COPIES_OF
 * names the body: copies of one body for another value of its args. */
#define ISA_COPIES(ret, name, params, args) ISA_COPIES_(ret, return, name, name##_body, params, args)
#define ISA_VOID_COPIES(name, params, args) ISA_COPIES_(void, , name, name##_body, params, args)
#define ISA_VOID_COPIES_OF(name, body, params, args) ISA_COPIES_(void, , name, body, params, args)

/* Elements per chunk of the elementwise ops. */
#define EW_CHUNK 16384

/* The workspace, at least bytes long; NULL when it cannot grow. */
static void *ws_get(struct tk_backend *be, size_t bytes)
{
	struct cpu_ctx *c = be->ctx;
	if (bytes <= c->ws_cap)
		return c->ws;
	void *p = NULL;
	size_t cap = bytes + bytes / 4;
	if (mem_take(c, cap))
		return NULL;
	if (posix_memalign(&p, 64, cap)) {
		mem_give(c, cap);
		return NULL;
	}
	free(c->ws);
	mem_give(c, c->ws_cap);
	c->ws = p;
	c->ws_cap = cap;
	return p;
}

static inline float dot(const float *a, const float *b, int n)
{
	float s = 0.0f;
#pragma omp simd reduction(+ : s)
	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* GEMM on the backend's OpenMP threads: C is cut into one slab of rows (or
 * of columns, whichever is longer) per thread, and each thread runs
 * OpenBLAS single-threaded on its slab.  OpenBLAS's own pool of threads
 * would be faster to start but fights with the OpenMP threads that spin
 * after each region: measured on 2 cores, a GEMM then a GELU in turns took
 * 28% longer than the two alone with OpenBLAS threading, 4% this way, at
 * the same GEMM speed (bench/ops.c). */
#define GEMM_MIN_SPLIT (64L * 64 * 64) /* m n k below which one thread does it */

static int cpu_matmul_f32(struct tk_backend *be, int ta, int tb, int m, int n, int k,
			  float alpha, const float *a, int lda, const float *b, int ldb, float beta,
			  float *c, int ldc)
{
	enum CBLAS_TRANSPOSE tra = ta ? CblasTrans : CblasNoTrans;
	enum CBLAS_TRANSPOSE trb = tb ? CblasTrans : CblasNoTrans;
	int nt = be->threads, along_m = m >= n, len = along_m ? m : n;
	enum tk_cpu_isa isa = tk_cpu_isa();
	if (!ta && tb && m <= TK_GEMV_MAX_ROWS && k > 0 && tk_cpu_gemv_f32_ok(isa)) {
		/* a few rows times a [n, k] matrix (a decode step): the weight
		 * streamed once for all the rows (backend-cpu-gemv.c) */
		tk_cpu_gemv_f32(isa, nt, m, n, k, alpha, a, (size_t)lda, b, (size_t)ldb, beta, c,
				(size_t)ldc);
		return 0;
	}
	if (!ta && m > TK_GEMV_MAX_ROWS && tk_cpu_thin_takes(isa, k, beta)) {
		/* a small inner dimension (LoRA's rank) at beta 0: C written
		 * once, without OpenBLAS's zeroing pass */
		tk_cpu_thin(isa, nt, tb, m, n, k, alpha, a, (size_t)lda, b, (size_t)ldb, beta, c,
			    (size_t)ldc);
		return 0;
	}
	if (m == 1 && tb && k > 0) {
		/* one row times a [n, k] matrix (a decode step): GEMV, which
		 * streams the matrix once instead of packing it for a GEMM */
		int step = (n + nt - 1) / nt;
		step = (step + 15) / 16 * 16;
		int nslab = (n + step - 1) / step;
#pragma omp parallel for num_threads(nt) schedule(static) if (nslab > 1 && (long)n * k >= GEMM_MIN_SPLIT)
		for (int sl = 0; sl < nslab; sl++) {
			int j0 = sl * step, cnt = n - j0 < step ? n - j0 : step;
			tk_sgemv(cnt, k, alpha, b + (size_t)j0 * ldb, ldb, a, ta ? lda : 1, beta,
				 c + j0, 1);
		}
		return 0;
	}
	if (nt == 1 || (long)m * n * (k > 0 ? k : 1) < GEMM_MIN_SPLIT || len < 32) {
		tk_sgemm(tra, trb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return 0;
	}
	/* slabs of whole 16-row (or column) tiles */
	int step = (len + nt - 1) / nt;
	step = (step + 15) / 16 * 16;
	int nslab = (len + step - 1) / step;
#pragma omp parallel for num_threads(nt) schedule(static)
	for (int sl = 0; sl < nslab; sl++) {
		int i0 = sl * step, cnt = len - i0 < step ? len - i0 : step;
		if (along_m)
			tk_sgemm(tra, trb, cnt, n, k, alpha, ta ? a + i0 : a + (size_t)i0 * lda, lda,
				 b, ldb, beta, c + (size_t)i0 * ldc, ldc);
		else
			tk_sgemm(tra, trb, m, cnt, k, alpha, a, lda,
				 tb ? b + (size_t)i0 * ldb : b + i0, ldb, beta, c + i0, ldc);
	}
	return 0;
}

/* o[0, n) = s[0, n) rounded to prec, or (prec < 0) their bf16 codes into
 * the unsigned shorts at o: integer arithmetic, so every clone gives the
 * same bits. */
ISA_BODY void round_row_body(void *o, const float *s, int n, int prec)
{
	if (prec < 0) {
		unsigned short *c = o;
#pragma omp simd
		for (int j = 0; j < n; j++)
			c[j] = tk_bf16_code(s[j]);
		return;
	}
	float *f = o;
	if (prec == TK_PREC_BF16) {
#pragma omp simd
		for (int j = 0; j < n; j++)
			f[j] = tk_round_bf16(s[j]);
	} else if (prec == TK_PREC_FP16) {
		for (int j = 0; j < n; j++)
			f[j] = tk_round_f16(s[j]);
	} else {
#pragma omp simd
		for (int j = 0; j < n; j++)
			f[j] = tk_round_tf32(s[j]);
	}
}
ISA_VOID_COPIES(round_row, (void *o, const float *s, int n, int prec),
		(o, s, n, prec));

/* dst[rows, cols] (packed) = src (row stride ld) rounded to prec (floats),
 * or with prec < 0 the bf16 codes of src (unsigned shorts). */
static void round_copy(struct tk_backend *be, void *dst, const float *src, int rows, int cols,
		       int ld, int prec)
{
	int nt = be->threads;
	size_t esz = prec < 0 ? sizeof(unsigned short) : sizeof(float);
	const int isa = (int)tk_cpu_isa();
#pragma omp parallel for num_threads(nt) schedule(static) if ((size_t)rows * cols >= PAR_MIN)
	for (int r = 0; r < rows; r++)
		ISA_COPY(round_row, isa)((char *)dst + (size_t)r * cols * esz, src + (size_t)r * ld,
					 cols, prec);
}

/* The held bf16 codes of the matrix at p with this shape, or NULL. */
static const unsigned short *held_codes(struct tk_backend *be, const float *p, int rows,
					int cols, int ld)
{
	struct cpu_ctx *c = be->ctx;
	for (int i = 0; i < CPU_HELD; i++) {
		struct cpu_held *h = &c->held[i];
		if (h->p == p && h->rows == rows && h->cols == cols && h->ld == ld)
			return h->codes;
	}
	return NULL;
}

static void cpu_unhold(struct tk_backend *be, const float *p)
{
	struct cpu_ctx *c = be->ctx;
	for (int i = 0; i < CPU_HELD; i++) {
		struct cpu_held *h = &c->held[i];
		if (h->p == p) {
			mem_give(c, (size_t)h->rows * h->cols * sizeof(*h->codes));
			free(h->codes);
			memset(h, 0, sizeof(*h));
		}
	}
}

/* Only the hw bf16 path converts operands worth keeping: the emulation
 * rounds into fp32 and is the slow reference anyway. */
static void cpu_hold(struct tk_backend *be, const float *p, int rows, int cols, int ld)
{
	struct cpu_ctx *c = be->ctx;
	struct cpu_held *h = NULL;
	size_t bytes = (size_t)rows * cols * sizeof(unsigned short);
	if (be->prec != TK_PREC_BF16 || tk_bf16_path() != TK_BF16_HW || tk_bf16_check(NULL))
		return;
	cpu_unhold(be, p);
	for (int i = 0; i < CPU_HELD && !h; i++)
		if (!c->held[i].p)
			h = &c->held[i];
	if (!h || mem_take(c, bytes))
		return;
	if (!(h->codes = malloc(bytes))) {
		mem_give(c, bytes);
		return;
	}
	round_copy(be, h->codes, p, rows, cols, ld, -1);
	h->p = p, h->rows = rows, h->cols = cols, h->ld = ld;
}

/* fp32 GEMM as above; in another precision (be->prec) A and B are first
 * rounded into the workspace, which emulates tensor cores: rounded
 * operands, exact products (two 11-bit significands fit fp32's 24),
 * fp32 sums - slower than fp32, the reference for the GPU's GEMMs.  bf16
 * on the hw path (bf16.h) instead passes the operands' bf16 codes to
 * oneDNN's bf16 GEMM: the same products, fp32 sums in its own order. */
static int cpu_matmul(struct tk_backend *be, int ta, int tb, int m, int n, int k, float alpha,
		      const float *a, int lda, const float *b, int ldb, float beta, float *c,
		      int ldc)
{
	if (be->prec == TK_PREC_FP32 || k == 0)
		return cpu_matmul_f32(be, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	/* stored shapes: A [m,k] or [k,m] (ta), B [k,n] or [n,k] (tb) */
	int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
	size_t na = (size_t)ar * ac, nb = (size_t)br * bc;
	if (be->prec == TK_PREC_BF16 && tk_bf16_path() == TK_BF16_HW) {
		struct tk_diag d;
		const unsigned short *ca = held_codes(be, a, ar, ac, lda);
		const unsigned short *cb = held_codes(be, b, br, bc, ldb);
		unsigned short *h = ws_get(be, ((ca ? 0 : na) + (cb ? 0 : nb)) * sizeof(*h));
		if (!h && (!ca || !cb))
			return TK_E_NOMEM;
		int rc = tk_bf16_check(&d);
		if (rc)
			return rc;
		if (!ca) {
			round_copy(be, h, a, ar, ac, lda, -1);
			ca = h, h += na;
		}
		if (!cb) {
			round_copy(be, h, b, br, bc, ldb, -1);
			cb = h;
		}
		return tk_bf16_gemm(ta, tb, m, n, k, alpha, ca, ac, cb, bc, beta, c, ldc,
				    be->threads, &d);
	}
	float *ra = ws_get(be, (na + nb) * sizeof(float));
	if (!ra)
		return TK_E_NOMEM;
	float *rb = ra + na;
	round_copy(be, ra, a, ar, ac, lda, be->prec);
	round_copy(be, rb, b, br, bc, ldb, be->prec);
	return cpu_matmul_f32(be, ta, tb, m, n, k, alpha, ra, ac, rb, bc, beta, c, ldc);
}

/* Every precision is emulated on the CPU; bf16 may take oneDNN's GEMM
 * instead (bf16.h), which must then load. */
static int cpu_prec_ok(struct tk_backend *be, int prec, struct tk_diag *d)
{
	(void)be;
	if (prec == TK_PREC_BF16)
		return tk_bf16_check(d);
	return prec >= TK_PREC_FP32 && prec <= TK_PREC_FP16 ? 0 : TK_E_UNSUPPORTED;
}

static int cpu_layernorm_fwd(struct tk_backend *be, float *y, float *mean, float *rstd,
			     const float *x, const float *w, const float *b, int rows, int dim,
			     float eps)
{
	int nt = be->threads;
#pragma omp parallel for num_threads(nt) schedule(static) if (PAR_ROWS(rows, (size_t)rows * dim))
	for (int r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * dim;
		float *yr = y + (size_t)r * dim;
		double s = 0.0, ss = 0.0;
#pragma omp simd reduction(+ : s)
		for (int j = 0; j < dim; j++)
			s += xr[j];
		float mu = (float)(s / dim);
#pragma omp simd reduction(+ : ss)
		for (int j = 0; j < dim; j++) {
			double dx = (double)xr[j] - mu;
			ss += dx * dx;
		}
		float rs = (float)(1.0 / sqrt(ss / dim + eps));
		if (b) {
#pragma omp simd
			for (int j = 0; j < dim; j++)
				yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
		} else {
#pragma omp simd
			for (int j = 0; j < dim; j++)
				yr[j] = (xr[j] - mu) * rs * w[j];
		}
		if (mean)
			mean[r] = mu;
		if (rstd)
			rstd[r] = rs;
	}
	return 0;
}

/* dw[j] += sum_r dy[r,j] * (x[r,j] - mean[r]) * rstd[r] (x NULL: dy * 1),
 * db[j] += sum_r dy[r,j] (db may be NULL); rows in order, per column. */
static void colsum_norm(int nt, float *dw, float *db, const float *dy, const float *x,
			const float *mean, const float *rstd, int rows, int dim)
{
	int nblk = (dim + COLS - 1) / COLS;
#pragma omp parallel for num_threads(nt) schedule(static) if ((size_t)rows * dim >= PAR_MIN)
	for (int bk = 0; bk < nblk; bk++) {
		int j0 = bk * COLS, n = dim - j0 < COLS ? dim - j0 : COLS;
		double aw[COLS], ab[COLS];
		for (int j = 0; j < n; j++)
			aw[j] = ab[j] = 0.0;
		for (int r = 0; r < rows; r++) {
			const float *dyr = dy + (size_t)r * dim + j0;
			if (db) {
#pragma omp simd
				for (int j = 0; j < n; j++)
					ab[j] += dyr[j];
			}
			if (!dw)
				continue;
			const float *xr = x + (size_t)r * dim + j0;
			float mu = mean ? mean[r] : 0.0f, rs = rstd[r];
#pragma omp simd
			for (int j = 0; j < n; j++)
				aw[j] += dyr[j] * ((xr[j] - mu) * rs);
		}
		for (int j = 0; j < n; j++) {
			if (dw)
				dw[j0 + j] += (float)aw[j];
			if (db)
				db[j0 + j] += (float)ab[j];
		}
	}
}

static int cpu_layernorm_bwd(struct tk_backend *be, float *dx, float *dw, float *db,
			     const float *dy, const float *x, const float *w, const float *mean,
			     const float *rstd, int rows, int dim)
{
	int nt = be->threads;
	if (dx) {
#pragma omp parallel for num_threads(nt) schedule(static) if ((size_t)rows * dim >= PAR_MIN)
		for (int r = 0; r < rows; r++) {
			const float *xr = x + (size_t)r * dim, *dyr = dy + (size_t)r * dim;
			float *dxr = dx + (size_t)r * dim;
			float mu = mean[r], rs = rstd[r];
			float sg = 0.0f, sgx = 0.0f;
#pragma omp simd reduction(+ : sg, sgx)
			for (int j = 0; j < dim; j++) {
				float g = dyr[j] * w[j];
				sg += g;
				sgx += g * ((xr[j] - mu) * rs);
			}
			float a = sg / dim, c = sgx / dim;
#pragma omp simd
			for (int j = 0; j < dim; j++) {
				float xh = (xr[j] - mu) * rs;
				dxr[j] = rs * (dyr[j] * w[j] - a - xh * c);
			}
		}
	}
	if (dw || db)
		colsum_norm(nt, dw, db, dy, x, mean, rstd, rows, dim);
	return 0;
}

static int cpu_rmsnorm_fwd(struct tk_backend *be, float *y, float *rstd, const float *x,
			   const float *w, float w_off, int rows, int dim, float eps)
{
	int nt = be->threads;
#pragma omp parallel for num_threads(nt) schedule(static) if (PAR_ROWS(rows, (size_t)rows * dim))
	for (int r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * dim;
		float *yr = y + (size_t)r * dim;
		double ss = 0.0;
#pragma omp simd reduction(+ : ss)
		for (int j = 0; j < dim; j++)
			ss += (double)xr[j] * xr[j];
		/* HF: variance in fp32, then rsqrt(variance + eps) */
		float rs = 1.0f / sqrtf((float)(ss / dim) + eps);
#pragma omp simd
		for (int j = 0; j < dim; j++)
			yr[j] = (w_off + w[j]) * (xr[j] * rs);
		if (rstd)
			rstd[r] = rs;
	}
	return 0;
}

static int cpu_rmsnorm_bwd(struct tk_backend *be, float *dx, float *dw, const float *dy,
			   const float *x, const float *w, float w_off, const float *rstd,
			   int rows, int dim)
{
	int nt = be->threads;
	if (dx) {
#pragma omp parallel for num_threads(nt) schedule(static) if ((size_t)rows * dim >= PAR_MIN)
		for (int r = 0; r < rows; r++) {
			const float *xr = x + (size_t)r * dim, *dyr = dy + (size_t)r * dim;
			float *dxr = dx + (size_t)r * dim;
			float rs = rstd[r], sgx = 0.0f;
#pragma omp simd reduction(+ : sgx)
			for (int j = 0; j < dim; j++)
				sgx += dyr[j] * (w_off + w[j]) * xr[j];
			float c = rs * rs * rs * sgx / dim;
#pragma omp simd
			for (int j = 0; j < dim; j++)
				dxr[j] = rs * dyr[j] * (w_off + w[j]) - xr[j] * c;
		}
	}
	if (dw)
		colsum_norm(nt, dw, NULL, dy, x, NULL, rstd, rows, dim);
	return 0;
}

enum ew_op { EW_GELU, EW_GELU_BWD, EW_SWIGLU, EW_SWIGLU_BWD, EW_GEGLU, EW_GEGLU_BWD };

/* One chunk [i0, i1) of an elementwise op: y = f(a, b, c) (see the ops). */
ISA_BODY void ew_range_body(int op, float *y, float *y2, const float *a, const float *b,
			    const float *c, size_t i0, size_t i1)
{
	switch (op) {
	case EW_GELU: /* y = gelu(a) */
#pragma omp simd
		for (size_t i = i0; i < i1; i++)
			y[i] = tk_gelu_tanh_exp(a[i]);
		break;
	case EW_GELU_BWD: /* y = b * gelu'(a) */
#pragma omp simd
		for (size_t i = i0; i < i1; i++)
			y[i] = b[i] * tk_gelu_tanh_exp_grad(a[i]);
		break;
	case EW_SWIGLU: /* y = silu(a) * b */
#pragma omp simd
		for (size_t i = i0; i < i1; i++)
			y[i] = tk_silu_exp(a[i]) * b[i];
		break;
	case EW_SWIGLU_BWD: /* y = dgate, y2 = dup from gate a, up b, dy c */
#pragma omp simd
		for (size_t i = i0; i < i1; i++) {
			float gt = a[i], u = b[i], d = c[i];
			float s = 1.0f / (1.0f + tk_expf_poly(-gt));
			y2[i] = d * (gt * s);
			y[i] = d * u * (s * (1.0f + gt * (1.0f - s)));
		}
		break;
	case EW_GEGLU: /* y = gelu(a) * b */
#pragma omp simd
		for (size_t i = i0; i < i1; i++)
			y[i] = tk_gelu_tanh_exp(a[i]) * b[i];
		break;
	case EW_GEGLU_BWD: /* y = dgate, y2 = dup from gate a, up b, dy c */
#pragma omp simd
		for (size_t i = i0; i < i1; i++) {
			float gt = a[i], u = b[i], d = c[i];
			y2[i] = d * tk_gelu_tanh_exp(gt);
			y[i] = d * u * tk_gelu_tanh_exp_grad(gt);
		}
		break;
	}
}
ISA_VOID_COPIES(ew_range,
		(int op, float *y, float *y2, const float *a, const float *b, const float *c,
		 size_t i0, size_t i1),
		(op, y, y2, a, b, c, i0, i1));

static void ew_run(struct tk_backend *be, int op, float *y, float *y2, const float *a,
		   const float *b, const float *c, size_t n)
{
	int nt = be->threads;
	size_t nch = (n + EW_CHUNK - 1) / EW_CHUNK;
	const int isa = (int)tk_cpu_isa();
#pragma omp parallel for num_threads(nt) schedule(static) if (nch > 1 && n >= FLAT_PAR_MIN)
	for (size_t ch = 0; ch < nch; ch++) {
		size_t i0 = ch * EW_CHUNK, i1 = i0 + EW_CHUNK < n ? i0 + EW_CHUNK : n;
		ISA_COPY(ew_range, isa)(op, y, y2, a, b, c, i0, i1);
	}
}

static int cpu_gelu_fwd(struct tk_backend *be, float *y, const float *x, size_t n)
{
	ew_run(be, EW_GELU, y, NULL, x, NULL, NULL, n);
	return 0;
}

static int cpu_gelu_bwd(struct tk_backend *be, float *dx, const float *x, const float *dy,
			size_t n)
{
	ew_run(be, EW_GELU_BWD, dx, NULL, x, dy, NULL, n);
	return 0;
}

static int cpu_swiglu_fwd(struct tk_backend *be, float *y, const float *gate, const float *up,
			  size_t n)
{
	ew_run(be, EW_SWIGLU, y, NULL, gate, up, NULL, n);
	return 0;
}

static int cpu_swiglu_bwd(struct tk_backend *be, float *dgate, float *dup, const float *gate,
			  const float *up, const float *dy, size_t n)
{
	ew_run(be, EW_SWIGLU_BWD, dgate, dup, gate, up, dy, n);
	return 0;
}

static int cpu_geglu_fwd(struct tk_backend *be, float *y, const float *gate, const float *up,
			 size_t n)
{
	ew_run(be, EW_GEGLU, y, NULL, gate, up, NULL, n);
	return 0;
}

static int cpu_geglu_bwd(struct tk_backend *be, float *dgate, float *dup, const float *gate,
			 const float *up, const float *dy, size_t n)
{
	ew_run(be, EW_GEGLU_BWD, dgate, dup, gate, up, dy, n);
	return 0;
}

static int cpu_logit_softcap(struct tk_backend *be, float *x, size_t n, float cap)
{
	int nt = be->threads;
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= FLAT_PAR_MIN)
	for (size_t i = 0; i < n; i++)
		x[i] = tk_softcap(x[i], cap);
	return 0;
}

static int cpu_bias_add(struct tk_backend *be, float *y, const float *bias, int rows, int dim,
			int set)
{
	int nt = be->threads;
#pragma omp parallel for num_threads(nt) schedule(static) if (PAR_ROWS(rows, (size_t)rows * dim))
	for (int r = 0; r < rows; r++) {
		float *yr = y + (size_t)r * dim;
		if (set) {
			memcpy(yr, bias, (size_t)dim * sizeof(float));
			continue;
		}
#pragma omp simd
		for (int j = 0; j < dim; j++)
			yr[j] += bias[j];
	}
	return 0;
}

static int cpu_bias_grad(struct tk_backend *be, float *dbias, const float *dy, int rows, int dim)
{
	colsum_norm(be->threads, NULL, dbias, dy, NULL, NULL, NULL, rows, dim);
	return 0;
}

static int cpu_axpy(struct tk_backend *be, float *y, float a, const float *x, size_t n)
{
	int nt = be->threads;
#pragma omp parallel for simd num_threads(nt) schedule(static) if (n >= FLAT_PAR_MIN)
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
	return 0;
}

static int cpu_add_noise(struct tk_backend *be, float *x, size_t n, uint64_t key, float mag)
{
	int nt = be->threads;
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= PAR_MIN)
	for (size_t i = 0; i < n; i++)
		x[i] += tk_noise_uniform(key, i, mag);
	return 0;
}

static int cpu_scale(struct tk_backend *be, float *x, float s, size_t n)
{
	int nt = be->threads;
#pragma omp parallel for simd num_threads(nt) schedule(static) if (n >= FLAT_PAR_MIN)
	for (size_t i = 0; i < n; i++)
		x[i] *= s;
	return 0;
}

/* As HF: angle = pos * inv_freq in fp32, then cos and sin of it, each
 * times scale in fp32; x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin for the
 * pairs (i, i + d/2).  The inverse is the transpose: scale times the
 * rotation by -angle. */
static int cpu_rope(struct tk_backend *be, float *x, const int32_t *pos, int rows, int heads,
		    int head_dim, int rot_dim, const float *inv, float scale, int inverse)
{
	int nt = be->threads, half = rot_dim / 2;
	if (rot_dim > ROPE_MAX_DIM)
		return TK_E_UNSUPPORTED;
	float sgn = inverse ? -1.0f : 1.0f;
#pragma omp parallel for num_threads(nt) schedule(static) \
	if (PAR_ROWS(rows, (size_t)rows * heads * rot_dim))
	for (int r = 0; r < rows; r++) {
		float cs[ROPE_MAX_DIM / 2], sn[ROPE_MAX_DIM / 2];
		float p = (float)pos[r];
		for (int i = 0; i < half; i++) {
			float ang = p * inv[i];
			cs[i] = cosf(ang) * scale;
			sn[i] = sgn * (sinf(ang) * scale);
		}
		for (int h = 0; h < heads; h++) {
			float *x1 = x + ((size_t)r * heads + h) * head_dim, *x2 = x1 + half;
#pragma omp simd
			for (int i = 0; i < half; i++) {
				float a = x1[i], b = x2[i];
				x1[i] = a * cs[i] - b * sn[i];
				x2[i] = b * cs[i] + a * sn[i];
			}
		}
	}
	return 0;
}

/* Attention.  Every product in it (Q K^T, P V, dS K, dS^T Q, P^T dO, dO
 * V^T) is computed in tiles of TR rows by TW columns held in registers
 * (tile below): per step down the inner dimension, TR broadcasts and TW/16
 * vector loads feed TR*TW/16 vector multiply-adds, where a row at a time
 * had one load per multiply-add.  Scores come from K (and, backward, V)
 * transposed once per call into the workspace, kt[b][kv head][d][j] with
 * rows of ldt = T rounded up to TW (zero padding), so that keys are the
 * contiguous columns of a tile.  Each output element is summed in a fixed
 * order (down the inner dimension) that depends neither on the threads nor
 * on the vector width.  The per-task functions have clones for AVX2 and
 * AVX-512 (the library is built for plain x86-64). */
#define TR 8
#define TW 32

struct att_dims {
	int B, T, H, KV, D, grp, ldt;
	size_t qs, ks; /* row strides of q and k */
	float scale, cap; /* struct tk_attn_opts: scale, softcap */
	int win;	  /* and window */
	int isa;  /* tk_cpu_isa(): which ISA_COPY and full-tile kernel run */
};

/* kt[(b, kv head)] = K^T of that head, [D][ldt], padding zeroed. */
static void transpose_heads(int nt, float *kt, const float *k, const struct att_dims *a)
{
	long n = (long)a->B * a->KV;
#pragma omp parallel for num_threads(nt) schedule(static) if (n > 1)
	for (long bh = 0; bh < n; bh++) {
		int b = (int)(bh / a->KV), kh = (int)(bh % a->KV);
		float *dst = kt + (size_t)bh * a->D * a->ldt;
		const float *src = k + (size_t)b * a->T * a->ks + (size_t)kh * a->D;
		/* in blocks of 16 x 16: 16 rows of k read, 16 lines written */
		for (int j0 = 0; j0 < a->T; j0 += 16) {
			int nj = a->T - j0 < 16 ? a->T - j0 : 16;
			for (int d0 = 0; d0 < a->D; d0 += 16) {
				int nd = a->D - d0 < 16 ? a->D - d0 : 16;
				for (int d = d0; d < d0 + nd; d++) {
					float *row = dst + (size_t)d * a->ldt + j0;
					const float *col = src + (size_t)j0 * a->ks + d;
					for (int j = 0; j < nj; j++)
						row[j] = col[(size_t)j * a->ks];
				}
			}
		}
		for (int d = 0; d < a->D; d++)
			for (int j = a->T; j < a->ldt; j++)
				dst[(size_t)d * a->ldt + j] = 0.0f;
	}
}

/* c[i][w] = alpha * sum_{l < L} A(i, l) b[l][w] (+ c[i][w] when acc) for
 * i < nr <= TR, w < nw <= TW, with A(i, l) = a[i ai + l al] and rows of b
 * (ldb) and c (ldc); l in order. */
static inline __attribute__((always_inline)) void
tile_c(float *c, size_t ldc, const float *a, size_t ai, size_t al, const float *b, size_t ldb,
       int L, float alpha, int acc, int nr, int nw)
{
	float s[TR][TW];
	for (int i = 0; i < nr; i++)
		for (int w = 0; w < nw; w++)
			s[i][w] = 0.0f;
	for (int l = 0; l < L; l++) {
		const float *bl = b + (size_t)l * ldb, *x = a + (size_t)l * al;
		for (int i = 0; i < nr; i++) {
			float xi = x[i * ai];
#pragma omp simd
			for (int w = 0; w < nw; w++)
				s[i][w] += xi * bl[w];
		}
	}
	for (int i = 0; i < nr; i++)
		for (int w = 0; w < nw; w++)
			c[i * ldc + w] = (acc ? c[i * ldc + w] : 0.0f) + alpha * s[i][w];
}

#if defined(__x86_64__) && defined(__GNUC__)
#define TK_TILE_AVX512 1
/* The full tile (TR = 8 rows, TW = 32 columns) with AVX-512: 16
 * accumulators in registers; per step down l, 2 loads of b and 8
 * broadcasts of A feed 16 fused multiply-adds. */
__attribute__((target("avx512f"), noinline)) static void
tile_avx512(float *c, size_t ldc, const float *a, size_t ai, size_t al, const float *b,
	    size_t ldb, int L, float alpha, int acc)
{
	__m512 s[TR][2];
#pragma GCC unroll 8
	for (int i = 0; i < TR; i++)
		s[i][0] = s[i][1] = _mm512_setzero_ps();
	for (int l = 0; l < L; l++) {
		const float *bl = b + (size_t)l * ldb, *x = a + (size_t)l * al;
		__m512 b0 = _mm512_loadu_ps(bl), b1 = _mm512_loadu_ps(bl + 16);
#pragma GCC unroll 8
		for (int i = 0; i < TR; i++) {
			__m512 xi = _mm512_set1_ps(x[i * ai]);
			s[i][0] = _mm512_fmadd_ps(xi, b0, s[i][0]);
			s[i][1] = _mm512_fmadd_ps(xi, b1, s[i][1]);
		}
	}
	__m512 al16 = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
	for (int i = 0; i < TR; i++) {
		float *ci = c + i * ldc;
		if (acc) {
			_mm512_storeu_ps(ci, _mm512_fmadd_ps(al16, s[i][0], _mm512_loadu_ps(ci)));
			_mm512_storeu_ps(ci + 16,
					 _mm512_fmadd_ps(al16, s[i][1], _mm512_loadu_ps(ci + 16)));
		} else {
			_mm512_storeu_ps(ci, _mm512_mul_ps(al16, s[i][0]));
			_mm512_storeu_ps(ci + 16, _mm512_mul_ps(al16, s[i][1]));
		}
	}
}

/* The full tile with AVX2 and FMA, in four parts of 4 rows x 16 columns:
 * 8 accumulators in registers (tile_c's 8 x 32 sums do not fit 16 ymm
 * and went through memory at every step down l); per step, 2 loads of b
 * and 4 broadcasts of A feed 8 fused multiply-adds.  Measured on a 2-core
 * AMD Zen 3 (AVX2 only), attention of GPT-2's training shape, B 4, T 256:
 * forward and backward 16.0-18.2 ms against 38.6-46.4 with tile_c
 * (bench-ops train, two runs of each, interleaved). */
__attribute__((target("avx2,fma"), noinline)) static void
tile_avx2(float *c, size_t ldc, const float *a, size_t ai, size_t al, const float *b,
	  size_t ldb, int L, float alpha, int acc)
{
	const __m256 al8 = _mm256_set1_ps(alpha);

	for (int w0 = 0; w0 < TW; w0 += 16)
		for (int i0 = 0; i0 < TR; i0 += 4) {
			__m256 s[4][2];
#pragma GCC unroll 4
			for (int i = 0; i < 4; i++)
				s[i][0] = s[i][1] = _mm256_setzero_ps();
			for (int l = 0; l < L; l++) {
				const float *bl = b + (size_t)l * ldb + w0;
				const float *x = a + (size_t)l * al + (size_t)i0 * ai;
				__m256 b0 = _mm256_loadu_ps(bl), b1 = _mm256_loadu_ps(bl + 8);
#pragma GCC unroll 4
				for (int i = 0; i < 4; i++) {
					__m256 xi = _mm256_broadcast_ss(x + i * ai);
					s[i][0] = _mm256_fmadd_ps(xi, b0, s[i][0]);
					s[i][1] = _mm256_fmadd_ps(xi, b1, s[i][1]);
				}
			}
#pragma GCC unroll 4
			for (int i = 0; i < 4; i++) {
				float *ci = c + (size_t)(i0 + i) * ldc + w0;
				if (acc) {
					_mm256_storeu_ps(ci, _mm256_fmadd_ps(al8, s[i][0],
									     _mm256_loadu_ps(ci)));
					_mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(al8, s[i][1],
										 _mm256_loadu_ps(ci + 8)));
				} else {
					_mm256_storeu_ps(ci, _mm256_mul_ps(al8, s[i][0]));
					_mm256_storeu_ps(ci + 8, _mm256_mul_ps(al8, s[i][1]));
				}
			}
		}
}
#endif

static inline __attribute__((always_inline)) void
tile(float *c, size_t ldc, const float *a, size_t ai, size_t al, const float *b, size_t ldb,
     int L, float alpha, int acc, int nr, int nw, int isa)
{
#ifdef TK_TILE_AVX512
	if (isa >= TK_CPU_ISA_AVX512 && nr == TR && nw == TW) {
		tile_avx512(c, ldc, a, ai, al, b, ldb, L, alpha, acc);
		return;
	}
	if (isa == TK_CPU_ISA_AVX2 && nr == TR && nw == TW) {
		tile_avx2(c, ldc, a, ai, al, b, ldb, L, alpha, acc);
		return;
	}
#endif
	if (nr == TR && nw == TW) /* constant bounds for the compiler */
		tile_c(c, ldc, a, ai, al, b, ldb, L, alpha, acc, TR, TW);
	else
		tile_c(c, ldc, a, ai, al, b, ldb, L, alpha, acc, nr, nw);
}

/* C[m][n] (+)= alpha A B for A(i, l) = a[i ai + l al] (m x L), b [L][n]
 * (ldb), in tiles. */
static inline __attribute__((always_inline)) void
tiles(int isa, float *c, size_t ldc, const float *a, size_t ai, size_t al, const float *b,
      size_t ldb, int m, int n, int L, float alpha, int acc)
{
	for (int i0 = 0; i0 < m; i0 += TR) {
		int nr = m - i0 < TR ? m - i0 : TR;
		for (int w0 = 0; w0 < n; w0 += TW)
			tile(c + i0 * ldc + w0, ldc, a + i0 * ai, ai, al, b + w0, ldb, L, alpha,
			     acc, nr, n - w0 < TW ? n - w0 : TW, isa);
	}
}

/* The first key query row t sees: t - window + 1 under a window, else 0. */
static inline int att_lo(const struct att_dims *a, int t)
{
	return a->win > 0 && t >= a->win ? t - a->win + 1 : 0;
}

/* The first key of the whole tiles that rows from t0 on need. */
static inline int att_tile0(const struct att_dims *a, int t0)
{
	return att_lo(a, t0) / TW * TW;
}

/* Rows [t0, t1) of (b, h), t1 - t0 <= ATT_ROWS: scores against keys
 * lo(t)..t into s (rows of ldt, column c for key j0 + c: the key tiles
 * before j0 = att_tile0 are masked for every row, and skipped), capped
 * when a->cap > 0, max-subtracted exponentials (0 outside lo(t)..t), their
 * weighted sum of values, and the log-sum-exp. */
ISA_BODY void att_fwd_rows_body(float *out, float *lse, const float *q, const float *kt,
				const float *v, const struct att_dims *a, int b, int h, int t0,
				int t1, float *s)
{
	int D = a->D, kh = h / a->grp, ldt = a->ldt, nr = t1 - t0, j0 = att_tile0(a, t0);
	int nk = (t1 - j0 + TW - 1) / TW * TW; /* keys j0..t1-1, whole tiles */
	const float *kth = kt + ((size_t)b * a->KV + kh) * D * ldt + j0;
	const float *vb = v + ((size_t)b * a->T + j0) * a->ks + (size_t)kh * D;
	size_t q0 = ((size_t)b * a->T + t0) * a->qs + (size_t)h * D;
	float inv[ATT_ROWS], cap = a->cap;
	/* each row of TR needs keys up to its last row only */
	for (int i0 = 0; i0 < nr; i0 += TR) {
		int r = nr - i0 < TR ? nr - i0 : TR, lim = t0 + i0 + r;
		tiles(a->isa, s + (size_t)i0 * ldt, ldt, q + q0 + i0 * a->qs, a->qs, 1, kth, ldt, r,
		      (lim - j0 + TW - 1) / TW * TW, D, a->scale, 0);
	}
	for (int i = 0; i < nr; i++) {
		float *si = s + (size_t)i * ldt;
		int lo = att_lo(a, t0 + i) - j0, n = t0 + i + 1 - j0;
		float mx = -INFINITY, sum = 0.0f;
		if (cap > 0.0f)
			for (int j = lo; j < n; j++)
				si[j] = tk_softcap(si[j], cap);
#pragma omp simd reduction(max : mx)
		for (int j = lo; j < n; j++)
			mx = si[j] > mx ? si[j] : mx;
#pragma omp simd reduction(+ : sum)
		for (int j = lo; j < n; j++) {
			si[j] = tk_expf_poly(si[j] - mx);
			sum += si[j];
		}
		for (int j = 0; j < lo; j++)
			si[j] = 0.0f;
		for (int j = n; j < nk; j++)
			si[j] = 0.0f;
		inv[i] = 1.0f / sum;
		lse[((size_t)b * a->H + h) * a->T + t0 + i] = mx + logf(sum);
	}
	/* out rows = P V over keys j0..t1-1 (zeros outside each row's keys) */
	for (int i0 = 0; i0 < nr; i0 += TR) {
		int r = nr - i0 < TR ? nr - i0 : TR;
		tiles(a->isa, out + q0 + i0 * a->qs, a->qs, s + (size_t)i0 * ldt, ldt, 1, vb, a->ks, r, D,
		      t0 + i0 + r - j0, 1.0f, 0);
	}
	for (int i = 0; i < nr; i++) {
		float *o = out + q0 + i * a->qs, f = inv[i];
#pragma omp simd
		for (int d = 0; d < D; d++)
			o[d] *= f;
	}
}
ISA_VOID_COPIES(att_fwd_rows,
		(float *out, float *lse, const float *q, const float *kt, const float *v,
		 const struct att_dims *a, int b, int h, int t0, int t1, float *s),
		(out, lse, q, kt, v, a, b, h, t0, t1, s));

static void att_dims_set(struct att_dims *a, int B, int T, int n_head, int n_kv_head,
			 int head_dim, const struct tk_attn_opts *ao)
{
	a->B = B, a->T = T, a->H = n_head, a->KV = n_kv_head, a->D = head_dim;
	a->grp = n_head / n_kv_head;
	a->ldt = (T + TW - 1) / TW * TW;
	a->qs = (size_t)n_head * head_dim;
	a->ks = (size_t)n_kv_head * head_dim;
	a->scale = ao->scale;
	a->cap = ao->softcap;
	a->win = ao->window;
	a->isa = (int)tk_cpu_isa();
}

/* Multiply-adds of one product of the scores of a (batch, head) over
 * its head_dim: T times the keys a row sees, at most T^2. */
static size_t att_work(const struct att_dims *a)
{
	size_t keys = a->win > 0 && a->win < a->T ? (size_t)a->win : (size_t)a->T;
	return (size_t)a->B * a->T * keys * a->H * a->D;
}

/* Causal attention; tasks are blocks of ATT_ROWS rows of one (batch,
 * head), in parallel; each thread has ATT_ROWS rows of scores. */
static int cpu_attention_fwd(struct tk_backend *be, float *out, float *lse, const float *q,
			     const float *k, const float *v, int B, int T, int n_head,
			     int n_kv_head, int head_dim, const struct tk_attn_opts *ao)
{
	int nt = be->threads;
	struct att_dims a;
	att_dims_set(&a, B, T, n_head, n_kv_head, head_dim, ao);
	size_t nkt = (size_t)B * n_kv_head * head_dim * a.ldt;
	size_t per_thread = (size_t)ATT_ROWS * a.ldt;
	float *ws = ws_get(be, (nkt + (size_t)nt * per_thread) * sizeof(float));
	if (!ws)
		return TK_E_NOMEM;
	float *kt = ws, *sbuf = ws + nkt;
	transpose_heads(nt, kt, k, &a);
	int nblk = (T + ATT_ROWS - 1) / ATT_ROWS;
	long ntask = (long)B * n_head * nblk;
#pragma omp parallel num_threads(nt) if (ntask > 1 && att_work(&a) >= PAR_MIN)
	{
		float *s = sbuf + (size_t)omp_get_thread_num() * per_thread;
		/* the longest rows first: blocks in reverse */
#pragma omp for schedule(dynamic, 1)
		for (long task = ntask - 1; task >= 0; task--) {
			int blk = (int)(task % nblk), h = (int)(task / nblk % n_head);
			int b = (int)(task / nblk / n_head);
			int t1 = (blk + 1) * ATT_ROWS < T ? (blk + 1) * ATT_ROWS : T;
			ISA_COPY(att_fwd_rows, a.isa)(out, lse, q, kt, v, &a, b, h, blk * ATT_ROWS,
						      t1, s);
		}
	}
	return 0;
}

/* The backward pass of one (batch, head), in blocks of ATT_ROWS query rows
 * [t0, t1) over keys from j0 = att_tile0(t0) (columns as in att_fwd_rows):
 * p = exp(c - lse) with c the (capped) score, dp = dout . v (from V^T like
 * the scores), ds = scale p (dp - dout . out) (1 - (c / cap)^2 when
 * capped), zero outside each row's keys; then dq rows = ds K, and for keys
 * j0 <= j < t1, dk[j] += ds^T q, dv[j] += p^T dout into dkb/dvb (rows of
 * D), block by block in row order. */
ISA_BODY void att_bwd_head_body(float *dq, float *dkb, float *dvb, const float *dout,
				const float *q, const float *k, const float *kt, const float *vt,
				const float *out, const float *lse, const struct att_dims *a, int b,
				int h, float *p, float *ds)
{
	int D = a->D, T = a->T, kh = h / a->grp, ldt = a->ldt;
	size_t tofs = ((size_t)b * a->KV + kh) * D * ldt;
	const float *kb = k + (size_t)b * T * a->ks + (size_t)kh * D;
	const float *lr = lse + ((size_t)b * a->H + h) * T;
	float scale = a->scale, cap = a->cap;
	memset(dkb, 0, (size_t)T * D * sizeof(float));
	memset(dvb, 0, (size_t)T * D * sizeof(float));
	for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
		int t1 = t0 + ATT_ROWS < T ? t0 + ATT_ROWS : T, nr = t1 - t0;
		int j0 = att_tile0(a, t0), nk = (t1 - j0 + TW - 1) / TW * TW;
		size_t q0 = ((size_t)b * T + t0) * a->qs + (size_t)h * D;
		for (int i0 = 0; i0 < nr; i0 += TR) {
			int r = nr - i0 < TR ? nr - i0 : TR, lim = t0 + i0 + r;
			int nc = (lim - j0 + TW - 1) / TW * TW;
			tiles(a->isa, p + (size_t)i0 * ldt, ldt, q + q0 + i0 * a->qs, a->qs, 1,
			      kt + tofs + j0, ldt, r, nc, D, scale, 0);
			tiles(a->isa, ds + (size_t)i0 * ldt, ldt, dout + q0 + i0 * a->qs, a->qs, 1,
			      vt + tofs + j0, ldt, r, nc, D, 1.0f, 0);
		}
		for (int i = 0; i < nr; i++) {
			size_t qo = q0 + i * a->qs;
			float *pi = p + (size_t)i * ldt, *dsi = ds + (size_t)i * ldt;
			float dsum = dot(dout + qo, out + qo, D), l = lr[t0 + i];
			int lo = att_lo(a, t0 + i) - j0, n = t0 + i + 1 - j0;
			if (cap > 0.0f) {
				for (int j = lo; j < n; j++) {
					float c = tk_softcap(pi[j], cap), u = c / cap;
					pi[j] = tk_expf_poly(c - l);
					dsi[j] = pi[j] * (dsi[j] - dsum) * (1.0f - u * u) * scale;
				}
			} else {
#pragma omp simd
				for (int j = lo; j < n; j++) {
					pi[j] = tk_expf_poly(pi[j] - l);
					dsi[j] = pi[j] * (dsi[j] - dsum) * scale;
				}
			}
			for (int j = 0; j < lo; j++)
				pi[j] = dsi[j] = 0.0f;
			for (int j = n; j < nk; j++)
				pi[j] = dsi[j] = 0.0f;
		}
		for (int i0 = 0; i0 < nr; i0 += TR) {
			int r = nr - i0 < TR ? nr - i0 : TR;
			tiles(a->isa, dq + q0 + i0 * a->qs, a->qs, ds + (size_t)i0 * ldt, ldt, 1,
			      kb + (size_t)j0 * a->ks, a->ks, r, D, t0 + i0 + r - j0, 1.0f, 0);
		}
		/* dk[j] += sum_i ds[i][j] q[i], dv[j] += sum_i p[i][j] dout[i] */
		tiles(a->isa, dkb + (size_t)j0 * D, D, ds, 1, ldt, q + q0, a->qs, t1 - j0, D, nr,
		      1.0f, 1);
		tiles(a->isa, dvb + (size_t)j0 * D, D, p, 1, ldt, dout + q0, a->qs, t1 - j0, D, nr,
		      1.0f, 1);
	}
}
ISA_VOID_COPIES(att_bwd_head,
		(float *dq, float *dkb, float *dvb, const float *dout, const float *q,
		 const float *k, const float *kt, const float *vt, const float *out,
		 const float *lse, const struct att_dims *a, int b, int h, float *p, float *ds),
		(dq, dkb, dvb, dout, q, k, kt, vt, out, lse, a, b, h, p, ds));

/* Tasks are (batch, head) pairs.  Each accumulates its dk/dv in rows of
 * its own in the workspace (contiguous: writing into the interleaved heads
 * of dk/dv made two threads slower than one, from the cache lines they
 * shared), summed over the group in head order afterwards, so the result
 * does not depend on the threads. */
static int cpu_attention_bwd(struct tk_backend *be, float *dq, float *dk, float *dv,
			     const float *dout, const float *q, const float *k, const float *v,
			     const float *out, const float *lse, int B, int T, int n_head,
			     int n_kv_head, int head_dim, const struct tk_attn_opts *ao)
{
	int nt = be->threads, D = head_dim;
	struct att_dims a;
	att_dims_set(&a, B, T, n_head, n_kv_head, head_dim, ao);
	int grp = a.grp;
	size_t nkt = (size_t)B * n_kv_head * D * a.ldt;
	size_t per_thread = (size_t)2 * ATT_ROWS * a.ldt;
	size_t headbuf = (size_t)B * n_head * T * D;
	float *ws = ws_get(be, (2 * nkt + nt * per_thread + 2 * headbuf) * sizeof(float));
	if (!ws)
		return TK_E_NOMEM;
	float *kt = ws, *vt = kt + nkt, *sbuf = vt + nkt;
	float *dkh = sbuf + nt * per_thread, *dvh = dkh + headbuf;
	transpose_heads(nt, kt, k, &a);
	transpose_heads(nt, vt, v, &a);
	long ntask = (long)B * n_head;
#pragma omp parallel num_threads(nt) if (ntask > 1 && att_work(&a) >= PAR_MIN)
	{
		float *p = sbuf + (size_t)omp_get_thread_num() * per_thread;
#pragma omp for schedule(dynamic, 1)
		for (long task = 0; task < ntask; task++) {
			int h = (int)(task % n_head), b = (int)(task / n_head);
			ISA_COPY(att_bwd_head, a.isa)(dq, dkh + ((size_t)b * n_head + h) * T * D,
						      dvh + ((size_t)b * n_head + h) * T * D, dout,
						      q, k, kt, vt, out, lse, &a, b, h, p,
						      p + (size_t)ATT_ROWS * a.ldt);
		}
	}
	{
		long nrow = (long)B * T * n_kv_head;
#pragma omp parallel for num_threads(nt) schedule(static) if (nrow * D >= PAR_MIN)
		for (long r = 0; r < nrow; r++) {
			int kh = (int)(r % n_kv_head), t = (int)(r / n_kv_head % T);
			int b = (int)(r / n_kv_head / T);
			float *dkr = dk + (size_t)r * D, *dvr = dv + (size_t)r * D;
			for (int d = 0; d < D; d++)
				dkr[d] = dvr[d] = 0.0f;
			for (int g = 0; g < grp; g++) {
				size_t o = (((size_t)b * n_head + kh * grp + g) * T + t) * D;
#pragma omp simd
				for (int d = 0; d < D; d++) {
					dkr[d] += dkh[o + d];
					dvr[d] += dvh[o + d];
				}
			}
		}
	}
	return 0;
}

static int cpu_embedding_fwd(struct tk_backend *be, float *y, const float *table,
			     const uint32_t *ids, int n, int dim)
{
	int nt = be->threads;
#pragma omp parallel for num_threads(nt) schedule(static) if (PAR_ROWS(n, (size_t)n * dim))
	for (int i = 0; i < n; i++)
		memcpy(y + (size_t)i * dim, table + (size_t)ids[i] * dim, dim * sizeof(float));
	return 0;
}

/* Column blocks in parallel, ids in order within each: the sum into a
 * table row that several ids share is the same whatever the threads. */
static int cpu_embedding_bwd(struct tk_backend *be, float *dtable, const float *dy,
			     const uint32_t *ids, int n, int dim)
{
	int nt = be->threads, nblk = (dim + COLS - 1) / COLS;
#pragma omp parallel for num_threads(nt) schedule(static) if ((size_t)n * dim >= PAR_MIN)
	for (int bk = 0; bk < nblk; bk++) {
		int j0 = bk * COLS, m = dim - j0 < COLS ? dim - j0 : COLS;
		for (int i = 0; i < n; i++) {
			float *t = dtable + (size_t)ids[i] * dim + j0;
			const float *g = dy + (size_t)i * dim + j0;
#pragma omp simd
			for (int j = 0; j < m; j++)
				t[j] += g[j];
		}
	}
	return 0;
}

/* One row of cross_entropy (target tg >= 0): max, sum of exp(x - max)
 * (the exponentials kept in the row when grad, then scaled into the
 * gradient); returns the loss log(sum) + max - x[tg]. */
ISA_BODY double ce_row_body(float *x, int tg, int vocab, float scale, int grad, float cap)
{
	float mx = -INFINITY, sum = 0.0f, xt;
	if (cap > 0)
		for (int j = 0; j < vocab; j++)
			x[j] = tk_softcap(x[j], cap);
	xt = x[tg];
#pragma omp simd reduction(max : mx)
	for (int j = 0; j < vocab; j++)
		mx = x[j] > mx ? x[j] : mx;
	if (grad && cap > 0) {
		/* the exponentials again in the last pass: x still holds the
		 * capped logits the chain rule's 1 - (x / cap)^2 needs */
#pragma omp simd reduction(+ : sum)
		for (int j = 0; j < vocab; j++)
			sum += tk_expf_poly(x[j] - mx);
		float f = scale / sum, tt = xt / cap;
#pragma omp simd
		for (int j = 0; j < vocab; j++) {
			float t = x[j] / cap;
			x[j] = tk_expf_poly(x[j] - mx) * f * (1.0f - t * t);
		}
		x[tg] -= scale * (1.0f - tt * tt);
	} else if (grad) {
#pragma omp simd reduction(+ : sum)
		for (int j = 0; j < vocab; j++) {
			x[j] = tk_expf_poly(x[j] - mx);
			sum += x[j];
		}
		float f = scale / sum;
#pragma omp simd
		for (int j = 0; j < vocab; j++)
			x[j] *= f;
		x[tg] -= scale;
	} else {
#pragma omp simd reduction(+ : sum)
		for (int j = 0; j < vocab; j++)
			sum += tk_expf_poly(x[j] - mx);
	}
	return log((double)sum) + (double)mx - (double)xt;
}
ISA_COPIES(double, ce_row, (float *x, int tg, int vocab, float scale, int grad, float cap),
	   (x, tg, vocab, scale, grad, cap));

/* Rows in parallel, their losses summed in row order afterwards.  Targets
 * >= vocab are TK_E_INVAL before anything is written. */
static int cpu_cross_entropy(struct tk_backend *be, float *logits, const int32_t *targets,
			     int rows, int vocab, float scale, int grad, double *loss_sum,
			     float softcap)
{
	int nt = be->threads;
	const int isa = (int)tk_cpu_isa();
	for (int r = 0; r < rows; r++)
		if (targets[r] >= vocab)
			return TK_E_INVAL;
	double *rl = ws_get(be, (size_t)rows * sizeof(double));
	if (!rl)
		return TK_E_NOMEM;
#pragma omp parallel for num_threads(nt) schedule(static) if ((size_t)rows * vocab >= PAR_MIN)
	for (int r = 0; r < rows; r++) {
		float *x = logits + (size_t)r * vocab;
		if (targets[r] >= 0) {
			rl[r] = ISA_COPY(ce_row, isa)(x, targets[r], vocab, scale, grad, softcap);
		} else {
			rl[r] = 0.0;
			if (grad)
				memset(x, 0, (size_t)vocab * sizeof(float));
		}
	}
	if (loss_sum) {
		double s = 0.0;
		for (int r = 0; r < rows; r++)
			s += rl[r];
		*loss_sum += s;
	}
	return 0;
}

/* Elements [i0, i1) of an AdamW step.  torch's lerp and addcmul kernels
 * round once per fused multiply-add (vec::fmadd, and the compiler's
 * contraction), so fmaf here: with a clone built for FMA hardware where the
 * CPU has it (libm's exact fmaf otherwise).  Then m and v equal torch's
 * bit for bit; p can differ in the last bit where torch's vectorized sqrtf
 * is not correctly rounded. */
#if defined(__x86_64__) && (defined(__clang__) || __GNUC__ >= 6)
__attribute__((target_clones("fma", "default")))
#endif
static void adamw_scalar(float *p, const float *g, float *m, float *v, size_t i0, size_t i1,
			 const struct tk_adamw_k *k)
{
	struct tk_adamw_k c = *k;
	for (size_t i = i0; i < i1; i++) {
		float pi = p[i] * c.keep, gi = g[i], mi = m[i], vi = v[i];
		mi = fmaf(c.coef, gi - mi, c.from_m ? mi : gi);
		vi = fmaf(c.w2 * gi, gi, vi * c.b2);
		float den = sqrtf(vi) / c.bc2s + c.eps;
		p[i] = pi + c.neg_step * mi / den;
		m[i] = mi;
		v[i] = vi;
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
#define TK_ADAMW_X86 1
/* adamw_scalar W elements at a time, in the vectors of the intrinsics
 * prefix P (_mm512: 16 with AVX-512; _mm256: 8 with AVX2 and FMA): the
 * same operations (each correctly rounded, vector sqrt included) in the
 * same order, so the same bits.  GCC does not vectorize the scalar loop
 * itself: sqrtf may set errno, and only -fno-math-errno on the command
 * line lifts that.  Returns where the scalar loop takes over.  With AVX2
 * it is memory-bound: a GPT-2 124M step (7 floats read or written per
 * parameter) took 264 ms in the scalar loop on a 2-core Zen 3, 13 GB/s. */
#define ADAMW_VEC(NAME, TGT, VEC, P, W)                                                    \
	TGT static size_t NAME(float *p, const float *g, float *m, float *v, size_t i0,    \
			       size_t i1, const struct tk_adamw_k *k)                      \
	{                                                                                  \
		VEC keep = P##_set1_ps(k->keep), coef = P##_set1_ps(k->coef);              \
		VEC b2 = P##_set1_ps(k->b2), w2 = P##_set1_ps(k->w2);                      \
		VEC eps = P##_set1_ps(k->eps), ns = P##_set1_ps(k->neg_step);              \
		VEC bc2s = P##_set1_ps(k->bc2s);                                           \
		size_t i = i0;                                                             \
		for (; i + (W) <= i1; i += (W)) {                                          \
			VEC pi = P##_mul_ps(P##_loadu_ps(p + i), keep);                    \
			VEC gi = P##_loadu_ps(g + i), mi = P##_loadu_ps(m + i);            \
			VEC vi = P##_loadu_ps(v + i);                                      \
			mi = P##_fmadd_ps(coef, P##_sub_ps(gi, mi), k->from_m ? mi : gi);  \
			vi = P##_fmadd_ps(P##_mul_ps(w2, gi), gi, P##_mul_ps(vi, b2));     \
			VEC den = P##_add_ps(P##_div_ps(P##_sqrt_ps(vi), bc2s), eps);      \
			pi = P##_add_ps(pi, P##_div_ps(P##_mul_ps(ns, mi), den));          \
			P##_storeu_ps(p + i, pi);                                          \
			P##_storeu_ps(m + i, mi);                                          \
			P##_storeu_ps(v + i, vi);                                          \
		}                                                                          \
		return i;                                                                  \
	}
ADAMW_VEC(adamw_avx512, __attribute__((target("avx512f"))), __m512, _mm512, 16)
ADAMW_VEC(adamw_avx2, __attribute__((target("avx2,fma"))), __m256, _mm256, 8)
#endif

static void adamw_range(float *p, const float *g, float *m, float *v, size_t i0, size_t i1,
			const struct tk_adamw_k *k, enum tk_cpu_isa isa)
{
#ifdef TK_ADAMW_X86
	if (isa >= TK_CPU_ISA_AVX512)
		i0 = adamw_avx512(p, g, m, v, i0, i1, k);
	else if (isa >= TK_CPU_ISA_AVX2)
		i0 = adamw_avx2(p, g, m, v, i0, i1, k);
#else
	(void)isa;
#endif
	adamw_scalar(p, g, m, v, i0, i1, k);
}

/* torch.optim.AdamW, _single_tensor_adam with decoupled weight decay, the
 * same operations in the same order: the scalars in double as Python
 * computes them, each tensor op in fp32:
 *	p *= 1 - lr wd;  m = lerp(m, g, 1 - b1);  v = v b2 + (1 - b2) g g;
 *	p += -(lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)  */
static int cpu_adamw(struct tk_backend *be, float *p, const float *g, float *m, float *v,
		     size_t n, double lr, double beta1, double beta2, double eps,
		     double weight_decay, int step)
{
	int nt = be->threads;
	enum tk_cpu_isa isa = tk_cpu_isa();
	struct tk_adamw_k k = tk_adamw_setup(lr, beta1, beta2, eps, weight_decay, step);
	size_t nch = (n + SUM_CHUNK - 1) / SUM_CHUNK;
#pragma omp parallel for num_threads(nt) schedule(static) if (nch > 1)
	for (size_t ch = 0; ch < nch; ch++) {
		size_t i0 = ch * SUM_CHUNK, i1 = i0 + SUM_CHUNK < n ? i0 + SUM_CHUNK : n;
		adamw_range(p, g, m, v, i0, i1, &k, isa);
	}
	return 0;
}

/* bitsandbytes' AdamW8bit, one block of TK_ADAMW8_BLOCK at a time (its
 * quantization needs the block's new absmax before any code): the moments
 * dequantized, updated and kept in fp32 for the block, then quantized. */
static int cpu_adamw8(struct tk_backend *be, float *p, const float *g, uint8_t *q1, uint8_t *q2,
		      float *absmax1, float *absmax2, size_t n, size_t rows, size_t cols,
		      const struct tk_adamw8_k *k)
{
	int nt = be->threads;
	long long nb = (long long)((n + TK_ADAMW8_BLOCK - 1) / TK_ADAMW8_BLOCK);
#pragma omp parallel for num_threads(nt) schedule(static) if (nb > 64)
	for (long long b = 0; b < nb; b++) {
		size_t lo = (size_t)b * TK_ADAMW8_BLOCK;
		size_t hi = lo + TK_ADAMW8_BLOCK < n ? lo + TK_ADAMW8_BLOCK : n;
		float m[TK_ADAMW8_BLOCK], v[TK_ADAMW8_BLOCK], a1 = absmax1[b], a2 = absmax2[b];
		float max1 = 0.0f, max2 = 0.0f;
		for (size_t i = lo; i < hi; i++) {
			size_t at = tk_adamw8_at(i, rows, cols);
			float mi = tk_dynamic_code[q1[i]] * a1, vi = tk_udynamic_code[q2[i]] * a2;
			tk_adamw8_moments(k, g[at], &mi, &vi);
			p[at] = tk_adamw8_param(k, p[at], mi, vi);
			m[i - lo] = mi;
			v[i - lo] = vi;
			max1 = fabsf(mi) > max1 ? fabsf(mi) : max1;
			max2 = fabsf(vi) > max2 ? fabsf(vi) : max2;
		}
		absmax1[b] = max1;
		absmax2[b] = max2;
		float inv1 = max1 != 0.0f ? 1.0f / max1 : 0.0f;
		float inv2 = max2 != 0.0f ? 1.0f / max2 : 0.0f;
		for (size_t i = lo; i < hi; i++) { /* an all-zero block: code 0 */
			q1[i] = max1 != 0.0f ? tk_q8_index(tk_dynamic_code, m[i - lo] * inv1) : 0;
			q2[i] = max2 != 0.0f ? tk_q8_index(tk_udynamic_code, v[i - lo] * inv2) : 0;
		}
	}
	return 0;
}

/* Its 32-bit state path, elementwise. */
static int cpu_adamw8_f32(struct tk_backend *be, float *p, const float *g, float *m, float *v,
			  size_t n, const struct tk_adamw8_k *k)
{
	int nt = be->threads;
#pragma omp parallel for num_threads(nt) schedule(static) if (n > SUM_CHUNK)
	for (size_t i = 0; i < n; i++) {
		float mi = m[i], vi = v[i];
		tk_adamw8_moments(k, g[i], &mi, &vi);
		p[i] = tk_adamw8_param32(k, p[i], mi, vi);
		m[i] = mi;
		v[i] = vi;
	}
	return 0;
}

static int cpu_sum_squares(struct tk_backend *be, double *out, const float *x, size_t n)
{
	int nt = be->threads;
	size_t nch = (n + SUM_CHUNK - 1) / SUM_CHUNK;
	double *part = ws_get(be, nch * sizeof(double));
	if (!part)
		return TK_E_NOMEM;
#pragma omp parallel for num_threads(nt) schedule(static) if (nch > 1)
	for (size_t c = 0; c < nch; c++) {
		size_t i0 = c * SUM_CHUNK, i1 = i0 + SUM_CHUNK < n ? i0 + SUM_CHUNK : n;
		double s = 0.0;
#pragma omp simd reduction(+ : s)
		for (size_t i = i0; i < i1; i++)
			s += (double)x[i] * x[i];
		part[c] = s;
	}
	double s = 0.0;
	for (size_t c = 0; c < nch; c++)
		s += part[c];
	*out += s;
	return 0;
}

/* Each block starts with a header of MEM_HDR bytes (keeping the 64-byte
 * alignment) that holds its size, for cpu_free to count. */
#define MEM_HDR 64

static void *cpu_alloc(struct tk_backend *be, size_t bytes)
{
	struct cpu_ctx *c = be->ctx;
	void *p = NULL;
	if (!bytes)
		bytes = 1;
	if (bytes > SIZE_MAX - MEM_HDR || mem_take(c, bytes))
		return NULL;
	if (posix_memalign(&p, 64, bytes + MEM_HDR)) {
		mem_give(c, bytes);
		return NULL;
	}
	*(size_t *)p = bytes;
	return (char *)p + MEM_HDR;
}

static void cpu_free(struct tk_backend *be, void *p)
{
	if (!p)
		return;
	char *h = (char *)p - MEM_HDR;
	mem_give(be->ctx, *(size_t *)h);
	free(h);
}

static int cpu_mem_info(struct tk_backend *be, struct tk_mem_info *mi)
{
	struct cpu_ctx *c = be->ctx;
	mi->in_use = atomic_load(&c->in_use);
	mi->peak = atomic_load(&c->peak);
	mi->limit = c->limit;
	mi->dev_used = 0;
	mi->dev_total = 0;
	return 0;
}

static int cpu_sync(struct tk_backend *be)
{
	return 0;
}

static void cpu_destroy(struct tk_backend *be)
{
	struct cpu_ctx *c = be->ctx;
	if (c) {
		free(c->ws);
		for (int i = 0; i < CPU_HELD; i++)
			free(c->held[i].codes);
	}
	free(c);
}

/* ---- decode: qmatmul, attention_decode, copy_rows ---- */

/* Weight elements per OpenMP thread below which qmatmul runs on one. */
#define QMM_PAR_MIN (1L << 16)

/* w[0 .. cols) = row r of the quantized weight q (4-bit or int8) with the
 * bits tk_qweight_rows gives: each block's 16 values code[k] * absmax are
 * one table, then each element is a lookup. */
ISA_BODY void qrow_body(const struct tk_qweight *q, const float *code, int64_t r, float *w)
{
	const size_t cols = (size_t)q->cols;

	if (tk_qkind_half(q->kind)) {
		tk_qweight_rows(q, r, 1, w, NULL);
		return;
	}
	if (q->kind == TK_QK_INT8) {
		const int8_t *src = (const int8_t *)q->data + (size_t)r * cols;
		const float s = q->scb[r] * (float)(1.0 / 127.0);

#pragma omp simd
		for (size_t c = 0; c < cols; c++)
			w[c] = (float)src[c] * s;
		return;
	}
	const size_t bs = q->blocksize, e0 = (size_t)r * cols, e1 = e0 + cols;
	for (size_t lo = e0; lo < e1;) {
		const size_t b = lo / bs;
		size_t hi = (b + 1) * bs, e = lo;
		float am, tab[16];

		hi = hi < e1 ? hi : e1;
		am = tk_qweight_absmax(q, b);
		for (int k = 0; k < 16; k++)
			tab[k] = code[k] * am;
		if (e & 1) { /* a row that starts in the low nibble of a byte */
			w[e - e0] = tab[q->data[e >> 1] & 15];
			e++;
		}
		const uint8_t *d = q->data + (e >> 1);
		const size_t np = (hi - e) >> 1;
		float *oe = w + (e - e0);
#pragma omp simd
		for (size_t p = 0; p < np; p++) {
			oe[2 * p] = tab[d[p] >> 4];
			oe[2 * p + 1] = tab[d[p] & 15];
		}
		e += np << 1;
		if (e < hi) /* a row that ends in the high nibble */
			w[e - e0] = tab[q->data[e >> 1] >> 4];
		lo = hi;
	}
}
ISA_VOID_COPIES(qrow, (const struct tk_qweight *q, const float *code, int64_t r, float *w),
		(q, code, r, w));

ISA_BODY float qdot_body(const float *a, const float *b, size_t n)
{
	float s = 0.0f;
#pragma omp simd reduction(+ : s)
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}
ISA_COPIES(float, qdot, (const float *a, const float *b, size_t n),
	   (a, b, n));

#if defined(__x86_64__) && defined(__GNUC__)
#define TK_QMM_AVX512 1
/* qrow's 4-bit loop with AVX-512: the block's 16 values are one register,
 * 16 bytes at a time become 32 codes (zero-extended; high and low nibbles),
 * each looked up with one permute and put back in element order with two
 * more.  The values are qrow's (the same fp32 products). */
__attribute__((target("avx512f"), noinline)) static void
qrow4_avx512(const struct tk_qweight *q, const float *code, int64_t r, float *w)
{
	const size_t cols = (size_t)q->cols, bs = q->blocksize;
	const size_t e0 = (size_t)r * cols, e1 = e0 + cols;
	const __m512 cv = _mm512_loadu_ps(code);
	const __m512i lo_i = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22,
					       7, 23);
	const __m512i hi_i = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14,
					       30, 15, 31);
	const __m512i m15 = _mm512_set1_epi32(15);

	for (size_t lo = e0; lo < e1;) {
		const size_t b = lo / bs;
		size_t hi = (b + 1) * bs, e = lo;
		float am, tab[16];

		hi = hi < e1 ? hi : e1;
		am = tk_qweight_absmax(q, b);
		const __m512 tv = _mm512_mul_ps(cv, _mm512_set1_ps(am));
		_mm512_storeu_ps(tab, tv);
		if (e & 1) {
			w[e - e0] = tab[q->data[e >> 1] & 15];
			e++;
		}
		for (; e + 32 <= hi; e += 32) {
			__m512i v = _mm512_cvtepu8_epi32(
				_mm_loadu_si128((const __m128i *)(q->data + (e >> 1))));
			__m512 wh = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), tv);
			__m512 wl = _mm512_permutexvar_ps(_mm512_and_si512(v, m15), tv);
			_mm512_storeu_ps(w + (e - e0), _mm512_permutex2var_ps(wh, lo_i, wl));
			_mm512_storeu_ps(w + (e - e0) + 16, _mm512_permutex2var_ps(wh, hi_i, wl));
		}
		for (; e + 1 < hi; e += 2) {
			unsigned v = q->data[e >> 1];
			w[e - e0] = tab[v >> 4];
			w[e - e0 + 1] = tab[v & 15];
		}
		if (e < hi)
			w[e - e0] = tab[q->data[e >> 1] >> 4];
		lo = hi;
	}
}

/* qrow4_avx512 with AVX2: the block's 16 values are two registers of 8;
 * 4 bytes at a time become 8 codes, each looked up in both halves with a
 * permute and the right one blended in, then interleaved high nibble first.
 * The same fp32 products as qrow. */
__attribute__((target("avx2,fma"), noinline)) static void
qrow4_avx2(const struct tk_qweight *q, const float *code, int64_t r, float *w)
{
	const size_t cols = (size_t)q->cols, bs = q->blocksize;
	const size_t e0 = (size_t)r * cols, e1 = e0 + cols;
	const __m256 c_lo = _mm256_loadu_ps(code), c_hi = _mm256_loadu_ps(code + 8);
	const __m256i m15 = _mm256_set1_epi32(15), seven = _mm256_set1_epi32(7);

	for (size_t lo = e0; lo < e1;) {
		const size_t b = lo / bs;
		size_t hi = (b + 1) * bs, e = lo;
		float am, tab[16];

		hi = hi < e1 ? hi : e1;
		am = tk_qweight_absmax(q, b);
		const __m256 amv = _mm256_set1_ps(am);
		const __m256 t_lo = _mm256_mul_ps(c_lo, amv), t_hi = _mm256_mul_ps(c_hi, amv);
		_mm256_storeu_ps(tab, t_lo);
		_mm256_storeu_ps(tab + 8, t_hi);
		if (e & 1) {
			w[e - e0] = tab[q->data[e >> 1] & 15];
			e++;
		}
		for (; e + 16 <= hi; e += 16) {
			__m128i bytes = _mm_loadl_epi64((const __m128i *)(q->data + (e >> 1)));
			__m256i v = _mm256_cvtepu8_epi32(bytes);
			__m256i ih = _mm256_srli_epi32(v, 4), il = _mm256_and_si256(v, m15);
			__m256 wh = _mm256_blendv_ps(
				_mm256_permutevar8x32_ps(t_lo, ih), _mm256_permutevar8x32_ps(t_hi, ih),
				_mm256_castsi256_ps(_mm256_cmpgt_epi32(ih, seven)));
			__m256 wl = _mm256_blendv_ps(
				_mm256_permutevar8x32_ps(t_lo, il), _mm256_permutevar8x32_ps(t_hi, il),
				_mm256_castsi256_ps(_mm256_cmpgt_epi32(il, seven)));
			__m256 u0 = _mm256_unpacklo_ps(wh, wl), u1 = _mm256_unpackhi_ps(wh, wl);
			_mm256_storeu_ps(w + (e - e0), _mm256_permute2f128_ps(u0, u1, 0x20));
			_mm256_storeu_ps(w + (e - e0) + 8, _mm256_permute2f128_ps(u0, u1, 0x31));
		}
		for (; e + 1 < hi; e += 2) {
			unsigned v = q->data[e >> 1];
			w[e - e0] = tab[v >> 4];
			w[e - e0 + 1] = tab[v & 15];
		}
		if (e < hi)
			w[e - e0] = tab[q->data[e >> 1] >> 4];
		lo = hi;
	}
}

/* tk_qweight_rows with qmatmul's row loops for AVX-512 or AVX2 (the same
 * bits), a row per OpenMP iteration: QLoRA's training matmuls dequantize
 * their tiles here.  int8 and the portable level: tk_qweight_rows. */
static int cpu_dequant_rows(struct tk_backend *be, const struct tk_qweight *q, int64_t row0,
			    int64_t n, float *out)
{
	const int isa = (int)tk_cpu_isa();
	const size_t cols = (size_t)q->cols;

	if (q->kind == TK_QK_INT8 || tk_qkind_half(q->kind) || isa < 1)
		return tk_qweight_rows(q, row0, n, out, NULL);
	const float *code = q->kind == TK_QK_FP4 ? tk_fp4_code : tk_nf4_code;
	int nt = (size_t)n * cols < (size_t)QMM_PAR_MIN ? 1 : be->threads;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
	for (int64_t r = 0; r < n; r++) {
		if (isa == 2)
			qrow4_avx512(q, code, row0 + r, out + (size_t)r * cols);
		else
			qrow4_avx2(q, code, row0 + r, out + (size_t)r * cols);
	}
	return 0;
}

/* The sum of a register's 8 floats. */
__attribute__((target("avx2,fma"))) static inline float hsum_avx2(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* qdots_avx512 with AVX2 and FMA: four rows of x per pass over w. */
__attribute__((target("avx2,fma"), noinline)) static void
qdots_avx2(float *s, const float *x, size_t cols, int m, const float *w)
{
	const size_t c8 = cols & ~(size_t)7;
	int i = 0;

	for (; i + 4 <= m; i += 4) {
		const float *x0 = x + (size_t)i * cols, *x1 = x0 + cols, *x2 = x1 + cols,
			    *x3 = x2 + cols;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		for (size_t c = 0; c < c8; c += 8) {
			__m256 wv = _mm256_loadu_ps(w + c);
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + c), wv, a0);
			a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + c), wv, a1);
			a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + c), wv, a2);
			a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + c), wv, a3);
		}
		float t0 = hsum_avx2(a0), t1 = hsum_avx2(a1), t2 = hsum_avx2(a2), t3 = hsum_avx2(a3);
		for (size_t c = c8; c < cols; c++) {
			t0 += x0[c] * w[c];
			t1 += x1[c] * w[c];
			t2 += x2[c] * w[c];
			t3 += x3[c] * w[c];
		}
		s[i] = t0;
		s[i + 1] = t1;
		s[i + 2] = t2;
		s[i + 3] = t3;
	}
	for (; i < m; i++) {
		const float *xi = x + (size_t)i * cols;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0;
		size_t c = 0;
		for (; c + 16 <= c8; c += 16) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xi + c), _mm256_loadu_ps(w + c), a0);
			a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xi + c + 8), _mm256_loadu_ps(w + c + 8),
					     a1);
		}
		for (; c < c8; c += 8)
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xi + c), _mm256_loadu_ps(w + c), a0);
		float t = hsum_avx2(_mm256_add_ps(a0, a1));
		for (c = c8; c < cols; c++)
			t += xi[c] * w[c];
		s[i] = t;
	}
}

/* s[i] = x[i, 0 .. cols) . w for i < m, four rows of x per pass over w. */
__attribute__((target("avx512f"), noinline)) static void
qdots_avx512(float *s, const float *x, size_t cols, int m, const float *w)
{
	const __mmask16 tail = (__mmask16)((1u << (cols & 15)) - 1);
	const size_t c16 = cols & ~(size_t)15;
	int i = 0;

	for (; i + 4 <= m; i += 4) {
		const float *x0 = x + (size_t)i * cols, *x1 = x0 + cols, *x2 = x1 + cols,
			    *x3 = x2 + cols;
		__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		for (size_t c = 0; c < c16; c += 16) {
			__m512 wv = _mm512_loadu_ps(w + c);
			a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x0 + c), wv, a0);
			a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x1 + c), wv, a1);
			a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x2 + c), wv, a2);
			a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x3 + c), wv, a3);
		}
		if (tail) {
			__m512 wv = _mm512_maskz_loadu_ps(tail, w + c16);
			a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x0 + c16), wv, a0);
			a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x1 + c16), wv, a1);
			a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x2 + c16), wv, a2);
			a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x3 + c16), wv, a3);
		}
		s[i] = _mm512_reduce_add_ps(a0);
		s[i + 1] = _mm512_reduce_add_ps(a1);
		s[i + 2] = _mm512_reduce_add_ps(a2);
		s[i + 3] = _mm512_reduce_add_ps(a3);
	}
	for (; i < m; i++) {
		const float *xi = x + (size_t)i * cols;
		__m512 a0 = _mm512_setzero_ps(), a1 = a0;
		size_t c = 0;
		for (; c + 32 <= c16; c += 32) {
			a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xi + c), _mm512_loadu_ps(w + c), a0);
			a1 = _mm512_fmadd_ps(_mm512_loadu_ps(xi + c + 16),
					     _mm512_loadu_ps(w + c + 16), a1);
		}
		for (; c < c16; c += 16)
			a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xi + c), _mm512_loadu_ps(w + c), a0);
		if (tail)
			a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, xi + c16),
					     _mm512_maskz_loadu_ps(tail, w + c16), a1);
		s[i] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
	}
}
#endif

/* One thread per slab of output rows: each row of W is dequantized into a
 * buffer of cols floats of the thread's own (it stays in L1/L2) and dotted
 * with the m rows of x.  The weight is read once per call, from its codes. */
static int cpu_qmatmul(struct tk_backend *be, const struct tk_qweight *q, int64_t row0, int n,
		       int m, const float *x, float *y, int ldy, float beta)
{
	const size_t cols = (size_t)q->cols;
	const float *code = q->kind == TK_QK_FP4 ? tk_fp4_code : tk_nf4_code;
	int nt = be->threads, isa = (int)tk_cpu_isa();

	if (q->kind != TK_QK_INT8 && !tk_qkind_half(q->kind) &&
	    ((q->kind != TK_QK_NF4 && q->kind != TK_QK_FP4) ||
	     !tk_q4_blocksize_ok((long long)q->blocksize)))
		return TK_E_INVAL;
	if ((long)n * (long)cols < QMM_PAR_MIN)
		nt = 1;
	if (!cols) { /* an empty dot product */
		for (int i = 0; i < m; i++)
			for (int r = 0; r < n; r++)
				y[(size_t)i * ldy + r] = beta == 0.0f ? 0.0f :
							 beta * y[(size_t)i * ldy + r];
		return 0;
	}
	if (tk_cpu_gemv_half_ok((enum tk_cpu_isa)isa, q->kind)) {
		/* 16-bit floats widened in the fp32 loops */
		tk_cpu_gemv_half((enum tk_cpu_isa)isa, nt, q, row0, n, m, x, y, (size_t)ldy, beta);
		return 0;
	}
	if (tk_cpu_qgemv4_ok((enum tk_cpu_isa)isa, q)) {
		/* straight from the codes (backend-cpu-gemv.c) */
		float *xs = ws_get(be, tk_cpu_qgemv4_ws(q, m) * sizeof(float));
		if (!xs)
			return TK_E_NOMEM;
		tk_cpu_qgemv4((enum tk_cpu_isa)isa, nt, q, row0, n, m, x, y, ldy, beta, xs);
		return 0;
	}
	/* per thread: a row of W padded to 64 bytes (threads do not share
	 * lines), then m sums */
	size_t stride = ((cols + 15) & ~(size_t)15) + (((size_t)m + 15) & ~(size_t)15);
	float *wbuf = ws_get(be, (size_t)nt * stride * sizeof(float));
	if (!wbuf)
		return TK_E_NOMEM;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
	for (int r = 0; r < n; r++) {
		float *w = wbuf + (size_t)omp_get_thread_num() * stride;
		float *s = w + ((cols + 15) & ~(size_t)15);

#ifdef TK_QMM_AVX512
		if (isa == 2) {
			if (q->kind == TK_QK_INT8 || tk_qkind_half(q->kind))
				ISA_COPY(qrow, isa)(q, code, row0 + r, w);
			else
				qrow4_avx512(q, code, row0 + r, w);
			qdots_avx512(s, x, cols, m, w);
		} else if (isa == 1) {
			if (q->kind == TK_QK_INT8 || tk_qkind_half(q->kind))
				ISA_COPY(qrow, isa)(q, code, row0 + r, w);
			else
				qrow4_avx2(q, code, row0 + r, w);
			qdots_avx2(s, x, cols, m, w);
		} else
#endif
		{
			ISA_COPY(qrow, isa)(q, code, row0 + r, w);
			for (int i = 0; i < m; i++)
				s[i] = ISA_COPY(qdot, isa)(x + (size_t)i * cols, w, cols);
		}
		for (int i = 0; i < m; i++) {
			float *o = y + (size_t)i * ldy + r;
			*o = beta == 0.0f ? s[i] : s[i] + beta * *o;
		}
	}
	return 0;
}

/* The group in one loop (tk_cpu_gemv_group) when it has the bits of
 * cpu_matmul and cpu_qmatmul one by one: fp32 operands, and the GEMV
 * loops those would take. */
static int cpu_matmul_group(struct tk_backend *be, int m, int k, const float *x,
			    const struct tk_gemv_item *it, int count)
{
	enum tk_cpu_isa isa = tk_cpu_isa();
	float *ws = NULL;

	if (be->prec != TK_PREC_FP32 || m > TK_GEMV_MAX_ROWS)
		return TK_E_UNSUPPORTED;
	if (!it[0].w) {
#ifdef TK_QMM_AVX512
		if (!(ws = ws_get(be, (size_t)m * (size_t)k * sizeof(float))))
			return TK_E_NOMEM;
#else
		return TK_E_UNSUPPORTED; /* cpu_qmatmul takes the portable loops */
#endif
	}
	return tk_cpu_gemv_group(isa, be->threads, m, k, x, it, count, ws);
}

/* 16 and fewer floats as one value (GCC's vector extension), with the same
 * bits at every instruction set. */
typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef uint16_t v8us __attribute__((vector_size(16)));
typedef uint16_t v16us __attribute__((vector_size(32)));

/* The decode attention's KV cache holds floats, or bf16 codes (kb, a
 * constant in each copy of the loops: --cache-type bf16).  A code widens
 * to its float exactly (its 16 bits on top), so the loops compute on the
 * same values either way and the same bits come out as from a float
 * cache holding the rounded values. */
ISA_BODY void cache8(v8f *x, const void *c, size_t e, const int kb)
{
	if (kb) {
		v8us h;
		memcpy(&h, (const uint16_t *)c + e, sizeof(h));
		*x = (v8f)(__builtin_convertvector(h, v8u) << 16);
	} else
		memcpy(x, (const float *)c + e, sizeof(*x));
}

ISA_BODY void cache16(v16f *x, const void *c, size_t e, const int kb)
{
	if (kb) {
		v16us h;
		memcpy(&h, (const uint16_t *)c + e, sizeof(h));
		*x = (v16f)(__builtin_convertvector(h, v16u) << 16);
	} else
		memcpy(x, (const float *)c + e, sizeof(*x));
}

ISA_BODY float cache1(const void *c, size_t e, const int kb)
{
	return kb ? tk_bf16_value(((const uint16_t *)c)[e]) : ((const float *)c)[e];
}

/* The cache's element e as an address (for prefetches and row offsets). */
ISA_BODY const void *cache_at(const void *c, size_t e, const int kb)
{
	return (const char *)c + e * (kb ? sizeof(uint16_t) : sizeof(float));
}

/* a . b over n floats in 16 lanes (lane j sums the elements e = j mod 16),
 * then the lanes added pairwise: vector adds at any instruction set with
 * the same bits (a single running sum, one add per 4 cycles, made the
 * scores of a 64-wide head about 5% of a SmolLM2-135M decode step at 100
 * tokens of context, more as the context grows; the pairwise adds as a
 * loop over an array ran scalar through memory, ~20% of a batch-8 step). */
ISA_BODY float dot_lanes(const float *a, const void *b, int n, const int wide, const int kb)
{
	v16f s = { 0 };
	int e = 0;
	if (!wide) { /* the same lanes as two v8f: below AVX-512, GCC took the
		      * v16f through the stack (62% of the function's samples
		      * on stores and reloads, Zen 3) */
		v8f lo = { 0 }, hi = { 0 };
		for (; e + 16 <= n; e += 16) {
			v8f x0, x1, y0, y1;
			memcpy(&x0, a + e, sizeof(x0));
			memcpy(&x1, a + e + 8, sizeof(x1));
			cache8(&y0, b, (size_t)e, kb);
			cache8(&y1, b, (size_t)e + 8, kb);
			lo += x0 * y0;
			hi += x1 * y1;
		}
		for (; e < n; e++) {
			if ((e & 15) < 8)
				lo[e & 7] += a[e] * cache1(b, (size_t)e, kb);
			else
				hi[e & 7] += a[e] * cache1(b, (size_t)e, kb);
		}
		v8f t8 = lo + hi;
		v4f t4 = __builtin_shufflevector(t8, t8, 0, 1, 2, 3) +
			 __builtin_shufflevector(t8, t8, 4, 5, 6, 7);
		return (t4[0] + t4[2]) + (t4[1] + t4[3]);
	}
	for (; e + 16 <= n; e += 16) {
		v16f x, y;
		memcpy(&x, a + e, sizeof(x));
		cache16(&y, b, (size_t)e, kb);
		s += x * y;
	}
	for (; e < n; e++)
		s[e & 15] += a[e] * cache1(b, (size_t)e, kb);
	v8f s8 = __builtin_shufflevector(s, s, 0, 1, 2, 3, 4, 5, 6, 7) +
		 __builtin_shufflevector(s, s, 8, 9, 10, 11, 12, 13, 14, 15);
	v4f s4 = __builtin_shufflevector(s8, s8, 0, 1, 2, 3) +
		 __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
	return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/* dot_lanes(a, b_p, n) for the 4 rows b_p = b + p ldb at once (n a
 * multiple of 16), the same bits: each row's 16 lanes summed in the same
 * order, then the same pairwise adds, done for the 4 rows in one vector
 * (float addition commutes, so an add's operand order does not matter).
 * One row at a time, each score was a chain of 4 dependent adds and a
 * horizontal sum: the scores took most of a decode step's attention. */
ISA_BODY v4f dots4(const float *a, const void *b, size_t ldb, int n, const int kb)
{
	v8f lo[4] = { { 0 } }, hi[4] = { { 0 } };
	for (int e = 0; e < n; e += 16) {
		v8f x0, x1;
		memcpy(&x0, a + e, sizeof(x0));
		memcpy(&x1, a + e + 8, sizeof(x1));
#pragma GCC unroll 4
		for (int r = 0; r < 4; r++) {
			v8f y0, y1;
			cache8(&y0, b, r * ldb + (size_t)e, kb);
			cache8(&y1, b, r * ldb + (size_t)e + 8, kb);
			lo[r] += x0 * y0;
			hi[r] += x1 * y1;
		}
	}
	v8f t0 = lo[0] + hi[0], t1 = lo[1] + hi[1], t2 = lo[2] + hi[2], t3 = lo[3] + hi[3];
	/* [t4 of row 0 | of row 1], [of row 2 | of row 3] */
	v8f u01 = __builtin_shufflevector(t0, t1, 0, 1, 2, 3, 8, 9, 10, 11) +
		  __builtin_shufflevector(t0, t1, 4, 5, 6, 7, 12, 13, 14, 15);
	v8f u23 = __builtin_shufflevector(t2, t3, 0, 1, 2, 3, 8, 9, 10, 11) +
		  __builtin_shufflevector(t2, t3, 4, 5, 6, 7, 12, 13, 14, 15);
	/* per row: x0 + x2 and x1 + x3, then their sum */
	v8f v01 = u01 + __builtin_shufflevector(u01, u01, 2, 3, 0, 1, 6, 7, 4, 5);
	v8f v23 = u23 + __builtin_shufflevector(u23, u23, 2, 3, 0, 1, 6, 7, 4, 5);
	v01 = v01 + __builtin_shufflevector(v01, v01, 1, 0, 3, 2, 5, 4, 7, 6);
	v23 = v23 + __builtin_shufflevector(v23, v23, 1, 0, 3, 2, 5, 4, 7, 6);
	return (v4f){ v01[0], v01[4], v23[0], v23[4] };
}

/* One cpu_attention_decode call: (row, head group) pairs (att_dec_group),
 * or its phases over key chunks (att_dec_keys, att_dec_soft, att_dec_vals,
 * att_dec_sum). */
struct att_dec_job {
	float *out, *scores, *part; /* part: the chunks' value sums (phases) */
	const float *q;
	const void *kc, *vc; /* floats, or bf16 codes (the copies that take kb) */
	const int32_t *seq, *pos;
	int max_len, H, D, G, GS, window; /* GS: query heads per iteration, G or a divisor */
	int lds; /* floats a head's scores take: the longest row's keys */
	int KVH, nck; /* KV heads; the phases' key chunks a row */
	size_t Q, K;
	float scale, cap;
};

/* Cache rows ahead that the attention's loops prefetch: each row's keys
 * and values (a head's D floats) lie K floats apart, a stride the
 * hardware's prefetch followed too late.  Measured on a 2-core Zen 3
 * (SmolLM2-135M bf16 decode steps, with and without alternating in one
 * process): 16 rows ahead 7-10% faster per token at 800 tokens of
 * context, 1% at 100; 4, 8 and 32 rows 4-7%.  The AVX-512 copy prefetches
 * alike (not measured). */
#define ATT_PF_ROWS 16
/* Query heads of a KV group at most that one pass over the values feeds
 * (their accumulators, 16 columns each, stay in registers). */
#define ATT_HEADS 4
/* Keys of a chunk: the weighted sum of the values is summed a chunk at a
 * time (from the window's first key), the chunks' sums added in order
 * (att_values), so that the phased attention can split the keys among
 * threads with the bits of one thread's loop. */
#define ATT_CHUNK 128

/* o_h = sum over j in [j0, j1) of p_h[j] v_j for the nh <= ATT_HEADS heads
 * h (o_h = o + h ldo, p_h = p + h ldp; v_j = v + j ldv), n floats, each
 * o_h[e] summed in j order from 0, a product then a sum per j (the same
 * bits however the columns and heads are taken): one head 64 columns at a
 * time (8 chains of adds in registers; o += p v through memory had
 * chained each j on the store before it), more 16 columns (one cache line
 * of each v_j) at a time for all nh heads, so each line of the values is
 * read once for the group.  Both prefetch the rows ATT_PF_ROWS ahead. */
ISA_BODY void sum_scaled(float *restrict o, size_t ldo, const float *restrict p, size_t ldp,
			 int nh, int j0, int j1, const void *restrict v, size_t ldv, int n,
			 const int wide, const int kb)
{
	int e = 0;
	/* one head: 64 columns a pass as NV vectors of type VT (8 chains of
	 * adds below AVX-512, not 2) */
#define SUM_ONE_HEAD(VT, NV)                                                          \
	do {                                                                          \
		VT acc[NV] = { { 0 } };                                               \
		for (int j = j0; j < j1; j++) {                                       \
			const size_t vj = (size_t)j * ldv + e;                        \
			for (int b = 0; b < 64 && j + ATT_PF_ROWS < j1; b += 16)      \
				__builtin_prefetch(                                   \
					cache_at(v, vj + ATT_PF_ROWS * ldv + b, kb)); \
			_Pragma("GCC unroll 8") for (int c = 0; c < NV; c++)          \
			{                                                             \
				VT x;                                                 \
				LOAD(&x, v, vj + 64 / NV * c, kb);                    \
				acc[c] += p[j] * x;                                   \
			}                                                             \
		}                                                                     \
		memcpy(o + e, acc, sizeof(acc));                                      \
	} while (0)
#define LOAD cache8
	for (; nh == 1 && !wide && e + 64 <= n; e += 64)
		SUM_ONE_HEAD(v8f, 8);
#undef LOAD
#define LOAD cache16
	for (; nh == 1 && wide && e + 64 <= n; e += 64)
		SUM_ONE_HEAD(v16f, 4);
#undef LOAD
#undef SUM_ONE_HEAD
	for (; !wide && e + 16 <= n; e += 16) { /* two v8f: see dot_lanes */
		v8f lo[ATT_HEADS] = { { 0 } }, hi[ATT_HEADS] = { { 0 } };
		for (int j = j0; j < j1; j++) {
			const size_t vj = (size_t)j * ldv + e;
			if (j + ATT_PF_ROWS < j1)
				__builtin_prefetch(cache_at(v, vj + ATT_PF_ROWS * ldv, kb));
			v8f x0, x1;
			cache8(&x0, v, vj, kb);
			cache8(&x1, v, vj + 8, kb);
#pragma GCC unroll 4
			for (int h = 0; h < ATT_HEADS; h++)
				if (h < nh) {
					const float ph = p[(size_t)h * ldp + j];
					lo[h] += ph * x0;
					hi[h] += ph * x1;
				}
		}
		for (int h = 0; h < nh; h++) {
			memcpy(o + (size_t)h * ldo + e, &lo[h], sizeof(lo[h]));
			memcpy(o + (size_t)h * ldo + e + 8, &hi[h], sizeof(hi[h]));
		}
	}
	for (; e + 16 <= n; e += 16) {
		v16f a[ATT_HEADS] = { { 0 } };
		for (int j = j0; j < j1; j++) {
			if (j + ATT_PF_ROWS < j1)
				__builtin_prefetch(cache_at(v, (size_t)(j + ATT_PF_ROWS) * ldv + e, kb));
			v16f x;
			cache16(&x, v, (size_t)j * ldv + e, kb);
#pragma GCC unroll 4
			for (int h = 0; h < ATT_HEADS; h++)
				if (h < nh)
					a[h] += p[(size_t)h * ldp + j] * x;
		}
		for (int h = 0; h < nh; h++)
			memcpy(o + (size_t)h * ldo + e, &a[h], sizeof(a[h]));
	}
	if (e < n)
		for (int h = 0; h < nh; h++) {
			float *oh = o + (size_t)h * ldo;
			const float *ph = p + (size_t)h * ldp;
			memset(oh + e, 0, (size_t)(n - e) * sizeof(float));
			for (int j = j0; j < j1; j++)
				for (int f = e; f < n; f++)
					oh[f] += ph[j] * cache1(v, (size_t)j * ldv + f, kb);
		}
}

/* The scores of the nh query heads q_h = q + h D against the keys j in
 * [ja, jb) (k_j = kc + j K), into sc[h lds + j]: q_h . k_j (dot_lanes, or
 * dots4 with its bits 4 keys at a time) times scale, capped when cap > 0.
 * Keys before T are prefetched ATT_PF_ROWS ahead. */
ISA_BODY void att_scores(float *sc, size_t lds, const float *q, int nh, const void *kc,
			 size_t K, int D, int ja, int jb, int T, float scale, float cap,
			 const int wide, const int kb)
{
	int jk = ja;
	for (; D % 16 == 0 && jk + 4 <= jb; jk += 4) { /* 4 keys at a time */
		for (int r = 0; r < 4 && jk + 4 + ATT_PF_ROWS <= T; r++)
			for (int b = 0; b < D; b += 16)
				__builtin_prefetch(
					cache_at(kc, (size_t)(jk + ATT_PF_ROWS + r) * K + b, kb));
		for (int h = 0; h < nh; h++) {
			float *sh = sc + (size_t)h * lds + jk;
			v4f d = dots4(q + (size_t)h * D, cache_at(kc, (size_t)jk * K, kb), K, D,
				      kb) * scale;
			if (cap > 0.0f) /* the scores in a vector, stored as one:
					 * as floats they went through the stack */
				for (int r = 0; r < 4; r++)
					sh[r] = tk_softcap(d[r], cap);
			else
				memcpy(sh, &d, sizeof(d));
		}
	}
	for (; jk < jb; jk++)
		for (int h = 0; h < nh; h++) {
			float d = dot_lanes(q + (size_t)h * D, cache_at(kc, (size_t)jk * K, kb), D, wide,
					    kb);
			sc[(size_t)h * lds + jk] = cap > 0.0f ? tk_softcap(d * scale, cap) : d * scale;
		}
}

/* sh[j] for j in [j0, T) replaced by their softmax: the max subtracted,
 * exp (tk_expf_poly, as the training attention's), divided by the sum,
 * summed in 8 lanes (lane l the j = j0 + l mod 8) then the lanes
 * pairwise: the same bits at every instruction set.  With glibc's expf
 * and one running sum (until 2026-12-08) the softmax took a third of a
 * decode step's attention at 1024 tokens of context (Zen 3). */
ISA_BODY void att_softmax(float *sh, int j0, int T)
{
	float mx = -INFINITY;
	int j = j0;
	/* the max in 8 lanes, then of the lanes: a score is taken when above
	 * the max so far, as one at a time would (NaNs never), so the same
	 * max up to the sign of a zero: s - mx then differs at most in the
	 * sign of a zero, and exp(-0) is exp(+0) */
	if (T - j0 >= 8) {
		v8f m8;
		memcpy(&m8, sh + j, sizeof(m8));
		for (j += 8; j + 8 <= T; j += 8) {
			v8f x;
			memcpy(&x, sh + j, sizeof(x));
			v8i gt = x > m8;
			m8 = (v8f)((gt & (v8i)x) | (~gt & (v8i)m8));
		}
		for (int l = 0; l < 8; l++)
			if (m8[l] > mx)
				mx = m8[l];
	}
	for (; j < T; j++)
		if (sh[j] > mx)
			mx = sh[j];
#pragma omp simd
	for (j = j0; j < T; j++)
		sh[j] = tk_expf_poly(sh[j] - mx);
	v8f s8 = { 0 };
	for (j = j0; j + 8 <= T; j += 8) {
		v8f x;
		memcpy(&x, sh + j, sizeof(x));
		s8 += x;
	}
	for (; j < T; j++)
		s8[(j - j0) & 7] += sh[j];
	v4f s4 = __builtin_shufflevector(s8, s8, 0, 1, 2, 3) +
		 __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
	const float sum = (s4[0] + s4[2]) + (s4[1] + s4[3]);
	/* divided 8 at a time (GCC left the loop scalar): the same quotients */
	for (j = j0; j + 8 <= T; j += 8) {
		v8f x;
		memcpy(&x, sh + j, sizeof(x));
		x = x / sum;
		memcpy(sh + j, &x, sizeof(x));
	}
	for (; j < T; j++)
		sh[j] /= sum;
}

/* Row i's first key in the cache (the window's) and its key count T. */
static inline int att_dec_span(const struct att_dec_job *a, int i, int *T)
{
	*T = a->pos[i] + 1;
	return a->window > 0 && *T > a->window ? *T - a->window : 0;
}

/* The weighted sums o_h = sum over j in [j0, T) of p_h[j] v_j of the nh
 * heads (o_h = o + h D, p_h = p + h ldp), as the phases make them: each
 * chunk of ATT_CHUNK keys from j0 summed from zero (sum_scaled), the
 * chunks' sums added in order; tmp: nh D floats of scratch. */
ISA_BODY void att_values(float *o, const float *p, size_t ldp, int nh, int j0, int T,
			 const void *v, size_t ldv, int D, float *tmp, const int wide, const int kb)
{
	for (int c0 = j0; c0 < T; c0 += ATT_CHUNK) {
		const int c1 = T - c0 > ATT_CHUNK ? c0 + ATT_CHUNK : T;
		float *dst = c0 == j0 ? o : tmp;
		for (int h = 0; h < nh; h += ATT_HEADS)
			sum_scaled(dst + (size_t)h * D, (size_t)D, p + (size_t)h * ldp, ldp,
				   nh - h < ATT_HEADS ? nh - h : ATT_HEADS, c0, c1, v, ldv, D, wide,
				   kb);
		if (c0 > j0)
			for (size_t e = 0; e < (size_t)nh * D; e++)
				o[e] += tmp[e];
	}
}

/* Row ig / (H / GS), query heads h0 = ig % (H / GS) * GS .. + GS - 1 (GS
 * divides G: all of them share KV head h0 / G) over its window of the
 * cache: each head's scores (att_scores), their softmax (att_softmax),
 * then the weighted sum of the values (att_values), all in fp32, the same
 * operations per head whatever GS, so the same bits; with GS = G the
 * group's keys and values are read once for its heads.  Measured on a
 * 2-core Zen 3 (SmolLM2-135M, bf16, 3 query heads a KV head; both ways
 * alternating in one process): a prompt pass of 800 tokens 15% faster with
 * GS = G (8 prompts of 500: 9%).  Cloned, with the helpers inlined into
 * each copy: built for plain x86-64, the 16-lane loops ran as SSE2
 * (sum_scaled, left out of line, did so until 2026-12-07: 26% of a bf16
 * decode step at 800 tokens).  wide: 16-lane vectors as one value (the
 * AVX-512 copy), else as two of 8 (the same lanes, the same bits: the
 * AVX2 and plain copies). */
ISA_BODY void att_dec_group_body(void *p, int ig, int tid, const int wide, const int kb)
{
	const struct att_dec_job *a = p;
	const int D = a->D, lds = a->lds, GS = a->GS, per = a->H / GS;
	const int i = ig / per, h0 = ig % per * GS;
	int T;
	const int j0 = att_dec_span(a, i, &T);
	const size_t base = (size_t)a->seq[i] * a->max_len * a->K + (size_t)(h0 / a->G) * D;
	float *sc = a->scores + (size_t)tid * GS * (lds + D);

	att_scores(sc, (size_t)lds, a->q + (size_t)i * a->Q + (size_t)h0 * D, GS,
		   cache_at(a->kc, base, kb), a->K, D, j0, T, T, a->scale, a->cap, wide, kb);
	for (int h = 0; h < GS; h++)
		att_softmax(sc + (size_t)h * lds, j0, T);
	att_values(a->out + (size_t)i * a->Q + (size_t)h0 * D, sc, (size_t)lds, GS, j0, T,
		   cache_at(a->vc, base, kb), a->K, D, sc + (size_t)GS * lds, wide, kb);
}
ISA_VOID_COPIES(att_dec_group, (void *p, int ig, int tid),
		(p, ig, tid, ISA_LEVEL >= TK_CPU_ISA_AVX512, 0));
ISA_VOID_COPIES_OF(att_dec_group_b16, att_dec_group_body, (void *p, int ig, int tid),
		(p, ig, tid, ISA_LEVEL >= TK_CPU_ISA_AVX512, 1));

/* The phased decode attention, for decode steps over long contexts.  A
 * pool iteration a head (att_dec_group) read a KV head's keys and values
 * once for each of its G query heads, and gave 2 threads 9 heads (or, a
 * KV group an iteration, 3 groups) to share.  The phases cut the work by
 * chunks of ATT_CHUNK keys instead, every head of a row together, each op
 * as att_dec_group's (the same bits):
 *   att_dec_keys: row i, chunk c: every head's scores of its keys;
 *   att_dec_soft: row i, head h: the softmax of its scores;
 *   att_dec_vals: row i, chunk c: every head's sum over its keys, into
 *     part + ((i nck + c) H + h) D;
 *   att_dec_sum: row i, head h: the chunks' sums added in order.
 * Scores live at scores + (i H + h) lds.  Measured on a 2-core Zen 3
 * (SmolLM2-135M bf16, 3 query heads a KV head, both ways alternating token
 * by token in one process): at 260 tokens of context 1% faster a token,
 * at 512 4-9%, at 1024 11-12%, at 2000 13-15%; multi-head caches of
 * GPT-2's shape (12 heads, 12 layers, attention alone) 4-15% at 512 and
 * 1024 tokens. */
ISA_BODY void att_dec_keys_body(void *p, int it, int tid, const int wide, const int kb)
{
	const struct att_dec_job *a = p;
	const int D = a->D, G = a->G, i = it / a->nck;
	int T;
	const int ja = att_dec_span(a, i, &T) + it % a->nck * ATT_CHUNK;
	const int jb = T - ja > ATT_CHUNK ? ja + ATT_CHUNK : T;
	const size_t base = (size_t)a->seq[i] * a->max_len * a->K;

	for (int g = 0; g < a->KVH; g++)
		att_scores(a->scores + ((size_t)i * a->H + (size_t)g * G) * a->lds,
			   (size_t)a->lds, a->q + (size_t)i * a->Q + (size_t)g * G * D, G,
			   cache_at(a->kc, base + (size_t)g * D, kb), a->K, D, ja, jb, T, a->scale,
			   a->cap, wide, kb);
}
ISA_VOID_COPIES(att_dec_keys, (void *p, int it, int tid),
		(p, it, tid, ISA_LEVEL >= TK_CPU_ISA_AVX512, 0));
ISA_VOID_COPIES_OF(att_dec_keys_b16, att_dec_keys_body, (void *p, int it, int tid),
		(p, it, tid, ISA_LEVEL >= TK_CPU_ISA_AVX512, 1));

ISA_BODY void att_dec_soft_body(void *p, int it, int tid)
{
	const struct att_dec_job *a = p;
	int T;
	const int j0 = att_dec_span(a, it / a->H, &T);

	att_softmax(a->scores + (size_t)it * a->lds, j0, T);
}
ISA_VOID_COPIES(att_dec_soft, (void *p, int it, int tid), (p, it, tid));

ISA_BODY void att_dec_vals_body(void *p, int it, int tid, const int wide, const int kb)
{
	const struct att_dec_job *a = p;
	const int D = a->D, G = a->G, H = a->H, i = it / a->nck;
	int T;
	const int ja = att_dec_span(a, i, &T) + it % a->nck * ATT_CHUNK;
	const int jb = T - ja > ATT_CHUNK ? ja + ATT_CHUNK : T;
	const size_t base = (size_t)a->seq[i] * a->max_len * a->K;
	float *part = a->part + (size_t)it * H * D;

	for (int g = 0; g < a->KVH && ja < T; g++)
		for (int h = g * G; h < (g + 1) * G; h += ATT_HEADS)
			sum_scaled(part + (size_t)h * D, (size_t)D,
				   a->scores + ((size_t)i * H + h) * a->lds, (size_t)a->lds,
				   (g + 1) * G - h < ATT_HEADS ? (g + 1) * G - h : ATT_HEADS, ja, jb,
				   cache_at(a->vc, base + (size_t)g * D, kb), a->K, D, wide, kb);
}
ISA_VOID_COPIES(att_dec_vals, (void *p, int it, int tid),
		(p, it, tid, ISA_LEVEL >= TK_CPU_ISA_AVX512, 0));
ISA_VOID_COPIES_OF(att_dec_vals_b16, att_dec_vals_body, (void *p, int it, int tid),
		(p, it, tid, ISA_LEVEL >= TK_CPU_ISA_AVX512, 1));

ISA_BODY void att_dec_sum_body(void *p, int it, int tid)
{
	const struct att_dec_job *a = p;
	const int D = a->D, H = a->H, i = it / H, h = it % H;
	int T;
	const int j0 = att_dec_span(a, i, &T);
	const int nc = (T - j0 + ATT_CHUNK - 1) / ATT_CHUNK;
	const float *part = a->part + ((size_t)i * a->nck * H + h) * D;
	float *o = a->out + (size_t)i * a->Q + (size_t)h * D;

	memcpy(o, part, (size_t)D * sizeof(float));
	for (int c = 1; c < nc; c++)
		for (int e = 0; e < D; e++)
			o[e] += part[(size_t)c * H * D + e];
}
ISA_VOID_COPIES(att_dec_sum, (void *p, int it, int tid), (p, it, tid));

/* Keys of context from which a decode step takes the phased attention
 * (below, 2 chunks; at 256 measured as fast as a head an iteration). */
#define ATT_PHASED_MIN 256

/* (row, head group) pairs on the pool for the rows of a decode step (as
 * the GEMVs around it: the pool's loops do not wait for a thread that lost
 * its core, pool.h), or the phases; a prompt pass on OpenMP. */
static int cpu_attention_decode(struct tk_backend *be, float *out, const float *q,
				const void *kc, const void *vc, const int32_t *seq,
				const int32_t *pos, int n, int max_len, int n_head,
				int n_kv_head, int head_dim, const struct tk_attn_opts *ao)
{
	const int H = n_head, D = head_dim, G = n_head / n_kv_head;
	const int nt = be->threads, isa = (int)tk_cpu_isa();
	const size_t K = (size_t)n_kv_head * D;
	int kb = ao->cache_bf16;
	long work = 0;
	int span = 0, lds = 0; /* the longest window; keys of the longest row */
	float *scores;

	for (int i = 0; i < n; i++) {
		if (pos[i] < 0 || pos[i] >= max_len || seq[i] < 0)
			return TK_E_INVAL;
		int T = pos[i] + 1, w = ao->window > 0 && T > ao->window ? ao->window : T;
		work += (long)T * H * D;
		span = w > span ? w : span;
		lds = T > lds ? T : lds;
	}
	const int prompt = n > TK_GEMV_MAX_ROWS;
	const int phased = !prompt && span >= ATT_PHASED_MIN;
	const int nck = (span + ATT_CHUNK - 1) / ATT_CHUNK;
	/* a prompt pass takes a KV group's heads together, a decode step one
	 * head at a time (att_dec_group_body) or the phases: scores and a
	 * chunk's value sums for GS heads a thread, or for every head of
	 * every row and the chunks' sums */
	const int GS = prompt ? G : 1;
	const size_t ws = phased ? (size_t)n * H * ((size_t)lds + (size_t)nck * D)
				 : (size_t)nt * GS * ((size_t)lds + D);
	/* a prompt pass over a bf16 cache widens the rows' sequences to
	 * floats first (each up to its longest row's keys, numbered anew:
	 * cs[i] the number of row i's, sq[c] and top[c] sequence c and its
	 * keys): its loops read each key and value once for every row, and
	 * widening them as they were read made the pass 15-17% slower */
	const int widen = prompt && kb;
	int nsq = 0, *sq = NULL, *top = NULL;
	int32_t *cs = NULL;
	if (widen) {
		cs = malloc((size_t)n * sizeof(*cs));
		sq = malloc((size_t)n * sizeof(*sq));
		top = malloc((size_t)n * sizeof(*top));
		for (int i = 0; cs && sq && top && i < n; i++) {
			int c = 0;
			if (i > 0 && seq[i] == seq[i - 1]) /* a prompt's rows: no search */
				c = cs[i - 1];
			else {
				while (c < nsq && sq[c] != seq[i])
					c++;
				if (c == nsq)
					sq[nsq] = seq[i], top[nsq++] = 0;
			}
			cs[i] = c;
			top[c] = pos[i] + 1 > top[c] ? pos[i] + 1 : top[c];
		}
	}
	const size_t wsz = (size_t)nsq * lds * K;
	scores = widen && !(cs && sq && top) ? NULL : ws_get(be, (ws + 2 * wsz) * sizeof(float));
	if (!scores) {
		free(cs), free(sq), free(top);
		return TK_E_NOMEM;
	}
	if (widen) {
		float *wk = scores + ws, *wv = wk + wsz;
		for (int c = 0; c < nsq; c++) {
			const size_t e0 = (size_t)sq[c] * max_len * K, ne = (size_t)top[c] * K;
			const uint16_t *hk = (const uint16_t *)kc + e0, *hv = (const uint16_t *)vc + e0;
			float *fk = wk + (size_t)c * lds * K, *fv = wv + (size_t)c * lds * K;
			for (size_t e = 0; e < ne; e++)
				fk[e] = tk_bf16_value(hk[e]), fv[e] = tk_bf16_value(hv[e]);
		}
		kc = wk, vc = wv, seq = cs, max_len = lds, kb = 0;
	}
	struct att_dec_job a = { .out = out, .scores = scores,
				 .part = scores + (size_t)n * H * lds, .q = q, .kc = kc,
				 .vc = vc, .seq = seq, .pos = pos, .max_len = max_len, .lds = lds,
				 .H = H, .D = D, .G = G, .GS = GS, .window = ao->window,
				 .KVH = n_kv_head, .nck = nck, .Q = (size_t)H * D, .K = K,
				 .scale = ao->scale, .cap = ao->softcap };
	if (prompt) {
		/* a prompt pass, whose other ops are OpenMP's: one kind of
		 * worker per pass, so idle ones of the other kind do not spin
		 * on the cores this one needs.  Iterations dealt in turn: a
		 * row's keys grow with its position, and halves of the rows
		 * (schedule(static)) gave one thread three times the other's
		 * keys (2-core Zen 3, SmolLM2-135M bf16, alternating in one
		 * process: prompts of 1000 and 2000 tokens 11-19% faster).  A
		 * bf16 cache is floats by now (widened above) */
#pragma omp parallel for num_threads(nt) schedule(static, 1) if (work > 32768)
		for (int ig = 0; ig < n * (H / GS); ig++)
			ISA_COPY(att_dec_group, isa)(&a, ig, omp_get_thread_num());
		free(cs), free(sq), free(top);
		return 0;
	}
	const int nw = work > 32768 ? nt : 1;
	if (phased) {
		tk_pool_for(nw, n * nck,
			    kb ? ISA_COPY(att_dec_keys_b16, isa) : ISA_COPY(att_dec_keys, isa), &a);
		tk_pool_for(nw, n * H, ISA_COPY(att_dec_soft, isa), &a);
		tk_pool_for(nw, n * nck,
			    kb ? ISA_COPY(att_dec_vals_b16, isa) : ISA_COPY(att_dec_vals, isa), &a);
		tk_pool_for(nw, n * H, ISA_COPY(att_dec_sum, isa), &a);
		return 0;
	}
	tk_pool_for(nw, n * (H / GS),
		    kb ? ISA_COPY(att_dec_group_b16, isa) : ISA_COPY(att_dec_group, isa), &a);
	return 0;
}

static int cpu_copy_rows(struct tk_backend *be, float *dst, const float *src, const int64_t *idx,
			 int n, int dim)
{
	for (int i = 0; i < n; i++) {
		if (idx[i] < 0)
			return TK_E_INVAL;
		memcpy(dst + (size_t)idx[i] * dim, src + (size_t)i * dim,
		       (size_t)dim * sizeof(float));
	}
	return 0;
}

static int cpu_store_rows_bf16(struct tk_backend *be, uint16_t *dst, const float *src,
			       const int64_t *idx, int n, int dim)
{
	for (int i = 0; i < n; i++)
		if (idx[i] < 0)
			return TK_E_INVAL;
	for (int i = 0; i < n; i++)
		for (int e = 0; e < dim; e++)
			dst[(size_t)idx[i] * dim + e] = tk_bf16_code(src[(size_t)i * dim + e]);
	return 0;
}

static const struct tk_backend_i cpu_backend = {
	/* .name = */ "cpu",
	/* .host_memory = */ 1,
	/* .matmul = */ cpu_matmul,
	/* .layernorm_fwd = */ cpu_layernorm_fwd,
	/* .layernorm_bwd = */ cpu_layernorm_bwd,
	/* .rmsnorm_fwd = */ cpu_rmsnorm_fwd,
	/* .rmsnorm_bwd = */ cpu_rmsnorm_bwd,
	/* .gelu_fwd = */ cpu_gelu_fwd,
	/* .gelu_bwd = */ cpu_gelu_bwd,
	/* .swiglu_fwd = */ cpu_swiglu_fwd,
	/* .swiglu_bwd = */ cpu_swiglu_bwd,
	/* .geglu_fwd = */ cpu_geglu_fwd,
	/* .geglu_bwd = */ cpu_geglu_bwd,
	/* .logit_softcap = */ cpu_logit_softcap,
	/* .bias_add = */ cpu_bias_add,
	/* .bias_grad = */ cpu_bias_grad,
	/* .axpy = */ cpu_axpy,
	/* .rope = */ cpu_rope,
	/* .attention_fwd = */ cpu_attention_fwd,
	/* .attention_bwd = */ cpu_attention_bwd,
	/* .embedding_fwd = */ cpu_embedding_fwd,
	/* .embedding_bwd = */ cpu_embedding_bwd,
	/* .cross_entropy = */ cpu_cross_entropy,
	/* .adamw = */ cpu_adamw,
	/* .sum_squares = */ cpu_sum_squares,
	/* .scale = */ cpu_scale,
	/* .alloc = */ cpu_alloc,
	/* .free = */ cpu_free,
	/* .sync = */ cpu_sync,
	/* .destroy = */ cpu_destroy,
#ifdef TK_QMM_AVX512
	/* .dequant_rows = */ cpu_dequant_rows,
#else
	/* .dequant_rows = */ NULL, /* tk_dequant_rows: tk_qweight_rows */
#endif
	/* .prec_ok = */ cpu_prec_ok,
	/* .qmatmul = */ cpu_qmatmul,
	/* .matmul_group = */ cpu_matmul_group,
	/* .attention_decode = */ cpu_attention_decode,
	/* .copy_rows = */ cpu_copy_rows,
	/* .mem_info = */ cpu_mem_info,
	/* .add_noise = */ cpu_add_noise,
	/* .adamw8 = */ cpu_adamw8,
	/* .adamw8_f32 = */ cpu_adamw8_f32,
	/* .hold = */ cpu_hold,
	/* .unhold = */ cpu_unhold,
	/* .store_rows_bf16 = */ cpu_store_rows_bf16,
};

int tk_backend_cpu_init(struct tk_backend *be, int threads, struct tk_diag *d)
{
	tk_diag_clear(d);
	be->i = NULL;
	be->ctx = NULL;
	be->prec = TK_PREC_FP32;
	be->threads = 0;
	if (threads < 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "thread count %d is negative (use 0 for one per core)", threads);
	if (!threads)
		threads = omp_get_num_procs();
	if (threads < 1)
		threads = 1;
	size_t limit;
	int rc = tk_mem_limit_parse(getenv("TK_DEVICE_MEMORY_LIMIT"), &limit, d);
	if (rc || (rc = tk_cpu_isa_check(d)) || (rc = tk_blas_init(d)))
		return rc;
	struct cpu_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	c->limit = limit;
	tk_blas_set_threads(1); /* see cpu_matmul */
	be->i = &cpu_backend;
	be->ctx = c;
	be->threads = threads;
	return 0;
}

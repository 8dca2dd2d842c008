/* test-backend-ops.c - every op of the CPU backend against a plain reference.
 *
 * Forwards are compared with straightforward double-precision versions
 * written here; backwards with central finite differences (step 1e-6) of
 * those double forwards, through the scalar loss sum(R * y) for a fixed
 * random R.  Sizes are odd on purpose (rows 7, dim 13, 3 heads over 1 kv
 * head, T 5 and 37, vocab 37).  Tolerances: fp32 results against double
 * references within 1e-5 relative (plus a small absolute floor, stated at
 * each check); gradients within 1e-4 relative.  AdamW is replayed against
 * torch's own numbers (tests/fixtures/adamw, from
 * tests/parity/gen-adamw-fixture.py).  The reductions that are kept in a
 * fixed order are checked to give the same bits with 1 and 2 threads.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compute/backend-cpu-int.h"
#include "compute/backend.h"
#include "compute/cpu.h"
#include "base/math-common.h"
#include "tt.h"

static struct tk_backend be1, be2; /* 1 and 2 threads */

/* ---- helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static double urand(void) /* [-1, 1) */
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) / 4503599627370496.0 - 1.0;
}

static void fill(float *x, size_t n, double scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(urand() * scale);
}

static void to_double(double *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = x[i];
}

/* Largest violation of |a - b| <= atol + rtol |b|, as a ratio (<= 1 passes). */
static double worst(const float *a, const double *b, size_t n, double atol, double rtol,
		    size_t *at)
{
	double w = 0.0;
	*at = 0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs(a[i] - b[i]) / (atol + rtol * fabs(b[i]));
		if (!(e <= w)) {
			w = e;
			*at = i;
		}
	}
	return w;
}

#define CHECK_CLOSE(a, b, n, atol, rtol, what)                                          \
	do {                                                                            \
		size_t at_;                                                             \
		double w_ = worst(a, b, n, atol, rtol, &at_);                           \
		TT_CHECK(w_ <= 1.0, "%s[%zu]: got %.9g want %.9g", what, at_,          \
			 (double)(a)[at_], (b)[at_]);                                   \
	} while (0)

/* Central differences of f (a scalar function of x[0..n)) into g, step h. */
typedef double (*scalar_fn)(void *ctx, double *x);

static void fd_grad(scalar_fn f, void *ctx, double *x, size_t n, double *g)
{
	const double h = 1e-6;
	for (size_t i = 0; i < n; i++) {
		double keep = x[i];
		x[i] = keep + h;
		double fp = f(ctx, x);
		x[i] = keep - h;
		double fm = f(ctx, x);
		x[i] = keep;
		g[i] = (fp - fm) / (2 * h);
	}
}

static double wsum(const double *r, const double *y, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += r[i] * y[i];
	return s;
}

/* ---- GEMM ---- */

static void test_matmul(void)
{
	enum { M = 7, N = 5, K = 13, PAD = 3 };
	for (int ta = 0; ta < 2; ta++) {
		for (int tb = 0; tb < 2; tb++) {
			int lda = (ta ? M : K) + PAD, ldb = (tb ? K : N) + PAD, ldc = N + PAD;
			float a[(K + PAD) * (K + PAD)], b[(K + PAD) * (K + PAD)], c[M * ldc];
			double want[M * ldc];
			fill(a, sizeof(a) / sizeof(a[0]), 1.0);
			fill(b, sizeof(b) / sizeof(b[0]), 1.0);
			fill(c, (size_t)M * ldc, 1.0);
			to_double(want, c, (size_t)M * ldc);
			for (int i = 0; i < M; i++)
				for (int j = 0; j < N; j++) {
					double s = 0.0;
					for (int l = 0; l < K; l++)
						s += (double)(ta ? a[l * lda + i] : a[i * lda + l]) *
						     (tb ? b[j * ldb + l] : b[l * ldb + j]);
					want[i * ldc + j] = 0.75 * s + -0.5 * (double)c[i * ldc + j];
				}
			int rc = tk_matmul(&be2, ta, tb, M, N, K, 0.75f, a, lda, b, ldb, -0.5f, c,
					   ldc);
			TT_REQUIRE(rc == 0, "ta %d tb %d: rc %d", ta, tb, rc);
			/* the padding columns of C stay as they were */
			CHECK_CLOSE(c, want, (size_t)M * ldc, 1e-6, 1e-5, ta ? tb ? "TT" : "TN"
								  : tb ? "NT" : "NN");
		}
	}
}

/* One row times a transposed matrix (a decode step) goes through GEMV,
 * split over threads when large: both sizes, both layouts of the row. */
static void test_matvec(void)
{
	static const int NS[] = { 37, 301 }, KS[] = { 19, 1003 };
	for (int sz = 0; sz < 2; sz++)
		for (int ta = 0; ta < 2; ta++) {
			int N = NS[sz], K = KS[sz], lda = ta ? 3 : K, ldb = K + 2, ldc = N;
			float *a = malloc(sizeof(float) * (size_t)K * 3), *c = malloc(sizeof(float) * N);
			float *b = malloc(sizeof(float) * (size_t)N * ldb);
			double *want = malloc(sizeof(double) * N);
			fill(a, (size_t)K * 3, 1.0);
			fill(b, (size_t)N * ldb, 1.0);
			fill(c, (size_t)N, 1.0);
			for (int j = 0; j < N; j++) {
				double s = 0.0;
				for (int l = 0; l < K; l++)
					s += (double)(ta ? a[l * lda] : a[l]) * b[(size_t)j * ldb + l];
				want[j] = 0.75 * s - 0.5 * (double)c[j];
			}
			int rc = tk_matmul(&be2, ta, 1, 1, N, K, 0.75f, a, lda, b, ldb, -0.5f, c, ldc);
			TT_REQUIRE(rc == 0, "rc %d", rc);
			CHECK_CLOSE(c, want, (size_t)N, 1e-5, 1e-4, ta ? "row transposed" : "row");
			free(a);
			free(b);
			free(c);
			free(want);
		}
}

/* A few rows times a transposed matrix (decode steps of 1..8 sequences)
 * through the CPU backend's own GEMV loops at every instruction-set level
 * this CPU runs (TK_CPU_ISA; generic is OpenBLAS), with 1 and 2 threads:
 * against doubles within the bound of an fp32 sum of k products in any
 * order, gamma_{k+3} = (k+3) u / (1 - (k+3) u) times the sum of the
 * magnitudes (Higham, eq. 3.5; +3: alpha's product, beta's, and their sum),
 * and the same bits for 1 and 2 threads (each output is summed by one
 * thread in one order) and for each row alone (the order does not depend
 * on how many rows share a pass: a sequence decodes to the same tokens at
 * any batch size); C's padding is never written, and beta 0 never reads C
 * (it starts as NaN). */
static void test_gemv_isas(void)
{
	static const int MS[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 12 }, NS[] = { 1, 37, 301 };
	static const int KS[] = { 0, 1, 13, 576, 1003, 2500 };
	const double u = ldexp(1.0, -24);
	char *saved = tt_env_save("TK_CPU_ISA");
	double ratio = 0.0;
	for (int isa = (int)tk_cpu_isa_best(); isa >= 0 && !tt_failed_now; isa--) {
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
		for (size_t mi = 0; mi < sizeof(MS) / sizeof(MS[0]); mi++)
			for (size_t ni = 0; ni < sizeof(NS) / sizeof(NS[0]); ni++)
				for (size_t ki = 0; ki < sizeof(KS) / sizeof(KS[0]); ki++)
					for (int bz = 0; bz < 2 && !tt_failed_now; bz++) {
		const int M = MS[mi], N = NS[ni], K = KS[ki];
		const int lda = K + 1, ldb = K + 2, ldc = N + 3;
		const float beta = bz ? 0.0f : -0.5f;
		float *a = malloc(sizeof(float) * (size_t)M * lda);
		float *b = malloc(sizeof(float) * (size_t)N * ldb);
		float *c0 = malloc(sizeof(float) * (size_t)M * ldc);
		float *c1 = malloc(sizeof(float) * (size_t)M * ldc);
		float *c2 = malloc(sizeof(float) * (size_t)M * ldc);
		float *c3 = malloc(sizeof(float) * (size_t)M * ldc);
		TT_REQUIRE(a && b && c0 && c1 && c2 && c3, "out of memory");
		fill(a, (size_t)M * lda, 1.0);
		fill(b, (size_t)N * ldb, 1.0);
		fill(c0, (size_t)M * ldc, 1.0);
		if (bz)
			for (int i = 0; i < M; i++)
				for (int j = 0; j < N; j++)
					c0[(size_t)i * ldc + j] = NAN;
		memcpy(c1, c0, sizeof(float) * (size_t)M * ldc);
		memcpy(c2, c0, sizeof(float) * (size_t)M * ldc);
		memcpy(c3, c0, sizeof(float) * (size_t)M * ldc);
		for (int i = 0; i < M; i++)
			TT_REQUIRE(tk_matmul(&be1, 0, 1, 1, N, K, 0.75f, a + (size_t)i * lda, lda, b,
					     ldb, beta, c3 + (size_t)i * ldc, ldc) == 0, "rc");
		TT_REQUIRE(tk_matmul(&be1, 0, 1, M, N, K, 0.75f, a, lda, b, ldb, beta, c1, ldc) == 0,
			   "rc");
		TT_REQUIRE(tk_matmul(&be2, 0, 1, M, N, K, 0.75f, a, lda, b, ldb, beta, c2, ldc) == 0,
			   "rc");
		for (int i = 0; i < M && !tt_failed_now; i++) {
			for (int j = 0; j < N; j++) {
				double s = 0.0, mag = 0.0;
				size_t at = (size_t)i * ldc + j;
				for (int l = 0; l < K; l++) {
					double p = (double)a[(size_t)i * lda + l] * b[(size_t)j * ldb + l];
					s += p;
					mag += fabs(p);
				}
				s *= 0.75;
				mag *= 0.75;
				if (!bz) {
					s += (double)beta * c0[at];
					mag += fabs((double)beta * c0[at]);
				}
				double tol = (K + 3) * u / (1 - (K + 3) * u) * mag, e = fabs(c1[at] - s);
				ratio = fmax(ratio, e / tol);
				TT_CHECK(e <= tol, "%s m %d n %d k %d beta %g: c[%d][%d] = %.9g, want %.9g",
					 tk_cpu_isa_name((enum tk_cpu_isa)isa), M, N, K, beta, i, j,
					 c1[at], s);
				/* tk's own loops (m <= TK_GEMV_MAX_ROWS) sum in one
				 * order on any thread count; above, OpenBLAS's
				 * SGEMM may split k by threads */
				TT_CHECK(isa == 0 || M > TK_GEMV_MAX_ROWS ||
						 !memcmp(&c1[at], &c2[at], sizeof(float)),
					 "%s m %d n %d k %d: 2 threads differ at [%d][%d]",
					 tk_cpu_isa_name((enum tk_cpu_isa)isa), M, N, K, i, j);
				TT_CHECK(isa == 0 || M > TK_GEMV_MAX_ROWS ||
						 !memcmp(&c1[at], &c3[at], sizeof(float)),
					 "%s m %d n %d k %d: row %d alone differs at column %d",
					 tk_cpu_isa_name((enum tk_cpu_isa)isa), M, N, K, i, j);
			}
			for (int j = N; j < ldc; j++)
				TT_CHECK(!memcmp(&c1[(size_t)i * ldc + j], &c0[(size_t)i * ldc + j],
						 sizeof(float)), "padding written");
		}
		free(a), free(b), free(c0), free(c1), free(c2), free(c3);
					}
	}
	tt_env_restore("TK_CPU_ISA", saved);
	printf("info GEMV error at most %.3g of the bound\n", ratio);
}

/* A small inner dimension (LoRA's rank-r products) at every
 * instruction-set level this CPU runs, 1 and 2 threads, both layouts of
 * B, beta 0 (C starts as NaN: never read), 1 and -0.5, tails of rows and
 * columns.  tk_cpu_thin itself (AVX2 and AVX-512, k up to TK_THIN_K_MAX,
 * any beta): each element has the bits of its scalar model, one fmaf
 * chain over p from zero, then fmaf(alpha, sum, beta c) (alpha sum alone
 * for beta 0), for any thread count.  tk_matmul, which takes tk_cpu_thin
 * where tk_cpu_thin_takes says and OpenBLAS elsewhere: those bits where it
 * takes it, else within the bound of an fp32 sum of k + 3 products in any
 * order (test_gemv_isas).  C's padding is never written. */
static void test_thin_isas(void)
{
	static const int MS[] = { 9, 13, 64, 203 }, NS[] = { 1, 7, 16, 17, 31, 257, 600 };
	static const int KS[] = { 1, 3, 16, 17, TK_THIN_K_MAX, TK_THIN_K_MAX + 1, 64 };
	static const float BETAS[] = { 0.0f, 1.0f, -0.5f };
	const double u = ldexp(1.0, -24);
	char *saved = tt_env_save("TK_CPU_ISA");
	int exact = 0;
	for (int isa = (int)tk_cpu_isa_best(); isa >= 0 && !tt_failed_now; isa--) {
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
		for (size_t mi = 0; mi < sizeof(MS) / sizeof(MS[0]); mi++)
		for (size_t ni = 0; ni < sizeof(NS) / sizeof(NS[0]); ni++)
		for (size_t ki = 0; ki < sizeof(KS) / sizeof(KS[0]); ki++)
		for (int tb = 0; tb < 2; tb++)
		for (size_t bi = 0; bi < sizeof(BETAS) / sizeof(BETAS[0]) && !tt_failed_now; bi++) {
			const int M = MS[mi], N = NS[ni], K = KS[ki];
			const int lda = K + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
			const float alpha = 0.75f, beta = BETAS[bi];
			const int own = tk_cpu_thin_ok((enum tk_cpu_isa)isa, K);
			const int thin = tk_cpu_thin_takes((enum tk_cpu_isa)isa, K, beta);
			float *a = malloc(sizeof(float) * (size_t)M * lda);
			float *b = malloc(sizeof(float) * (size_t)(tb ? N : K) * ldb);
			float *c0 = malloc(sizeof(float) * (size_t)M * ldc);
			float *c1 = malloc(sizeof(float) * (size_t)M * ldc);
			float *c2 = malloc(sizeof(float) * (size_t)M * ldc);
			float *c3 = malloc(sizeof(float) * (size_t)M * ldc);
			float *c4 = malloc(sizeof(float) * (size_t)M * ldc);
			TT_REQUIRE(a && b && c0 && c1 && c2 && c3 && c4, "out of memory");
			fill(a, (size_t)M * lda, 1.0);
			fill(b, (size_t)(tb ? N : K) * ldb, 1.0);
			fill(c0, (size_t)M * ldc, 1.0);
			for (int i = 0; i < M && beta == 0.0f; i++)
				for (int j = 0; j < N; j++)
					c0[(size_t)i * ldc + j] = NAN;
			memcpy(c1, c0, sizeof(float) * (size_t)M * ldc);
			memcpy(c2, c0, sizeof(float) * (size_t)M * ldc);
			memcpy(c3, c0, sizeof(float) * (size_t)M * ldc);
			memcpy(c4, c0, sizeof(float) * (size_t)M * ldc);
			if (own) {
				tk_cpu_thin((enum tk_cpu_isa)isa, 1, tb, M, N, K, alpha, a, lda, b, ldb,
					    beta, c3, ldc);
				tk_cpu_thin((enum tk_cpu_isa)isa, 2, tb, M, N, K, alpha, a, lda, b, ldb,
					    beta, c4, ldc);
			}
			TT_REQUIRE(tk_matmul(&be1, 0, tb, M, N, K, alpha, a, lda, b, ldb, beta, c1,
					     ldc) == 0, "rc");
			TT_REQUIRE(tk_matmul(&be2, 0, tb, M, N, K, alpha, a, lda, b, ldb, beta, c2,
					     ldc) == 0, "rc");
			for (int i = 0; i < M && !tt_failed_now; i++) {
				for (int j = 0; j < N; j++) {
					size_t at = (size_t)i * ldc + j;
					float f = 0.0f;
					double s = 0.0, mag = 0.0;
					for (int p = 0; p < K; p++) {
						float x = a[(size_t)i * lda + p];
						float y = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
						f = fmaf(x, y, f);
						s += (double)x * y;
						mag += fabs((double)x * y);
					}
					f = beta == 0.0f ? alpha * f
						: fmaf(alpha, f, beta == 1.0f ? c0[at] : beta * c0[at]);
					s = alpha * s + (beta == 0.0f ? 0.0 : (double)beta * c0[at]);
					mag = alpha * mag + (beta == 0.0f ? 0.0 : fabs((double)beta * c0[at]));
					double tol = (K + 3) * u / (1 - (K + 3) * u) * mag;
					TT_CHECK(thin ? !memcmp(&c1[at], &f, sizeof(f))
						      : fabs(c1[at] - s) <= tol,
						 "%s m %d n %d k %d tb %d beta %g: c[%d][%d] = %.9g, want "
						 "%.9g", tk_cpu_isa_name((enum tk_cpu_isa)isa), M, N, K, tb,
						 beta, i, j, c1[at], thin ? f : s);
					TT_CHECK(!thin || !memcmp(&c1[at], &c2[at], sizeof(float)),
						 "%s m %d n %d k %d: 2 threads differ at [%d][%d]",
						 tk_cpu_isa_name((enum tk_cpu_isa)isa), M, N, K, i, j);
					TT_CHECK(!own || (!memcmp(&c3[at], &f, sizeof(f)) &&
							  !memcmp(&c4[at], &f, sizeof(f))),
						 "%s tk_cpu_thin m %d n %d k %d tb %d beta %g: c[%d][%d] "
						 "= %.9g / %.9g, want %.9g",
						 tk_cpu_isa_name((enum tk_cpu_isa)isa), M, N, K, tb, beta,
						 i, j, c3[at], c4[at], f);
				}
				for (int j = N; j < ldc; j++)
					TT_CHECK(!memcmp(&c1[(size_t)i * ldc + j], &c0[(size_t)i * ldc + j],
							 sizeof(float)) &&
							 !memcmp(&c2[(size_t)i * ldc + j],
								 &c0[(size_t)i * ldc + j], sizeof(float)) &&
							 !memcmp(&c3[(size_t)i * ldc + j],
								 &c0[(size_t)i * ldc + j], sizeof(float)),
						 "padding written");
			}
			exact += own;
			free(a), free(b), free(c0), free(c1), free(c2), free(c3), free(c4);
		}
	}
	tt_env_restore("TK_CPU_ISA", saved);
	printf("info tk_cpu_thin: %d cases bit for bit against the fmaf model\n", exact);
}

static void test_matmul_bad_sizes(void)
{
	float a[64] = { 0 }, b[64] = { 0 }, c[64] = { 0 };
	TT_CHECK(tk_matmul(&be2, 0, 0, 2, 2, 4, 1, a, 3, b, 2, 0, c, 2) == TK_E_INVAL, "lda < k");
	TT_CHECK(tk_matmul(&be2, 1, 0, 4, 2, 2, 1, a, 3, b, 2, 0, c, 2) == TK_E_INVAL, "lda < m");
	TT_CHECK(tk_matmul(&be2, 0, 1, 2, 2, 4, 1, a, 4, b, 3, 0, c, 2) == TK_E_INVAL, "ldb < k");
	TT_CHECK(tk_matmul(&be2, 0, 0, 2, 3, 2, 1, a, 2, b, 3, 0, c, 2) == TK_E_INVAL, "ldc < n");
	TT_CHECK(tk_matmul(&be2, 0, 0, -1, 2, 2, 1, a, 2, b, 2, 0, c, 2) == TK_E_INVAL, "m < 0");
	TT_CHECK(tk_matmul(&be2, 0, 0, 0, 2, 2, 1, a, 2, b, 2, 0, c, 2) == 0, "m = 0 is no work");
}

/* ---- norms ---- */

enum { ROWS = 7, DIM = 13 };

struct norm_ctx {
	int rms, rows, dim;
	double eps;
	double *x, *w, *b, *r, *y; /* the one being varied is passed as x */
	int which;                 /* 0: x, 1: w, 2: b */
	double off;                /* RMSNorm's weight offset (Gemma: 1) */
};

static void ref_layernorm(double *y, double *mean, double *rstd, const double *x,
			  const double *w, const double *b, int rows, int dim, double eps)
{
	for (int r = 0; r < rows; r++) {
		const double *xr = x + r * dim;
		double mu = 0, var = 0;
		for (int j = 0; j < dim; j++)
			mu += xr[j];
		mu /= dim;
		for (int j = 0; j < dim; j++)
			var += (xr[j] - mu) * (xr[j] - mu);
		var /= dim;
		double rs = 1.0 / sqrt(var + eps);
		for (int j = 0; j < dim; j++)
			y[r * dim + j] = (xr[j] - mu) * rs * w[j] + (b ? b[j] : 0.0);
		if (mean)
			mean[r] = mu;
		if (rstd)
			rstd[r] = rs;
	}
}

static void ref_rmsnorm(double *y, double *rstd, const double *x, const double *w, int rows,
			int dim, double eps)
{
	for (int r = 0; r < rows; r++) {
		double ss = 0;
		for (int j = 0; j < dim; j++)
			ss += x[r * dim + j] * x[r * dim + j];
		double rs = 1.0 / sqrt(ss / dim + eps);
		for (int j = 0; j < dim; j++)
			y[r * dim + j] = w[j] * (x[r * dim + j] * rs);
		if (rstd)
			rstd[r] = rs;
	}
}

static double norm_loss(void *vctx, double *v)
{
	struct norm_ctx *c = vctx;
	const double *x = c->which == 0 ? v : c->x, *w = c->which == 1 ? v : c->w;
	const double *b = c->which == 2 ? v : c->b;
	double wo[DIM];
	for (int j = 0; j < c->dim && j < DIM; j++)
		wo[j] = w[j] + c->off;
	if (c->rms)
		ref_rmsnorm(c->y, NULL, x, wo, c->rows, c->dim, c->eps);
	else
		ref_layernorm(c->y, NULL, NULL, x, w, b, c->rows, c->dim, c->eps);
	return wsum(c->r, c->y, (size_t)c->rows * c->dim);
}

/* y of a layernorm against the double reference: 1e-6 + 1e-5 |y|, plus
 * what rounding the row's mean to a float may cost (up to 2^-24 |mean|,
 * and as much again for x - mean), scaled by rstd |w|: a row far from
 * zero (two-pass variance) loses that much however it is computed. */
static void check_norm_y(const float *y, const double *yd, const double *md, const double *rd,
			 const double *wd, const char *what)
{
	for (int r = 0; r < ROWS; r++)
		for (int j = 0; j < DIM; j++) {
			size_t i = (size_t)r * DIM + j;
			double tol = 1e-6 + 1e-5 * fabs(yd[i]) +
				     2 * 0x1p-24 * fabs(md[r]) * rd[r] * fabs(wd[j]);
			TT_CHECK(fabs(y[i] - yd[i]) <= tol, "%s[%zu]: got %.9g want %.9g (tol %.3g)",
				 what, i, (double)y[i], yd[i], tol);
		}
}

static void test_layernorm_fwd(void)
{
	float x[ROWS * DIM], w[DIM], b[DIM], y[ROWS * DIM], mean[ROWS], rstd[ROWS];
	double xd[ROWS * DIM], wd[DIM], bd[DIM], yd[ROWS * DIM], md[ROWS], rd[ROWS];
	fill(x, ROWS * DIM, 3.0);
	for (int j = 0; j < DIM; j++)
		x[2 * DIM + j] += 100.0f; /* a row far from zero: two-pass variance */
	fill(w, DIM, 1.0);
	fill(b, DIM, 1.0);
	to_double(xd, x, ROWS * DIM);
	to_double(wd, w, DIM);
	to_double(bd, b, DIM);
	ref_layernorm(yd, md, rd, xd, wd, bd, ROWS, DIM, 1e-5);
	TT_REQUIRE(tk_layernorm_fwd(&be2, y, mean, rstd, x, w, b, ROWS, DIM, 1e-5f) == 0, "rc");
	check_norm_y(y, yd, md, rd, wd, "y");
	CHECK_CLOSE(mean, md, ROWS, 1e-6, 1e-6, "mean");
	CHECK_CLOSE(rstd, rd, ROWS, 1e-6, 1e-6, "rstd");
	/* without a bias */
	ref_layernorm(yd, NULL, NULL, xd, wd, NULL, ROWS, DIM, 1e-5);
	TT_REQUIRE(tk_layernorm_fwd(&be2, y, NULL, NULL, x, w, NULL, ROWS, DIM, 1e-5f) == 0,
		   "rc");
	check_norm_y(y, yd, md, rd, wd, "y (no bias)");
}

static void norm_bwd_check(int rms, float off)
{
	float x[ROWS * DIM], w[DIM], b[DIM], y[ROWS * DIM], mean[ROWS], rstd[ROWS];
	float dy[ROWS * DIM], dx[ROWS * DIM], dw[DIM], db[DIM];
	double xd[ROWS * DIM], wd[DIM], bd[DIM], rd[ROWS * DIM], yd[ROWS * DIM];
	double gx[ROWS * DIM], gw[DIM], gb[DIM];
	fill(x, ROWS * DIM, 2.0);
	fill(w, DIM, 1.0);
	fill(b, DIM, 1.0);
	fill(dy, ROWS * DIM, 1.0);
	to_double(xd, x, ROWS * DIM);
	to_double(wd, w, DIM);
	to_double(bd, b, DIM);
	to_double(rd, dy, ROWS * DIM);
	struct norm_ctx c = { rms, ROWS, DIM, 1e-5, xd, wd, bd, rd, yd, 0, off };
	c.which = 0;
	fd_grad(norm_loss, &c, xd, ROWS * DIM, gx);
	c.which = 1;
	fd_grad(norm_loss, &c, wd, DIM, gw);
	c.which = 2;
	fd_grad(norm_loss, &c, bd, DIM, gb);
	/* dw and db accumulate: start from 0.5 and add it to the reference */
	for (int j = 0; j < DIM; j++) {
		dw[j] = db[j] = 0.5f;
		gw[j] += 0.5;
		gb[j] += 0.5;
	}
	if (rms) {
		TT_REQUIRE(tk_rmsnorm_fwd(&be2, y, rstd, x, w, off, ROWS, DIM, 1e-5f) == 0, "fwd");
		TT_REQUIRE(tk_rmsnorm_bwd(&be2, dx, dw, dy, x, w, off, rstd, ROWS, DIM) == 0,
			   "bwd");
	} else {
		TT_REQUIRE(tk_layernorm_fwd(&be2, y, mean, rstd, x, w, b, ROWS, DIM, 1e-5f) == 0,
			   "fwd");
		TT_REQUIRE(tk_layernorm_bwd(&be2, dx, dw, db, dy, x, w, mean, rstd, ROWS, DIM) ==
				   0,
			   "bwd");
		CHECK_CLOSE(db, gb, DIM, 1e-5, 1e-4, "db");
	}
	CHECK_CLOSE(dx, gx, ROWS * DIM, 1e-5, 1e-4, "dx");
	CHECK_CLOSE(dw, gw, DIM, 1e-5, 1e-4, "dw");
}

static void test_layernorm_bwd(void)
{
	norm_bwd_check(0, 0.0f);
}

static void test_rmsnorm_fwd(void)
{
	float x[ROWS * DIM], w[DIM], y[ROWS * DIM], rstd[ROWS];
	double xd[ROWS * DIM], wd[DIM], yd[ROWS * DIM], rd[ROWS];
	fill(x, ROWS * DIM, 3.0);
	fill(w, DIM, 1.0);
	to_double(xd, x, ROWS * DIM);
	to_double(wd, w, DIM);
	ref_rmsnorm(yd, rd, xd, wd, ROWS, DIM, 1e-6);
	TT_REQUIRE(tk_rmsnorm_fwd(&be2, y, rstd, x, w, 0.0f, ROWS, DIM, 1e-6f) == 0, "rc");
	CHECK_CLOSE(y, yd, ROWS * DIM, 1e-6, 1e-5, "y");
	CHECK_CLOSE(rstd, rd, ROWS, 1e-6, 1e-6, "rstd");
	/* Gemma's (1 + w): the reference with w + 1 */
	for (int j = 0; j < DIM; j++)
		wd[j] += 1.0;
	ref_rmsnorm(yd, rd, xd, wd, ROWS, DIM, 1e-6);
	TT_REQUIRE(tk_rmsnorm_fwd(&be2, y, rstd, x, w, 1.0f, ROWS, DIM, 1e-6f) == 0, "rc");
	CHECK_CLOSE(y, yd, ROWS * DIM, 1e-6, 1e-5, "y (1 + w)");
}

static void test_rmsnorm_bwd(void)
{
	norm_bwd_check(1, 0.0f);
	norm_bwd_check(1, 1.0f);
}

/* ---- activations ---- */

enum { NACT = 41 };

static double ref_gelu(double x)
{
	return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static double ref_silu(double x)
{
	return x / (1.0 + exp(-x));
}

static void act_inputs(float *x)
{
	fill(x, NACT, 6.0);
	x[0] = 0.0f;
	x[1] = -20.0f;
	x[2] = 20.0f;
	x[3] = -100.0f;
	x[4] = 1e-4f;
}

struct act_ctx {
	int swiglu;                /* 2: GeGLU */
	int n;
	double *gate, *up, *r; /* swiglu: the varied one is passed */
	int which;
};

static double act_loss(void *vctx, double *v)
{
	struct act_ctx *c = vctx;
	double s = 0.0;
	for (int i = 0; i < c->n; i++) {
		if (!c->swiglu)
			s += c->r[i] * ref_gelu(v[i]);
		else if (c->swiglu == 2 && c->which == 0)
			s += c->r[i] * ref_gelu(v[i]) * c->up[i];
		else if (c->swiglu == 2)
			s += c->r[i] * ref_gelu(c->gate[i]) * v[i];
		else if (c->which == 0)
			s += c->r[i] * ref_silu(v[i]) * c->up[i];
		else
			s += c->r[i] * ref_silu(c->gate[i]) * v[i];
	}
	return s;
}

static void test_gelu(void)
{
	float x[NACT], y[NACT], dy[NACT], dx[NACT];
	double xd[NACT], yd[NACT], rd[NACT], gd[NACT];
	act_inputs(x);
	fill(dy, NACT, 1.0);
	to_double(xd, x, NACT);
	to_double(rd, dy, NACT);
	for (int i = 0; i < NACT; i++)
		yd[i] = ref_gelu(xd[i]);
	TT_REQUIRE(tk_gelu_fwd(&be2, y, x, NACT) == 0, "fwd");
	CHECK_CLOSE(y, yd, NACT, 1e-7, 1e-6, "gelu");
	struct act_ctx c = { 0, NACT, NULL, NULL, rd, 0 };
	fd_grad(act_loss, &c, xd, NACT, gd);
	TT_REQUIRE(tk_gelu_bwd(&be2, dx, x, dy, NACT) == 0, "bwd");
	CHECK_CLOSE(dx, gd, NACT, 1e-6, 1e-4, "dgelu");
	/* in place, dx over dy */
	memcpy(dx, dy, sizeof(dx));
	TT_REQUIRE(tk_gelu_bwd(&be2, dx, x, dx, NACT) == 0, "bwd in place");
	CHECK_CLOSE(dx, gd, NACT, 1e-6, 1e-4, "dgelu in place");
}

/* SwiGLU (kind 1) or GeGLU (kind 2) against the double references and
 * central differences; the backward also in place (dgate over gate, dup
 * over up), as the model calls it. */
static void glu_check(int kind)
{
	float g[NACT], u[NACT], y[NACT], dy[NACT], dg[NACT], du[NACT];
	double gd[NACT], ud[NACT], yd[NACT], rd[NACT], dgd[NACT], dud[NACT];
	int (*fwd)(struct tk_backend *, float *, const float *, const float *, size_t) =
		kind == 1 ? tk_swiglu_fwd : tk_geglu_fwd;
	int (*bwd)(struct tk_backend *, float *, float *, const float *, const float *,
		   const float *, size_t) = kind == 1 ? tk_swiglu_bwd : tk_geglu_bwd;
	act_inputs(g);
	fill(u, NACT, 2.0);
	fill(dy, NACT, 1.0);
	to_double(gd, g, NACT);
	to_double(ud, u, NACT);
	to_double(rd, dy, NACT);
	for (int i = 0; i < NACT; i++)
		yd[i] = (kind == 1 ? ref_silu(gd[i]) : ref_gelu(gd[i])) * ud[i];
	TT_REQUIRE(fwd(&be2, y, g, u, NACT) == 0, "fwd");
	CHECK_CLOSE(y, yd, NACT, 1e-7, 1e-6, "glu");
	struct act_ctx c = { kind, NACT, gd, ud, rd, 0 };
	fd_grad(act_loss, &c, gd, NACT, dgd);
	c.which = 1;
	fd_grad(act_loss, &c, ud, NACT, dud);
	TT_REQUIRE(bwd(&be2, dg, du, g, u, dy, NACT) == 0, "bwd");
	CHECK_CLOSE(dg, dgd, NACT, 1e-6, 1e-4, "dgate");
	CHECK_CLOSE(du, dud, NACT, 1e-6, 1e-4, "dup");
	TT_REQUIRE(bwd(&be2, g, u, g, u, dy, NACT) == 0, "bwd in place");
	CHECK_CLOSE(g, dgd, NACT, 1e-6, 1e-4, "dgate in place");
	CHECK_CLOSE(u, dud, NACT, 1e-6, 1e-4, "dup in place");
}

static void test_swiglu(void)
{
	glu_check(1);
}

static void test_geglu(void)
{
	glu_check(2);
}

static void test_logit_softcap(void)
{
	float x[NACT];
	double xd[NACT];
	act_inputs(x);
	x[5] = 1e6f;
	to_double(xd, x, NACT);
	for (int i = 0; i < NACT; i++)
		xd[i] = 3.5 * tanh(xd[i] / 3.5);
	TT_REQUIRE(tk_logit_softcap(&be2, x, NACT, 3.5f) == 0, "rc");
	CHECK_CLOSE(x, xd, NACT, 1e-6, 1e-6, "softcap");
	TT_CHECK(tk_logit_softcap(&be2, x, NACT, 0.0f) == TK_E_INVAL, "cap 0 accepted");
	TT_CHECK(tk_logit_softcap(&be2, x, NACT, NAN) == TK_E_INVAL, "cap NaN accepted");
}

/* tk_expf_poly against exp in double, from -87 to 88 and the edges. */
static void test_expf_poly(void)
{
	double worst_ulp = 0.0, at = 0.0;
	for (double x = -87.0; x <= 88.0; x += 0.001373) {
		float xf = (float)x;
		double want = exp((double)xf);
		float got = tk_expf_poly(xf);
		double ulp = ldexp(1.0, ilogb(want) - 23);
		double e = fabs(got - want) / ulp;
		if (e > worst_ulp) {
			worst_ulp = e;
			at = xf;
		}
	}
	TT_CHECK(worst_ulp <= 2.0, "%.2f ulp at %.9g", worst_ulp, at);
	TT_CHECK(tk_expf_poly(0.0f) == 1.0f, "exp(0) = %.9g", tk_expf_poly(0.0f));
	TT_CHECK(tk_expf_poly(-90.0f) == 0.0f, "exp(-90) = %g", tk_expf_poly(-90.0f));
	TT_CHECK(tk_expf_poly(-INFINITY) == 0.0f, "exp(-inf)");
	TT_CHECK(isfinite(tk_expf_poly(1000.0f)), "saturates");
	TT_CHECK(isnan(tk_expf_poly(NAN)), "NaN stays NaN");
}

/* ---- bias, axpy, scale, sum of squares ---- */

static void test_bias(void)
{
	float y[ROWS * DIM], bias[DIM], db[DIM];
	double yd[ROWS * DIM], dbd[DIM];
	fill(y, ROWS * DIM, 1.0);
	fill(bias, DIM, 1.0);
	for (int r = 0; r < ROWS; r++)
		for (int j = 0; j < DIM; j++)
			yd[r * DIM + j] = (double)y[r * DIM + j] + bias[j];
	TT_REQUIRE(tk_bias_add(&be2, y, bias, ROWS, DIM) == 0, "add");
	CHECK_CLOSE(y, yd, ROWS * DIM, 0, 1e-7, "bias_add");
	for (int j = 0; j < DIM; j++) {
		db[j] = 0.25f;
		dbd[j] = 0.25;
		for (int r = 0; r < ROWS; r++)
			dbd[j] += y[r * DIM + j];
	}
	TT_REQUIRE(tk_bias_grad(&be2, db, y, ROWS, DIM) == 0, "grad");
	CHECK_CLOSE(db, dbd, DIM, 1e-6, 1e-6, "bias_grad");
	/* set: every row the bias, whatever y held (NaN) */
	for (int i = 0; i < ROWS * DIM; i++)
		y[i] = NAN;
	TT_REQUIRE(tk_bias_set(&be2, y, bias, ROWS, DIM) == 0, "set");
	for (int i = 0; i < ROWS * DIM; i++)
		TT_CHECK(!memcmp(&y[i], &bias[i % DIM], sizeof(float)), "bias_set [%d]", i);
}

static void test_axpy_scale_sumsq(void)
{
	enum { N = 1001 };
	static float x[N], y[N];
	static double yd[N];
	fill(x, N, 1.0);
	fill(y, N, 1.0);
	for (int i = 0; i < N; i++)
		yd[i] = (double)y[i] + (double)-0.3f * x[i];
	TT_REQUIRE(tk_axpy(&be2, y, -0.3f, x, N) == 0, "axpy");
	CHECK_CLOSE(y, yd, N, 1e-7, 1e-6, "axpy");
	for (int i = 0; i < N; i++)
		yd[i] = (double)y[i] * 1.5;
	TT_REQUIRE(tk_scale(&be2, y, 1.5f, N) == 0, "scale");
	CHECK_CLOSE(y, yd, N, 0, 1e-7, "scale");
	double want = 2.0, got = 2.0;
	for (int i = 0; i < N; i++)
		want += (double)x[i] * x[i];
	TT_REQUIRE(tk_sum_squares(&be2, &got, x, N) == 0, "sum_squares");
	TT_CHECK(fabs(got - want) <= 1e-12 * want, "sum_squares %.17g want %.17g", got, want);
}

/* ---- RoPE ---- */

/* As HF computes the angle: fp32 inverse frequency, fp32 product with the
 * position; the rotation itself in double. */
static void ref_rope(double *y, const double *x, const int32_t *pos, int rows, int heads, int d,
		     float theta, double scale, int inverse)
{
	int half = d / 2;
	for (int r = 0; r < rows; r++)
		for (int h = 0; h < heads; h++)
			for (int i = 0; i < half; i++) {
				float inv = 1.0f / powf(theta, (float)(2 * i) / (float)d);
				float ang = (float)pos[r] * inv;
				double c = cos((double)ang) * scale;
				double s = sin((double)ang) * scale * (inverse ? -1 : 1);
				size_t o = ((size_t)r * heads + h) * d;
				double a = x[o + i], b = x[o + i + half];
				y[o + i] = a * c - b * s;
				y[o + i + half] = b * c + a * s;
			}
}

/* The plain RoPE table tk_rope takes: 1 / theta^(2i/d). */
static const float *inv_table(int d, float theta)
{
	static float inv[64];
	for (int i = 0; i < d / 2; i++)
		inv[i] = tk_rope_inv_freq(i, d, theta);
	return inv;
}

enum { RROWS = 5, RHEADS = 3, RD = 10 };

struct rope_ctx {
	const int32_t *pos;
	double *r, *y;
	double scale;
};

static double rope_loss(void *vctx, double *x)
{
	struct rope_ctx *c = vctx;
	ref_rope(c->y, x, c->pos, RROWS, RHEADS, RD, 10000.0f, c->scale, 0);
	return wsum(c->r, c->y, RROWS * RHEADS * RD);
}

/* NEFTune's noise: within [-mag, mag), mean 0 and variance mag^2 / 3 as
 * a uniform's (n = 2^20: the sample variance is within 0.5% of it with
 * overwhelming odds, the mean within 0.005 mag), the same on 1 and 2
 * threads and for the same key, another stream for another key, and
 * added to what x held. */
static void test_add_noise(void)
{
	size_t n = 1u << 20;
	float mag = 5.0f / sqrtf(512.0f * 576.0f);
	float *a = calloc(n, sizeof(float)), *b = calloc(n, sizeof(float));
	TT_REQUIRE(a && b, "out of memory");
	TT_REQUIRE(tk_add_noise(&be1, a, n, 42, mag) == 0 && tk_add_noise(&be2, b, n, 42, mag) == 0,
		   "add_noise failed");
	TT_CHECK(!memcmp(a, b, n * sizeof(float)), "threads change the noise");
	double sum = 0, sq = 0, lo = 1, hi = -1;
	for (size_t i = 0; i < n; i++) {
		sum += a[i];
		sq += (double)a[i] * a[i];
		lo = a[i] < lo ? a[i] : lo;
		hi = a[i] > hi ? a[i] : hi;
	}
	double mean = sum / (double)n, var = sq / (double)n - mean * mean;
	double want = (double)mag * mag / 3.0;
	TT_CHECK(lo >= -mag && hi < mag && lo < -0.999 * mag && hi > 0.999 * mag,
		 "range [%g, %g] of +-%g", lo, hi, mag);
	TT_CHECK(fabs(mean) < 0.005 * mag, "mean %g of +-%g", mean, mag);
	TT_CHECK(fabs(var / want - 1) < 0.005, "variance %g, a uniform's %g", var, want);
	memset(b, 0, n * sizeof(float));
	TT_REQUIRE(tk_add_noise(&be1, b, n, 43, mag) == 0, "add_noise failed");
	size_t same = 0;
	for (size_t i = 0; i < n; i++)
		same += a[i] == b[i];
	TT_CHECK(same < n / 1000, "keys 42 and 43 agree on %zu of %zu", same, n);
	for (size_t i = 0; i < n; i++)
		b[i] = 1.0f;
	TT_REQUIRE(tk_add_noise(&be2, b, n, 42, mag) == 0, "add_noise failed");
	for (size_t i = 0; i < n; i += 4099)
		TT_CHECK(b[i] == 1.0f + a[i], "x[%zu]: %g, not 1 + %g", i, b[i], a[i]);
	free(a);
	free(b);
}

static void test_rope(void)
{
	enum { N = RROWS * RHEADS * RD };
	int32_t pos[RROWS] = { 0, 1, 7, 300, 2047 };
	float x[N], y[N], dy[N];
	double xd[N], yd[N], rd[N], gd[N];
	fill(x, N, 1.0);
	to_double(xd, x, N);
	/* scale 1 (plain RoPE) and 1.2 (YaRN's attention factor: cos and sin
	 * scaled, so the backward is scaled too) */
	for (int k = 0; k < 2; k++) {
		float scale = k ? 1.2f : 1.0f;
		ref_rope(yd, xd, pos, RROWS, RHEADS, RD, 10000.0f, scale, 0);
		memcpy(y, x, sizeof(x));
		TT_REQUIRE(tk_rope(&be2, y, pos, RROWS, RHEADS, RD, RD, inv_table(RD, 10000.0f),
				   scale, 0) == 0, "fwd");
		CHECK_CLOSE(y, yd, N, 1e-6, 1e-5, "rope");
		/* backward: the gradient of sum(R * rope(x)) is the transpose of R */
		fill(dy, N, 1.0);
		to_double(rd, dy, N);
		struct rope_ctx c = { pos, rd, yd, scale };
		fd_grad(rope_loss, &c, xd, N, gd);
		TT_REQUIRE(tk_rope(&be2, dy, pos, RROWS, RHEADS, RD, RD, inv_table(RD, 10000.0f),
				   scale, 1) == 0, "bwd");
		CHECK_CLOSE(dy, gd, N, 1e-5, 1e-4, "rope bwd");
	}
	/* Llama-3's theta and an odd number of pairs */
	ref_rope(yd, xd, pos, RROWS, 1, 6, 500000.0f, 1.0, 0);
	memcpy(y, x, sizeof(x));
	TT_REQUIRE(tk_rope(&be2, y, pos, RROWS, 1, 6, 6, inv_table(6, 500000.0f), 1.0f, 0) == 0,
		   "fwd theta");
	CHECK_CLOSE(y, yd, RROWS * 6, 1e-6, 1e-5, "rope theta 500000");
	/* partial rotary (Phi-3): the first 6 of each head of 10 rotate by the
	 * table of dimension 6, the last 4 pass through, both ways */
	for (int inverse = 0; inverse < 2; inverse++) {
		double part[2 * RROWS * 6];
		for (int h = 0; h < RHEADS; h++) {
			for (int r = 0; r < RROWS; r++)
				memcpy(part + r * 6, xd + ((size_t)r * RHEADS + h) * RD,
				       6 * sizeof(double));
			ref_rope(part + RROWS * 6, part, pos, RROWS, 1, 6, 10000.0f, 1.2, inverse);
			for (int r = 0; r < RROWS; r++) {
				size_t o = ((size_t)r * RHEADS + h) * RD;
				memcpy(yd + o, part + RROWS * 6 + r * 6, 6 * sizeof(double));
				memcpy(yd + o + 6, xd + o + 6, (RD - 6) * sizeof(double));
			}
		}
		memcpy(y, x, sizeof(x));
		TT_REQUIRE(tk_rope(&be2, y, pos, RROWS, RHEADS, RD, 6, inv_table(6, 10000.0f), 1.2f,
				   inverse) == 0, "partial");
		CHECK_CLOSE(y, yd, N, 1e-6, 1e-5, inverse ? "partial rope bwd" : "partial rope");
		for (int i = 0; i < N; i++)
			if (i % RD >= 6)
				TT_CHECK(y[i] == x[i], "partial rope changed x[%d]", i);
	}
	TT_CHECK(tk_rope(&be2, y, pos, RROWS, 1, 5, 5, inv_table(6, 1e4f), 1.0f, 0) == TK_E_INVAL,
		 "odd head_dim");
	TT_CHECK(tk_rope(&be2, y, pos, RROWS, 1, 10, 5, inv_table(6, 1e4f), 1.0f, 0) ==
		 TK_E_INVAL, "odd rotary width");
	TT_CHECK(tk_rope(&be2, y, pos, RROWS, 1, 6, 8, inv_table(8, 1e4f), 1.0f, 0) ==
		 TK_E_INVAL, "rotary width past head_dim");
	TT_CHECK(tk_rope(&be2, y, pos, RROWS, 1, 6, 6, NULL, 1.0f, 0) == TK_E_INVAL, "no table");
}

/* ---- attention ---- */

/* ao: scale, window, softcap (all 0: the defaults, passed as NULL). */
struct att_shape {
	int B, T, H, KV, D;
	struct tk_attn_opts ao;
};

/* Full causal attention with the default scale. */
#define ATT_FULL { 0.0f, 0, 0.0f, 0 }

static const struct tk_attn_opts *att_opts(const struct att_shape *s)
{
	return s->ao.scale != 0.0f || s->ao.window || s->ao.softcap != 0.0f ? &s->ao : NULL;
}

static double att_scale(struct att_shape s)
{
	return s.ao.scale > 0.0f ? s.ao.scale : 1.0 / sqrt((double)s.D);
}

/* The first key row t sees. */
static int att_first(struct att_shape s, int t)
{
	return s.ao.window > 0 && t - s.ao.window + 1 > 0 ? t - s.ao.window + 1 : 0;
}

/* The score of q.k = d as the model sees it: scaled, then capped. */
static double att_capped(struct att_shape s, double d)
{
	double x = d * att_scale(s), cap = s.ao.softcap;
	return cap > 0.0 ? cap * tanh(x / cap) : x;
}

static void ref_attention(double *out, double *lse, const double *q, const double *k,
			  const double *v, struct att_shape s)
{
	int grp = s.H / s.KV;
	double *p = malloc(sizeof(double) * s.T);
	for (int b = 0; b < s.B; b++)
		for (int h = 0; h < s.H; h++)
			for (int t = 0; t < s.T; t++) {
				const double *qr = q + (((size_t)b * s.T + t) * s.H + h) * s.D;
				double mx = -INFINITY, sum = 0;
				int j0 = att_first(s, t);
				for (int j = j0; j <= t; j++) {
					const double *kr =
						k + (((size_t)b * s.T + j) * s.KV + h / grp) * s.D;
					double d = 0;
					for (int e = 0; e < s.D; e++)
						d += qr[e] * kr[e];
					p[j] = att_capped(s, d);
					mx = p[j] > mx ? p[j] : mx;
				}
				for (int j = j0; j <= t; j++)
					sum += (p[j] = exp(p[j] - mx));
				double *o = out + (((size_t)b * s.T + t) * s.H + h) * s.D;
				for (int e = 0; e < s.D; e++) {
					double a = 0;
					for (int j = j0; j <= t; j++)
						a += p[j] *
						     v[(((size_t)b * s.T + j) * s.KV + h / grp) * s.D + e];
					o[e] = a / sum;
				}
				if (lse)
					lse[((size_t)b * s.H + h) * s.T + t] = mx + log(sum);
			}
	free(p);
}

struct att_ctx {
	struct att_shape s;
	double *q, *k, *v, *r, *out;
	int which;
};

static double att_loss(void *vctx, double *x)
{
	struct att_ctx *c = vctx;
	ref_attention(c->out, NULL, c->which == 0 ? x : c->q, c->which == 1 ? x : c->k,
		      c->which == 2 ? x : c->v, c->s);
	return wsum(c->r, c->out, (size_t)c->s.B * c->s.T * c->s.H * c->s.D);
}

static void attention_check(struct att_shape s, int bwd)
{
	size_t nq = (size_t)s.B * s.T * s.H * s.D, nk = (size_t)s.B * s.T * s.KV * s.D;
	size_t nl = (size_t)s.B * s.H * s.T;
	float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nk);
	float *v = malloc(sizeof(float) * nk), *out = malloc(sizeof(float) * nq);
	float *lse = malloc(sizeof(float) * nl), *dout = malloc(sizeof(float) * nq);
	float *dq = malloc(sizeof(float) * nq), *dk = malloc(sizeof(float) * nk);
	float *dv = malloc(sizeof(float) * nk);
	double *qd = malloc(sizeof(double) * nq), *kd = malloc(sizeof(double) * nk);
	double *vd = malloc(sizeof(double) * nk), *od = malloc(sizeof(double) * nq);
	double *ld = malloc(sizeof(double) * nl), *rd = malloc(sizeof(double) * nq);
	double *gq = malloc(sizeof(double) * nq), *gk = malloc(sizeof(double) * nk);
	double *gv = malloc(sizeof(double) * nk);
	fill(q, nq, 2.0);
	fill(k, nk, 2.0);
	fill(v, nk, 1.0);
	fill(dout, nq, 1.0);
	to_double(qd, q, nq);
	to_double(kd, k, nk);
	to_double(vd, v, nk);
	to_double(rd, dout, nq);
	ref_attention(od, ld, qd, kd, vd, s);
	int rc = tk_attention_fwd(&be2, out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.D, att_opts(&s));
	TT_CHECK(rc == 0, "fwd rc %d", rc);
	CHECK_CLOSE(out, od, nq, 1e-6, 1e-5, "out");
	CHECK_CLOSE(lse, ld, nl, 1e-6, 1e-6, "lse");
	if (bwd && !rc) {
		struct att_ctx c = { s, qd, kd, vd, rd, od, 0 };
		fd_grad(att_loss, &c, qd, nq, gq);
		c.which = 1;
		fd_grad(att_loss, &c, kd, nk, gk);
		c.which = 2;
		fd_grad(att_loss, &c, vd, nk, gv);
		rc = tk_attention_bwd(&be2, dq, dk, dv, dout, q, k, v, out, lse, s.B, s.T, s.H,
				      s.KV, s.D, att_opts(&s));
		TT_CHECK(rc == 0, "bwd rc %d", rc);
		CHECK_CLOSE(dq, gq, nq, 1e-5, 1e-4, "dq");
		CHECK_CLOSE(dk, gk, nk, 1e-5, 1e-4, "dk");
		CHECK_CLOSE(dv, gv, nk, 1e-5, 1e-4, "dv");
	}
	free(q), free(k), free(v), free(out), free(lse), free(dout), free(dq), free(dk);
	free(dv), free(qd), free(kd), free(vd), free(od), free(ld), free(rd), free(gq);
	free(gk), free(gv);
}

static void test_attention_gqa(void)
{
	attention_check((struct att_shape){ 2, 5, 3, 1, 4, ATT_FULL }, 1);
	attention_check((struct att_shape){ 1, 37, 4, 2, 6, ATT_FULL }, 1);
}

static void test_attention_mha(void)
{
	attention_check((struct att_shape){ 2, 5, 3, 3, 4, ATT_FULL }, 1);
	attention_check((struct att_shape){ 1, 37, 2, 2, 6, ATT_FULL }, 1);
}

/* Sliding windows of 1 (each row sees itself only), 3, and longer than
 * the block (the same as none), at odd sizes: forward against the
 * reference, backward against finite differences. */
static void test_attention_window(void)
{
	attention_check((struct att_shape){ 2, 5, 3, 1, 4, { 0.0f, 1, 0.0f, 0 } }, 1);
	attention_check((struct att_shape){ 1, 37, 4, 2, 6, { 0.0f, 3, 0.0f, 0 } }, 1);
	attention_check((struct att_shape){ 1, 37, 2, 2, 6, { 0.0f, 50, 0.0f, 0 } }, 1);
	/* windows across the 16-row blocks and 32-key tiles, forward only */
	attention_check((struct att_shape){ 2, 100, 3, 1, 8, { 0.0f, 17, 0.0f, 0 } }, 0);
	attention_check((struct att_shape){ 1, 129, 2, 2, 40, { 0.0f, 33, 0.0f, 0 } }, 0);
}

/* Gemma-2's scale and soft-capping, with and without a window; a cap of
 * 0.8 bends every score (|q.k| scale reaches 3). */
static void test_attention_softcap(void)
{
	attention_check((struct att_shape){ 2, 5, 3, 1, 4, { 0.7f, 0, 0.8f, 0 } }, 1);
	attention_check((struct att_shape){ 1, 37, 4, 2, 6, { 0.3f, 5, 2.0f, 0 } }, 1);
	attention_check((struct att_shape){ 1, 70, 2, 1, 16, { 0.25f, 0, 50.0f, 0 } }, 0);
}

/* head_dim 128 over several row blocks, forward only (the reference is slow) */
static void test_attention_long(void)
{
	attention_check((struct att_shape){ 1, 129, 2, 1, 128, ATT_FULL }, 0);
}

/* The backward pass in double from the formulas: p = softmax row of the
 * capped scores c, dp[j] = dout . v_j, ds = p (dp - sum_j p dp) (1 - (c /
 * cap)^2 when capped), dq = scale ds K, dk = scale ds^T Q, dv = p^T dout;
 * checked against finite differences below, then used where finite
 * differences would be too slow. */
static void ref_attention_bwd(double *dq, double *dk, double *dv, const double *dout,
			      const double *q, const double *k, const double *v, struct att_shape s)
{
	int grp = s.H / s.KV;
	size_t nq = (size_t)s.B * s.T * s.H * s.D, nk = (size_t)s.B * s.T * s.KV * s.D;
	double scale = att_scale(s), cap = s.ao.softcap;
	double *p = malloc(sizeof(double) * s.T), *dp = malloc(sizeof(double) * s.T);
	double *c = malloc(sizeof(double) * s.T);
	memset(dq, 0, sizeof(double) * nq);
	memset(dk, 0, sizeof(double) * nk);
	memset(dv, 0, sizeof(double) * nk);
	for (int b = 0; b < s.B; b++)
		for (int h = 0; h < s.H; h++)
			for (int t = 0; t < s.T; t++) {
				size_t qo = (((size_t)b * s.T + t) * s.H + h) * s.D;
				double mx = -INFINITY, sum = 0, pdp = 0;
				int j0 = att_first(s, t);
				for (int j = j0; j <= t; j++) {
					const double *kr =
						k + (((size_t)b * s.T + j) * s.KV + h / grp) * s.D;
					double d = 0;
					for (int e = 0; e < s.D; e++)
						d += q[qo + e] * kr[e];
					p[j] = c[j] = att_capped(s, d);
					mx = p[j] > mx ? p[j] : mx;
				}
				for (int j = j0; j <= t; j++)
					sum += (p[j] = exp(p[j] - mx));
				for (int j = j0; j <= t; j++) {
					const double *vr =
						v + (((size_t)b * s.T + j) * s.KV + h / grp) * s.D;
					p[j] /= sum;
					dp[j] = 0;
					for (int e = 0; e < s.D; e++)
						dp[j] += dout[qo + e] * vr[e];
					pdp += p[j] * dp[j];
				}
				for (int j = j0; j <= t; j++) {
					size_t ko = (((size_t)b * s.T + j) * s.KV + h / grp) * s.D;
					double u = cap > 0.0 ? c[j] / cap : 0.0;
					double ds = p[j] * (dp[j] - pdp) * (1.0 - u * u) * scale;
					for (int e = 0; e < s.D; e++) {
						dq[qo + e] += ds * k[ko + e];
						dk[ko + e] += ds * q[qo + e];
						dv[ko + e] += p[j] * dout[qo + e];
					}
				}
			}
	free(p), free(dp), free(c);
}

/* The analytic reference (ref_attention_bwd) against finite differences
 * (small), then the backend against it at shapes with whole register tiles
 * (head_dim 64, rows past 32), a partial tile of columns (head_dim 80) and
 * grouped queries. */
static void test_attention_bwd_tiles(void)
{
	static const struct att_shape shapes[] = {
		{ 1, 7, 2, 1, 5, ATT_FULL },	  { 2, 70, 4, 2, 64, ATT_FULL },
		{ 1, 45, 2, 2, 80, ATT_FULL }, { 1, 33, 3, 1, 32, ATT_FULL },
		/* windows and capping: the first against finite differences too,
		 * the others skipping key tiles (windows 5 and 33 over 100 rows) */
		{ 1, 9, 2, 1, 5, { 0.6f, 3, 1.0f, 0 } },
		{ 2, 70, 4, 2, 64, { 0.0f, 5, 0.0f, 0 } },
		{ 1, 100, 2, 1, 32, { 0.0f, 33, 0.0f, 0 } },
		{ 1, 100, 3, 3, 80, { 0.125f, 17, 3.0f, 0 } },
	};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		struct att_shape s = shapes[i];
		size_t nq = (size_t)s.B * s.T * s.H * s.D, nk = (size_t)s.B * s.T * s.KV * s.D;
		size_t nl = (size_t)s.B * s.H * s.T;
		float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nk);
		float *v = malloc(sizeof(float) * nk), *out = malloc(sizeof(float) * nq);
		float *lse = malloc(sizeof(float) * nl), *dout = malloc(sizeof(float) * nq);
		float *dq = malloc(sizeof(float) * nq), *dk = malloc(sizeof(float) * nk);
		float *dv = malloc(sizeof(float) * nk);
		double *qd = malloc(sizeof(double) * nq), *kd = malloc(sizeof(double) * nk);
		double *vd = malloc(sizeof(double) * nk), *rd = malloc(sizeof(double) * nq);
		double *gq = malloc(sizeof(double) * nq), *gk = malloc(sizeof(double) * nk);
		double *gv = malloc(sizeof(double) * nk);
		fill(q, nq, 2.0);
		fill(k, nk, 2.0);
		fill(v, nk, 1.0);
		fill(dout, nq, 1.0);
		to_double(qd, q, nq);
		to_double(kd, k, nk);
		to_double(vd, v, nk);
		to_double(rd, dout, nq);
		ref_attention_bwd(gq, gk, gv, rd, qd, kd, vd, s);
		if (i == 0 || i == 4) {
			double *od = malloc(sizeof(double) * nq), *fq = malloc(sizeof(double) * nq);
			double *fk = malloc(sizeof(double) * nk), *fv = malloc(sizeof(double) * nk);
			struct att_ctx c = { s, qd, kd, vd, rd, od, 0 };
			fd_grad(att_loss, &c, qd, nq, fq);
			c.which = 1;
			fd_grad(att_loss, &c, kd, nk, fk);
			c.which = 2;
			fd_grad(att_loss, &c, vd, nk, fv);
			double w = 0;
			for (size_t j = 0; j < nq; j++)
				w = fmax(w, fabs(fq[j] - gq[j]));
			for (size_t j = 0; j < nk; j++)
				w = fmax(w, fmax(fabs(fk[j] - gk[j]), fabs(fv[j] - gv[j])));
			TT_CHECK(w < 1e-6, "reference backward off finite differences by %g", w);
			free(od), free(fq), free(fk), free(fv);
		}
		TT_REQUIRE(tk_attention_fwd(&be2, out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.D,
					    att_opts(&s)) == 0,
			   "fwd");
		TT_REQUIRE(tk_attention_bwd(&be2, dq, dk, dv, dout, q, k, v, out, lse, s.B, s.T, s.H,
					    s.KV, s.D, att_opts(&s)) == 0,
			   "bwd");
		CHECK_CLOSE(dq, gq, nq, 1e-5, 1e-4, "dq");
		CHECK_CLOSE(dk, gk, nk, 1e-5, 1e-4, "dk");
		CHECK_CLOSE(dv, gv, nk, 1e-5, 1e-4, "dv");
		free(q), free(k), free(v), free(out), free(lse), free(dout), free(dq), free(dk);
		free(dv), free(qd), free(kd), free(vd), free(rd), free(gq), free(gk), free(gv);
	}
}

static void test_attention_bad_heads(void)
{
	float x[8] = { 0 };
	TT_CHECK(tk_attention_fwd(&be2, x, x, x, x, x, 1, 1, 3, 2, 1, NULL) == TK_E_INVAL, "3 over 2");
	TT_CHECK(tk_attention_bwd(&be2, x, x, x, x, x, x, x, x, x, 1, 1, 2, 0, 1, NULL) == TK_E_INVAL,
		 "0 kv heads");
	/* the last two: a bf16 cache is decode's alone; 2 is no flag */
	const struct tk_attn_opts bad[6] = { { -0.5f, 0, 0.0f, 0 }, { INFINITY, 0, 0.0f, 0 },
					     { 0.0f, -2, 0.0f, 0 }, { 0.0f, 0, -1.0f, 0 },
					     { 0.0f, 0, 0.0f, 1 }, { 0.0f, 0, 0.0f, 2 } };
	for (int i = 0; i < 6; i++) {
		TT_CHECK(tk_attention_fwd(&be2, x, x, x, x, x, 1, 1, 1, 1, 1, &bad[i]) == TK_E_INVAL,
			 "fwd options %d", i);
		TT_CHECK(tk_attention_bwd(&be2, x, x, x, x, x, x, x, x, x, 1, 1, 1, 1, 1, &bad[i]) ==
				 TK_E_INVAL,
			 "bwd options %d", i);
	}
}

/* ---- embedding ---- */

static void test_embedding(void)
{
	enum { V = 7, N = 11, E = 70 }; /* E over one column block */
	static float table[V * E], y[N * E], dy[N * E], dt[V * E];
	static double yd[N * E], dtd[V * E];
	uint32_t ids[N] = { 3, 0, 6, 3, 3, 1, 0, 5, 6, 2, 3 };
	fill(table, V * E, 1.0);
	fill(dy, N * E, 1.0);
	for (int i = 0; i < N; i++)
		to_double(yd + i * E, table + ids[i] * E, E);
	TT_REQUIRE(tk_embedding_fwd(&be2, y, table, ids, N, E) == 0, "fwd");
	CHECK_CLOSE(y, yd, N * E, 0, 0.5e-9, "embedding");
	for (int i = 0; i < V * E; i++)
		dtd[i] = dt[i] = 0.125f;
	for (int i = 0; i < N; i++)
		for (int j = 0; j < E; j++)
			dtd[ids[i] * E + j] += dy[i * E + j];
	TT_REQUIRE(tk_embedding_bwd(&be2, dt, dy, ids, N, E) == 0, "bwd");
	CHECK_CLOSE(dt, dtd, V * E, 1e-6, 1e-6, "dtable");
}

/* ---- cross-entropy ---- */

enum { CROWS = 7, CV = 37 };

struct ce_ctx {
	const int32_t *tg;
	double scale;
	double cap;                /* final_logit_softcapping, 0: none */
};

static double ref_ce_cap(const double *x0, const int32_t *tg, int rows, int vocab, double cap)
{
	double s = 0.0, *x = malloc((size_t)rows * vocab * sizeof(double));
	if (!x)
		abort();
	for (size_t i = 0; i < (size_t)rows * vocab; i++)
		x[i] = cap > 0 ? cap * tanh(x0[i] / cap) : x0[i];
	for (int r = 0; r < rows; r++) {
		if (tg[r] < 0)
			continue;
		const double *xr = x + (size_t)r * vocab;
		double mx = -INFINITY, sum = 0.0;
		for (int j = 0; j < vocab; j++)
			mx = xr[j] > mx ? xr[j] : mx;
		for (int j = 0; j < vocab; j++)
			sum += exp(xr[j] - mx);
		s += log(sum) + mx - xr[tg[r]];
	}
	free(x);
	return s;
}

static double ce_loss(void *vctx, double *x)
{
	struct ce_ctx *c = vctx;
	return c->scale * ref_ce_cap(x, c->tg, CROWS, CV, c->cap);
}

static double ref_ce(const double *x, const int32_t *tg, int rows, int vocab)
{
	return ref_ce_cap(x, tg, rows, vocab, 0.0);
}

/* Gemma-2's final_logit_softcapping through the loss and its gradient. */
static void test_cross_entropy_softcap(void)
{
	int32_t tg[CROWS] = { 3, -100, 36, 0, -1, 17, 17 };
	float x[CROWS * CV], x2[CROWS * CV];
	double xd[CROWS * CV], gd[CROWS * CV];
	fill(x, CROWS * CV, 20.0);
	x[6 * CV + 17] = 300.0f; /* far past the cap: tanh saturates */
	to_double(xd, x, CROWS * CV);
	memcpy(x2, x, sizeof(x));
	double want = ref_ce_cap(xd, tg, CROWS, CV, 7.5), got = 0.0;
	TT_REQUIRE(tk_cross_entropy(&be2, x, tg, CROWS, CV, 0.3f, 0, &got, 7.5f) == 0, "loss");
	TT_CHECK(fabs(got - want) <= 1e-5 * want, "loss %.9g want %.9g", got, want);
	struct ce_ctx c = { tg, 0.3, 7.5 };
	fd_grad(ce_loss, &c, xd, CROWS * CV, gd);
	got = 0.0;
	TT_REQUIRE(tk_cross_entropy(&be2, x2, tg, CROWS, CV, 0.3f, 1, &got, 7.5f) == 0, "grad");
	TT_CHECK(fabs(got - want) <= 1e-5 * want, "loss %.9g want %.9g", got, want);
	CHECK_CLOSE(x2, gd, CROWS * CV, 1e-6, 1e-4, "dlogits");
	TT_CHECK(tk_cross_entropy(&be2, x2, tg, CROWS, CV, 0.3f, 1, &got, -1.0f) == TK_E_INVAL,
		 "negative cap accepted");
}

static void test_cross_entropy(void)
{
	int32_t tg[CROWS] = { 3, -100, 36, 0, -1, 17, 17 };
	float x[CROWS * CV], keep[CROWS * CV];
	double xd[CROWS * CV], gd[CROWS * CV];
	fill(x, CROWS * CV, 4.0);
	for (int j = 0; j < CV; j++)
		x[3 * CV + j] += 1000.0f; /* large logits: max-subtracted */
	x[6 * CV + 17] = 30.0f;           /* a confident, right row */
	to_double(xd, x, CROWS * CV);
	memcpy(keep, x, sizeof(x));
	double want = ref_ce(xd, tg, CROWS, CV), got = 1.0;
	TT_REQUIRE(tk_cross_entropy(&be2, x, tg, CROWS, CV, 0.2f, 0, &got, 0.0f) == 0, "loss only");
	TT_CHECK(fabs(got - 1.0 - want) <= 1e-5 * want, "loss %.9g want %.9g", got - 1.0, want);
	TT_CHECK(!memcmp(x, keep, sizeof(x)), "logits changed without grad");
	struct ce_ctx c = { tg, 0.2, 0.0 };
	fd_grad(ce_loss, &c, xd, CROWS * CV, gd);
	got = 0.0;
	TT_REQUIRE(tk_cross_entropy(&be2, x, tg, CROWS, CV, 0.2f, 1, &got, 0.0f) == 0, "grad");
	TT_CHECK(fabs(got - want) <= 1e-5 * want, "loss %.9g want %.9g", got, want);
	CHECK_CLOSE(x, gd, CROWS * CV, 1e-6, 1e-4, "dlogits");
	for (int j = 0; j < CV; j++)
		TT_CHECK(x[CV + j] == 0.0f && x[4 * CV + j] == 0.0f, "ignored row grad not 0");
}

static void test_cross_entropy_bad_target(void)
{
	int32_t tg[CROWS] = { 3, -100, 36, 0, 37, 17, 17 };
	float x[CROWS * CV], keep[CROWS * CV];
	fill(x, CROWS * CV, 1.0);
	memcpy(keep, x, sizeof(x));
	double loss = 0.0;
	TT_CHECK(tk_cross_entropy(&be2, x, tg, CROWS, CV, 1.0f, 1, &loss, 0.0f) == TK_E_INVAL,
		 "target = vocab accepted");
	TT_CHECK(!memcmp(x, keep, sizeof(x)) && loss == 0.0, "written before the error");
}

static void test_cross_entropy_nan(void)
{
	int32_t tg[2] = { 1, 2 };
	float x[2 * CV];
	fill(x, 2 * CV, 1.0);
	x[CV + 5] = NAN;
	double loss = 0.0;
	TT_REQUIRE(tk_cross_entropy(&be2, x, tg, 2, CV, 1.0f, 1, &loss, 0.0f) == 0, "rc");
	TT_CHECK(isnan(loss), "a NaN logit gave loss %g", loss);
}

/* ---- AdamW against torch ---- */

static int read_floats(FILE *f, const char *tag, float *x, int n)
{
	char t[16];
	if (fscanf(f, "%15s", t) != 1 || strcmp(t, tag))
		return -1;
	for (int i = 0; i < n; i++)
		if (fscanf(f, "%f", &x[i]) != 1)
			return -1;
	return 0;
}

static void test_adamw_torch(void)
{
	/* make parity points TK_ADAMW_FIXTURE at a freshly generated one */
	const char *path = getenv("TK_ADAMW_FIXTURE");
	if (!path)
		path = tt_fixture("adamw/adamw.txt");
	FILE *f = fopen(path, "r");
	TT_REQUIRE(f, "%s: cannot open", path);
	char line[256];
	TT_REQUIRE(fgets(line, sizeof(line), f) && line[0] == '#', "no header line");
	int cases = 0;
	char name[64];
	int n, steps;
	double lr, b1, b2, eps, wd;
	while (fscanf(f, " case %63s %d %d %lf %lf %lf %lf %lf", name, &n, &steps, &lr, &b1, &b2,
		      &eps, &wd) == 8) {
		TT_REQUIRE(n > 0 && n <= 4096 && steps > 0, "%s: bad sizes", name);
		float *p = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n);
		float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
		float *tp = malloc(sizeof(float) * n), *tm = malloc(sizeof(float) * n);
		float *tv = malloc(sizeof(float) * n);
		double *ref = malloc(sizeof(double) * n);
		int ok = read_floats(f, "p0", p, n) == 0;
		double wp = 0, wm = 0, wv = 0;
		for (int k = 1; ok && k <= steps; k++) {
			int kk;
			double lrk;
			ok = fscanf(f, " step %d %lf", &kk, &lrk) == 2 && kk == k &&
			     !read_floats(f, "g", g, n) && !read_floats(f, "p", tp, n) &&
			     !read_floats(f, "m", tm, n) && !read_floats(f, "v", tv, n);
			if (!ok)
				break;
			TT_CHECK(tk_adamw(&be2, p, g, m, v, n, lrk, b1, b2, eps, wd, k) == 0,
				 "rc");
			size_t at;
			to_double(ref, tp, n);
			/* 1e-6 relative, and 1e-8 absolute (2e-7 of the parameters'
			 * scale) where an update cancels p almost to 0: torch's
			 * vectorized sqrtf is off by an ulp for some inputs, so its
			 * updates differ in their last bit */
			double w = worst(p, ref, n, 1e-8, 1e-6, &at);
			wp = w > wp ? w : wp;
			TT_CHECK(w <= 1.0, "%s step %d: p[%zu] %.9g torch %.9g", name, k, at,
				 p[at], tp[at]);
			to_double(ref, tm, n);
			/* m and v: the same roundings as torch, so tight */
			w = worst(m, ref, n, 1e-30, 1e-6, &at);
			wm = w > wm ? w : wm;
			TT_CHECK(w <= 1.0, "%s step %d: m[%zu] %.9g torch %.9g", name, k, at,
				 m[at], tm[at]);
			to_double(ref, tv, n);
			w = worst(v, ref, n, 1e-30, 1e-6, &at);
			wv = w > wv ? w : wv;
			TT_CHECK(w <= 1.0, "%s step %d: v[%zu] %.9g torch %.9g", name, k, at,
				 v[at], tv[at]);
		}
		TT_CHECK(ok, "%s: %s: malformed fixture", path, name);
		if (getenv("TT_VERBOSE"))
			printf("# adamw %s: worst/tolerance p %.3g m %.3g v %.3g\n", name, wp, wm,
			       wv);
		free(p), free(g), free(m), free(v), free(tp), free(tm), free(tv), free(ref);
		cases++;
	}
	fclose(f);
	TT_CHECK(cases == 2, "%d cases in %s", cases, path);
}

/* The vector loops of AdamW (16 at a time with AVX-512, 8 with AVX2) and
 * the scalar loop (tails, and calls of fewer than 8) give the same bits:
 * one call over n elements against n calls of one element, with and
 * without weight decay, and with beta1 > 0.5 and < 0.5 (the two forms of
 * torch's lerp), at every instruction-set level this CPU runs. */
static void test_adamw_vector_scalar(void)
{
	enum { N = 1000 };
	static const double b1s[2] = { 0.9, 0.3 }, wds[2] = { 0.01, 0.0 };
	char *saved = tt_env_save("TK_CPU_ISA");
	float *p = malloc(sizeof(float) * N * 2), *m = calloc(N * 2, sizeof(float));
	float *v = calloc(N * 2, sizeof(float)), *g = malloc(sizeof(float) * N);
	fill(p, N, 1.0);
	memcpy(p + N, p, sizeof(float) * N);
	for (int k = 1; k <= 4 * ((int)tk_cpu_isa_best() + 1); k++) {
		int kk = (k - 1) % 4 + 1; /* the same four cases at each level */
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)((k - 1) / 4)), 1);
		fill(g, N, kk % 2 ? 1e-3 : 10.0);
		g[7] = 0.0f;
		double b1 = b1s[kk % 2], wd = wds[kk / 3];
		TT_CHECK(tk_adamw(&be2, p, g, m, v, N, 1e-3, b1, 0.999, 1e-8, wd, k) == 0, "rc");
		for (int i = 0; i < N; i++)
			tk_adamw(&be1, p + N + i, g + i, m + N + i, v + N + i, 1, 1e-3, b1, 0.999,
				 1e-8, wd, k);
		TT_CHECK(!memcmp(p, p + N, sizeof(float) * N), "step %d (%s): p differs", k,
			 getenv("TK_CPU_ISA"));
		TT_CHECK(!memcmp(m, m + N, sizeof(float) * N), "step %d (%s): m differs", k,
			 getenv("TK_CPU_ISA"));
		TT_CHECK(!memcmp(v, v + N, sizeof(float) * N), "step %d (%s): v differs", k,
			 getenv("TK_CPU_ISA"));
	}
	tt_env_restore("TK_CPU_ISA", saved);
	free(p), free(m), free(v), free(g);
}

static void test_adamw_bad_args(void)
{
	float p[1] = { 1 }, g[1] = { 1 }, m[1] = { 0 }, v[1] = { 0 };
	TT_CHECK(tk_adamw(&be2, p, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0, 0) == TK_E_INVAL,
		 "step 0");
	TT_CHECK(tk_adamw(&be2, p, g, m, v, 1, 1e-3, 1.0, 0.999, 1e-8, 0, 1) == TK_E_INVAL,
		 "beta1 1");
	TT_CHECK(tk_adamw(&be2, p, g, m, v, 1, -1e-3, 0.9, 0.999, 1e-8, 0, 1) == TK_E_INVAL,
		 "lr < 0");
	TT_CHECK(p[0] == 1.0f && m[0] == 0.0f && v[0] == 0.0f, "state changed");
}

/* ---- determinism ---- */

enum { DR = 523, DC = 197, DVOC = 50, DB = 2, DT = 67, DH = 6, DKV = 2, DD = 16 };
#define DET_NO ((size_t)DC * 4 + (size_t)DVOC * DC + 4)
#define DET_NQ ((size_t)DB * DT * DH * DD)
#define DET_NK ((size_t)DB * DT * DKV * DD)
#define DET_NA1 (DET_NQ * 4 + DET_NK * 4 + (size_t)DB * DH * DT)
#define DET_NA (2 * DET_NA1) /* full causal, then windowed and capped */

/* The ordered reductions and attention on fixed inputs, sizes large enough
 * to run in parallel; the results are concatenated into o and att. */
static void det_run(struct tk_backend *be, float *o, float *att)
{
	float *x = malloc(sizeof(float) * DR * DC), *dy = malloc(sizeof(float) * DR * DC);
	float *dx = malloc(sizeof(float) * DR * DC), *w = malloc(sizeof(float) * DC);
	float *bb = malloc(sizeof(float) * DC), mean[DR], rstd[DR];
	uint32_t ids[DR];
	int32_t tg[DR];
	uint64_t keep = rng_state;
	rng_state = 12345;
	for (int i = 0; i < DR; i++) {
		ids[i] = (uint32_t)((i * 7919) % DVOC);
		tg[i] = i % 5 == 0 ? -100 : (int32_t)(i % DC);
	}
	fill(x, (size_t)DR * DC, 3.0);
	fill(dy, (size_t)DR * DC, 1.0);
	fill(w, DC, 1.0);
	fill(bb, DC, 1.0);
	memset(o, 0, DET_NO * sizeof(float));
	tk_layernorm_fwd(be, dx, mean, rstd, x, w, bb, DR, DC, 1e-5f);
	tk_layernorm_bwd(be, dx, o, o + DC, dy, x, w, mean, rstd, DR, DC);
	tk_rmsnorm_fwd(be, dx, rstd, x, w, 0.0f, DR, DC, 1e-6f);
	tk_rmsnorm_bwd(be, dx, o + 2 * DC, dy, x, w, 0.0f, rstd, DR, DC);
	tk_bias_grad(be, o + 3 * DC, dy, DR, DC);
	tk_embedding_bwd(be, o + 4 * DC, dy, ids, DR, DC);
	double ss = 0.0, loss = 0.0;
	tk_sum_squares(be, &ss, x, (size_t)DR * DC);
	tk_cross_entropy(be, x, tg, DR, DC, 1.0f, 1, &loss, 0.0f);
	/* the two doubles, two floats' room each, at the end */
	memcpy(o + DET_NO - 4, &ss, sizeof(ss));
	memcpy(o + DET_NO - 2, &loss, sizeof(loss));
	/* a window of 20 skips key tiles of the later row blocks */
	const struct tk_attn_opts win = { 0.0f, 20, 2.0f, 0 };
	for (int r = 0; r < 2; r++) {
		float *q = att + r * DET_NA1, *k = q + DET_NQ, *v = k + DET_NK, *ao = v + DET_NK;
		float *dq = ao + DET_NQ, *dk = dq + DET_NQ, *dv = dk + DET_NK, *dout = dv + DET_NK;
		float *lse = dout + DET_NQ;
		fill(q, DET_NQ, 2.0), fill(k, DET_NK, 2.0), fill(v, DET_NK, 1.0);
		fill(dout, DET_NQ, 1.0);
		tk_attention_fwd(be, ao, lse, q, k, v, DB, DT, DH, DKV, DD, r ? &win : NULL);
		tk_attention_bwd(be, dq, dk, dv, dout, q, k, v, ao, lse, DB, DT, DH, DKV, DD,
				 r ? &win : NULL);
	}
	rng_state = keep;
	free(x), free(dy), free(dx), free(w), free(bb);
}

/* The same call twice gives the same bits, and so do 1 and 2 threads. */
static void test_deterministic(void)
{
	float *o[3], *a[3];
	struct tk_backend *bes[3] = { &be1, &be2, &be2 };
	for (int i = 0; i < 3; i++) {
		o[i] = malloc(sizeof(float) * DET_NO);
		a[i] = malloc(sizeof(float) * DET_NA);
		det_run(bes[i], o[i], a[i]);
	}
	TT_CHECK(!memcmp(o[1], o[2], DET_NO * sizeof(float)), "reductions differ between calls");
	TT_CHECK(!memcmp(a[1], a[2], DET_NA * sizeof(float)), "attention differs between calls");
	TT_CHECK(!memcmp(o[0], o[1], DET_NO * sizeof(float)),
		 "reductions differ with 1 and 2 threads");
	TT_CHECK(!memcmp(a[0], a[1], DET_NA * sizeof(float)),
		 "attention differs with 1 and 2 threads");
	for (int i = 0; i < 3; i++)
		free(o[i]), free(a[i]);
}

/* ---- the table and the wrappers ---- */

static void test_unsupported_and_init(void)
{
	static const struct tk_backend_i none = { .name = "none" };
	struct tk_backend be = { .i = &none, .threads = 1 };
	float x[4] = { 0 };
	TT_CHECK(tk_gelu_fwd(&be, x, x, 4) == TK_E_UNSUPPORTED, "gelu on an empty table");
	TT_CHECK(tk_matmul(&be, 0, 0, 1, 1, 1, 1, x, 1, x, 1, 0, x, 1) == TK_E_UNSUPPORTED,
		 "matmul on an empty table");
	TT_CHECK(tk_backend_sync(&be) == 0, "sync without a slot");
	void *p = tk_backend_alloc(&be, 16);
	TT_CHECK(p != NULL, "alloc fallback");
	tk_backend_free_mem(&be, p);
	tk_backend_free(&be);

	struct tk_diag d;
	struct tk_backend bad;
	TT_CHECK(tk_backend_cpu_init(&bad, -1, &d) == TK_E_INVAL, "threads -1");
	TT_CHECK(strstr(d.msg, "negative"), "message: %s", d.msg);
	TT_REQUIRE(tk_backend_cpu_init(&bad, 0, &d) == 0, "%s", d.msg);
	TT_CHECK(bad.threads >= 1 && !strcmp(bad.i->name, "cpu"), "threads %d", bad.threads);
	p = tk_backend_alloc(&bad, 100);
	TT_CHECK(p && ((uintptr_t)p & 63) == 0, "alloc not 64-byte aligned");
	tk_backend_free_mem(&bad, p);
	tk_backend_free(&bad);
	TT_CHECK(bad.i == NULL && bad.ctx == NULL, "free left the table");
}

int main(void)
{
	struct tk_diag d;
	if (tk_backend_cpu_init(&be1, 1, &d) || tk_backend_cpu_init(&be2, 2, &d)) {
		printf("FAIL init: %s\n", d.msg);
		return 1;
	}
	TT_RUN(test_matmul);
	TT_RUN(test_matvec);
	TT_RUN(test_gemv_isas);
	TT_RUN(test_thin_isas);
	TT_RUN(test_matmul_bad_sizes);
	TT_RUN(test_layernorm_fwd);
	TT_RUN(test_layernorm_bwd);
	TT_RUN(test_rmsnorm_fwd);
	TT_RUN(test_rmsnorm_bwd);
	TT_RUN(test_gelu);
	TT_RUN(test_swiglu);
	TT_RUN(test_geglu);
	TT_RUN(test_logit_softcap);
	TT_RUN(test_expf_poly);
	TT_RUN(test_bias);
	TT_RUN(test_axpy_scale_sumsq);
	TT_RUN(test_add_noise);
	TT_RUN(test_rope);
	TT_RUN(test_attention_gqa);
	TT_RUN(test_attention_mha);
	TT_RUN(test_attention_window);
	TT_RUN(test_attention_softcap);
	TT_RUN(test_attention_long);
	TT_RUN(test_attention_bwd_tiles);
	TT_RUN(test_attention_bad_heads);
	TT_RUN(test_embedding);
	TT_RUN(test_cross_entropy);
	TT_RUN(test_cross_entropy_softcap);
	TT_RUN(test_cross_entropy_bad_target);
	TT_RUN(test_cross_entropy_nan);
	TT_RUN(test_adamw_torch);
	TT_RUN(test_adamw_vector_scalar);
	TT_RUN(test_adamw_bad_args);
	TT_RUN(test_deterministic);
	TT_RUN(test_unsupported_and_init);
	tk_backend_free(&be1);
	tk_backend_free(&be2);
	return tt_done();
}

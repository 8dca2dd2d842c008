/* test-prec.c - the CPU backend's matmul in bf16, fp16 and tf32 (rounded
 * operands, fp32 accumulation): against a double-precision product of the
 * rounded operands, and different from the fp32 product. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compute/backend.h"
#include "base/math-common.h"
#include "train/train.h"
#include "tt.h"

static uint64_t rng = 0x853c49e6748fea9bull;

static float frand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float round_to(float x, int prec)
{
	return prec == TK_PREC_BF16 ? tk_round_bf16(x) :
	       prec == TK_PREC_FP16 ? tk_round_f16(x) :
	       prec == TK_PREC_TF32 ? tk_round_tf32(x) : x;
}

/* One case: C = 0.5 op(A) op(B) + 0.25 C0 in prec, with padded leading
 * dimensions, against ref = the same in double of the rounded operands:
 * the products are exact in fp32 (at most 11-bit significands), so only
 * the fp32 sums err, by at most (k + 2) 2^-24 (sum |terms|).  The fp32
 * GEMM must be further than that from ref somewhere (the rounding did
 * happen).  threads: the backend's. */
static void one(int prec, int ta, int tb, int m, int n, int k, int threads)
{
	struct tk_backend be;
	struct tk_diag d = {0};
	TT_REQUIRE(tk_backend_cpu_init(&be, threads, &d) == 0, "%s", d.msg);
	int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
	int lda = ac + 3, ldb = bc + 5, ldc = n + 2;
	size_t sa = (size_t)ar * lda, sb = (size_t)br * ldb, sc = (size_t)m * ldc;
	float *a = malloc(sizeof(float) * sa), *a0 = malloc(sizeof(float) * sa);
	float *b = malloc(sizeof(float) * sb), *c0 = malloc(sizeof(float) * sc);
	float *c = malloc(sizeof(float) * sc), *c32 = malloc(sizeof(float) * sc);
	for (size_t i = 0; i < sa; i++)
		a[i] = a0[i] = frand();
	for (size_t i = 0; i < sb; i++)
		b[i] = frand();
	for (size_t i = 0; i < sc; i++)
		c[i] = c32[i] = c0[i] = frand();
	TT_REQUIRE(tk_backend_set_prec(&be, prec, &d) == 0, "%s", d.msg);
	TT_REQUIRE(be.prec == prec, "prec not set");
	TT_REQUIRE(tk_matmul(&be, ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c, ldc) == 0, "mm");
	TT_CHECK(!memcmp(a, a0, sizeof(float) * sa), "A was modified");
	TT_REQUIRE(tk_backend_set_prec(&be, TK_PREC_FP32, &d) == 0, "%s", d.msg);
	TT_REQUIRE(tk_matmul(&be, ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c32, ldc) == 0,
		   "mm");
	double worst = 0.0, off32 = 0.0;
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double s = 0.0, sabs = 0.0;
			for (int p = 0; p < k; p++) {
				float x = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
				float y = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
				double t = (double)round_to(x, prec) * round_to(y, prec);
				s += t;
				sabs += fabs(t);
			}
			double c0v = c0[(size_t)i * ldc + j];
			double ref = 0.5 * s + 0.25 * c0v;
			double bound = (0.5 * sabs + 0.25 * fabs(c0v)) * (k + 2) * 0x1p-24;
			double e = fabs(c[(size_t)i * ldc + j] - ref) / bound;
			double e32 = fabs(c32[(size_t)i * ldc + j] - ref) / bound;
			worst = e > worst ? e : worst;
			off32 = e32 > off32 ? e32 : off32;
		}
	TT_CHECK(worst <= 1.0, "prec %d ta %d tb %d: error %.3g of the bound", prec, ta, tb, worst);
	TT_CHECK(off32 > 1.0, "prec %d: fp32 within the bound (%.3g): no rounding?", prec, off32);
	/* the padding of C is not touched */
	for (int i = 0; i < m; i++)
		TT_CHECK(c[(size_t)i * ldc + n] == c0[(size_t)i * ldc + n], "C padding written");
	free(a), free(a0), free(b), free(c0), free(c), free(c32);
	tk_backend_free(&be);
}

static void test_matmul_prec(void)
{
	int precs[] = {TK_PREC_TF32, TK_PREC_BF16, TK_PREC_FP16};
	for (int p = 0; p < 3; p++)
		for (int t = 0; t < 4; t++) {
			one(precs[p], t & 1, t >> 1, 37, 29, 71, 1);
			one(precs[p], t & 1, t >> 1, 130, 97, 64, 4); /* split across threads */
		}
	one(TK_PREC_BF16, 0, 1, 1, 300, 257, 2); /* the GEMV path (m = 1) */
}

/* An fp16 operand beyond 65504 is inf, so C is inf; bf16 and tf32 keep the
 * fp32 range. */
static void test_fp16_overflow(void)
{
	struct tk_backend be;
	struct tk_diag d = {0};
	TT_REQUIRE(tk_backend_cpu_init(&be, 1, &d) == 0, "%s", d.msg);
	float a[2] = {70000.0f, 1.0f}, b[2] = {1.0f, 1.0f}, c[1];
	int precs[] = {TK_PREC_FP16, TK_PREC_BF16, TK_PREC_TF32};
	for (int p = 0; p < 3; p++) {
		TT_REQUIRE(tk_backend_set_prec(&be, precs[p], &d) == 0, "%s", d.msg);
		TT_REQUIRE(tk_matmul(&be, 0, 0, 1, 1, 2, 1.0f, a, 2, b, 1, 0.0f, c, 1) == 0, "mm");
		if (precs[p] == TK_PREC_FP16)
			TT_CHECK(isinf(c[0]) && c[0] > 0, "fp16: %g", c[0]);
		else
			TT_CHECK(c[0] == round_to(70000.0f, precs[p]) + 1.0f, "prec %d: %g",
				 precs[p], c[0]);
	}
	/* products above 65504 of in-range operands are fine: C is fp32 */
	float x[1] = {60000.0f}, y[1] = {2.0f};
	TT_REQUIRE(tk_backend_set_prec(&be, TK_PREC_FP16, &d) == 0, "%s", d.msg);
	TT_REQUIRE(tk_matmul(&be, 0, 0, 1, 1, 1, 1.0f, x, 1, y, 1, 0.0f, c, 1) == 0, "mm");
	TT_CHECK(c[0] == 120000.0f, "%g", c[0]);
	tk_backend_free(&be);
}

/* fp32 stays the default and bit for bit what it was; every precision is
 * accepted on the CPU; unknown ones are refused and leave prec as it was. */
static void test_set_prec(void)
{
	struct tk_backend be;
	struct tk_diag d = {0};
	TT_REQUIRE(tk_backend_cpu_init(&be, 1, &d) == 0, "%s", d.msg);
	TT_CHECK(be.prec == TK_PREC_FP32, "default %d", be.prec);
	for (int p = TK_PREC_FP32; p <= TK_PREC_FP16; p++)
		TT_CHECK(tk_backend_set_prec(&be, p, &d) == 0 && be.prec == p, "prec %d", p);
	TT_CHECK(tk_backend_set_prec(&be, 7, &d) == TK_E_INVAL && be.prec == TK_PREC_FP16,
		 "7 accepted");
	TT_CHECK(strstr(d.msg, "unknown precision"), "%s", d.msg);
	tk_backend_free(&be);
}

/* A backend with fp16 but no bf16 (as a T4): tk_train_set_prec falls back
 * to fp16 with a note naming why; fp16 and tf32 asked for are set as they
 * are (tf32 refused here too: no fallback for it). */
static int t4_prec_ok(struct tk_backend *be, int prec, struct tk_diag *d)
{
	(void)be;
	if (prec == TK_PREC_FP16)
		return 0;
	return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
			   "fake T4 (sm_75) has no %s (use --fp16)",
			   prec == TK_PREC_BF16 ? "bf16" : "tf32");
}

static void test_bf16_fallback(void)
{
	static const struct tk_backend_i t4 = { .name = "fake", .prec_ok = t4_prec_ok };
	struct tk_backend be = { .i = &t4, .prec = TK_PREC_FP32 };
	struct tk_diag d = {0};
	int used = -1;
	TT_CHECK(tk_train_set_prec(&be, TK_PREC_BF16, &used, &d) == 0, "%s", d.msg);
	TT_CHECK(used == TK_PREC_FP16 && be.prec == TK_PREC_FP16, "used %d prec %d", used,
		 be.prec);
	TT_CHECK(!strcmp(d.msg, "fake T4 (sm_75) has no bf16 (use --fp16); training in fp16 "
				"with loss scaling instead"), "%s", d.msg);
	be.prec = TK_PREC_FP32;
	TT_CHECK(tk_train_set_prec(&be, TK_PREC_FP16, &used, &d) == 0 && !d.msg[0] &&
		 used == TK_PREC_FP16, "fp16: %s", d.msg);
	be.prec = TK_PREC_FP32;
	TT_CHECK(tk_train_set_prec(&be, TK_PREC_TF32, &used, &d) == TK_E_UNSUPPORTED &&
		 used == TK_PREC_FP32 && be.prec == TK_PREC_FP32, "tf32 accepted");
	TT_CHECK(strstr(d.msg, "no tf32"), "%s", d.msg);
	/* a backend without the slot: fp32 only, bf16 has nowhere to go */
	static const struct tk_backend_i plain = { .name = "plain" };
	struct tk_backend be2 = { .i = &plain };
	TT_CHECK(tk_train_set_prec(&be2, TK_PREC_BF16, &used, &d) == TK_E_UNSUPPORTED,
		 "plain bf16");
	TT_CHECK(strstr(d.msg, "fp32 only"), "%s", d.msg);
	TT_CHECK(tk_train_set_prec(&be2, TK_PREC_FP32, &used, &d) == 0 && used == 0, "fp32");
}

/* A held operand (tk_hold) gives the bits it gives unheld, in every
 * precision and either operand slot; after tk_unhold a changed matrix is
 * read afresh (a stale copy would give the old product).  The same
 * pointer with another shape is not taken for the held one. */
static void test_hold(void)
{
	int precs[] = {TK_PREC_FP32, TK_PREC_BF16, TK_PREC_FP16};
	enum { M = 19, N = 45, K = 33, LDW = K + 3 };
	float *w = malloc(sizeof(float) * N * LDW), *x = malloc(sizeof(float) * M * K);
	float c0[M * N], c1[M * N], ct0[N * M], ct1[N * M];
	for (int i = 0; i < N * LDW; i++)
		w[i] = frand();
	for (int i = 0; i < M * K; i++)
		x[i] = frand();
	for (int p = 0; p < 3; p++) {
		struct tk_backend be;
		struct tk_diag d = {0};
		TT_REQUIRE(tk_backend_cpu_init(&be, 2, &d) == 0, "%s", d.msg);
		TT_REQUIRE(tk_backend_set_prec(&be, precs[p], &d) == 0, "%s", d.msg);
		/* C [M,N] = X W^T (W as B, transposed) and C^T [N,M] = W X^T (W as A) */
		TT_REQUIRE(tk_matmul(&be, 0, 1, M, N, K, 1.0f, x, K, w, LDW, 0.0f, c0, N) == 0, "mm");
		TT_REQUIRE(tk_matmul(&be, 0, 1, N, M, K, 1.0f, w, LDW, x, K, 0.0f, ct0, M) == 0, "mm");
		tk_hold(&be, w, N, K, LDW);
		TT_REQUIRE(tk_matmul(&be, 0, 1, M, N, K, 1.0f, x, K, w, LDW, 0.0f, c1, N) == 0, "mm");
		TT_REQUIRE(tk_matmul(&be, 0, 1, N, M, K, 1.0f, w, LDW, x, K, 0.0f, ct1, M) == 0, "mm");
		TT_CHECK(!memcmp(c0, c1, sizeof(c0)) && !memcmp(ct0, ct1, sizeof(ct0)),
			 "prec %d: held operand changed the product", precs[p]);
		/* another shape at the same address: K - 1 columns */
		TT_REQUIRE(tk_matmul(&be, 0, 1, M, N, K - 1, 1.0f, x, K, w, LDW, 0.0f, c1, N) == 0,
			   "mm");
		double s = 0.0;
		for (int k = 0; k < K - 1; k++)
			s += (double)round_to(x[k], precs[p]) * round_to(w[k], precs[p]);
		TT_CHECK(fabs(c1[0] - s) < 1e-4, "prec %d: shape K-1 read the held copy: %g vs %g",
			 precs[p], c1[0], s);
		tk_unhold(&be, w);
		for (int i = 0; i < N * LDW; i++)
			w[i] = -w[i];
		TT_REQUIRE(tk_matmul(&be, 0, 1, M, N, K, 1.0f, x, K, w, LDW, 0.0f, c1, N) == 0, "mm");
		int flipped = 1;
		for (int i = 0; i < M * N; i++)
			flipped &= c1[i] == -c0[i];
		TT_CHECK(flipped, "prec %d: a stale copy after tk_unhold", precs[p]);
		for (int i = 0; i < N * LDW; i++)
			w[i] = -w[i];
		tk_unhold(&be, w); /* not held: nothing happens */
		tk_backend_free(&be);
	}
	free(w), free(x);
}

int main(void)
{
	TT_RUN(test_bf16_fallback);
	TT_RUN(test_matmul_prec);
	TT_RUN(test_fp16_overflow);
	TT_RUN(test_set_prec);
	TT_RUN(test_hold);
	return tt_done();
}

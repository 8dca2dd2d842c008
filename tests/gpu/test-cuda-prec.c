/* test-cuda-prec.c - mixed-precision matmul (enum tk_prec): CUDA's
 * cublasGemmEx on bf16 / fp16 codes (or TF32 compute on operands rounded
 * to TF32 first) against the CPU backend's emulation of the same precision.
 *
 * Tolerances.  Both sides round the operands with the same code
 * (lib/base/math-common.h; for TF32 the GPU rounds them into fp32 copies before
 * the tensor cores, which then read them unchanged however they round) and
 * the products of such operands are exact in fp32, so they differ only in
 * the order of the fp32 sums: |cuda - cpu| <= 2 (k + 2) 2^-24 sum |a b|,
 * written below with sum |a b| <= k (operands in [-1, 1]).  UNVERIFIED: no
 * GPU has run this file in this project.
 */
#include "gpu.h"

static const char *prec_name(int p)
{
	return p == TK_PREC_BF16 ? "bf16" : p == TK_PREC_FP16 ? "fp16" : "tf32";
}

/* Sets prec on both backends: 1 when the GPU has it; a refusal must be
 * TK_E_UNSUPPORTED naming the way out (--fp16), and fp16 is never refused. */
static int both_prec(int prec)
{
	struct tk_diag d;
	tk_diag_clear(&d);
	int rc = tk_backend_set_prec(&gpu, prec, &d);
	if (rc) {
		TT_CHECK(prec != TK_PREC_FP16, "fp16 refused: %s", d.msg);
		TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "--fp16") && strstr(d.msg, "sm_"),
			 "%s refused with %d: %s", prec_name(prec), rc, d.msg);
		printf("NOTE %s: %s\n", prec_name(prec), d.msg);
		return 0;
	}
	TT_CHECK(tk_backend_set_prec(&cpu, prec, &d) == 0, "cpu: %s", d.msg);
	return 1;
}

static void gemm_case(int prec, int ta, int tb, int m, int n, int k)
{
	int lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n;
	size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb;
	struct pair a = pair_rand(na, -1, 1), b = pair_rand(nb, -1, 1);
	struct pair c = pair_rand((size_t)m * ldc, -1, 1);
	char what[96];
	snprintf(what, sizeof(what), "%s ta=%d tb=%d %dx%dx%d", prec_name(prec), ta, tb, m, n, k);
	int rc = tk_matmul(&cpu, ta, tb, m, n, k, 0.5f, a.c, lda, b.c, ldb, 0.25f, c.c, ldc);
	int rg = tk_matmul(&gpu, ta, tb, m, n, k, 0.5f, a.g, lda, b.g, ldb, 0.25f, c.g, ldc);
	BOTH_OK(rc, rg, what);
	double sum_ab = 0.5 * k + 0.25; /* |alpha| sum |a b| + |beta c| */
	double atol = 2.0 * (k + 2) * 0x1p-24 * sum_ab;
	gpu_dtype = prec_name(prec);
	CHECK_PAIR("matmul", c, atol, 0);
	gpu_dtype = "fp32";
	pair_free(&a), pair_free(&b), pair_free(&c);
}

static void test_prec_gemm(void)
{
	NEED_GPU();
	int precs[] = { TK_PREC_BF16, TK_PREC_FP16, TK_PREC_TF32 };
	rng_seed(11);
	for (int p = 0; p < 3; p++) {
		if (!both_prec(precs[p]))
			continue;
		for (int t = 0; t < 4; t++)
			gemm_case(precs[p], t & 1, t >> 1, 37, 53, 71);
		gemm_case(precs[p], 0, 1, 256, 384, 512); /* a linear layer's shape */
		gemm_case(precs[p], 1, 0, 512, 384, 64);  /* its weight gradient */
		gemm_case(precs[p], 0, 1, 1, 300, 257);   /* a decode step */
	}
	struct tk_diag d;
	tk_backend_set_prec(&gpu, TK_PREC_FP32, &d);
	tk_backend_set_prec(&cpu, TK_PREC_FP32, &d);
}

/* fp16: an operand beyond 65504 is inf on both; an fp32 C holds products
 * beyond it. */
static void test_fp16_range(void)
{
	NEED_GPU();
	if (!both_prec(TK_PREC_FP16))
		return;
	float ha[4] = { 70000.0f, 1.0f, 60000.0f, 0.0f }, hb[2] = { 1.0f, 2.0f };
	struct pair a = pair_of(ha, 4), b = pair_of(hb, 2), c = pair_rand(2, 0, 1);
	int rc = tk_matmul(&cpu, 0, 0, 2, 1, 2, 1.0f, a.c, 2, b.c, 1, 0.0f, c.c, 1);
	int rg = tk_matmul(&gpu, 0, 0, 2, 1, 2, 1.0f, a.g, 2, b.g, 1, 0.0f, c.g, 1);
	BOTH_OK(rc, rg, "fp16 range");
	TT_CHECK(isinf(c.g[0]) && c.g[0] > 0 && isinf(c.c[0]), "row 0: cuda %g cpu %g", c.g[0],
		 c.c[0]);
	TT_CHECK(c.g[1] == 60000.0f && c.c[1] == 60000.0f, "row 1: cuda %g cpu %g", c.g[1],
		 c.c[1]);
	pair_free(&a), pair_free(&b), pair_free(&c);
	struct tk_diag d;
	tk_backend_set_prec(&gpu, TK_PREC_FP32, &d);
	tk_backend_set_prec(&cpu, TK_PREC_FP32, &d);
}

int main(void)
{
	gpu_setup();
	TT_RUN(test_prec_gemm);
	TT_RUN(test_fp16_range);
	gpu_teardown();
	return tt_done();
}

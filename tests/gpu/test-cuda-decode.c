/* test-cuda-decode.c - the decode ops on the CUDA backend against the CPU
 * backend: qmatmul (NF4/FP4, plain and double-quantized, int8; weights in
 * host memory, staged, and moved with tk_qweight_to_backend; x and y in
 * device and in host memory; beta 0 and 1; more rows of x than one pass of
 * the kernel takes), attention_decode (grouped-query heads, head_dim 40,
 * 64 and 128, a sliding window, several sequences at different positions),
 * copy_rows (exact).  SKIP without a GPU.
 */
#include "gpu.h"
#include "base/quant.h"
#include "compute/qweight-dev.h"

#define ROWS 300
#define COLS 77 /* odd: rows start inside a packed byte */

static int make_q8(struct tk_qweight *q)
{
	memset(q, 0, sizeof(*q));
	q->kind = TK_QK_INT8;
	q->rows = ROWS;
	q->cols = COLS;
	q->data = malloc((size_t)ROWS * COLS);
	q->scb = malloc(ROWS * sizeof(float));
	if (!q->data || !q->scb)
		return TK_E_NOMEM;
	for (size_t i = 0; i < (size_t)ROWS * COLS; i++)
		q->data[i] = (uint8_t)rng_u32();
	for (int r = 0; r < ROWS; r++)
		q->scb[r] = rng_f(0.001f, 3.0f);
	return 0;
}

/* One qmatmul case on both backends.  Tolerance: both sum the same fp32
 * products (the same weight bits, tk_qweight_rows') in different orders,
 * the GPU with fused multiply-adds; each is within gamma_k * sum |x w| of
 * the exact sum (k = COLS + 2, u = 2^-24), so they differ by at most twice
 * that: atol is twice the largest such bound over the outputs. */
static void qmm_case(const char *what, const struct tk_qweight *q, int64_t row0, int n, int m,
		     float beta, int host_io)
{
	const int ldy = n + 1;
	float *xh = rand_host((size_t)m * COLS, -1, 1), *y0 = rand_host((size_t)m * ldy, -1, 1);
	float *w = malloc((size_t)n * COLS * sizeof(float));
	float *yc = dup_on(&cpu, y0, (size_t)m * ldy);
	float *yg = host_io ? malloc((size_t)m * ldy * sizeof(float)) :
			      tk_backend_alloc(&gpu, (size_t)m * ldy * sizeof(float));
	float *xg = host_io ? xh : dup_on(&gpu, xh, (size_t)m * COLS);
	double k = COLS + 2, u = ldexp(1.0, -24), bound = 0.0;
	char shape[160];

	TT_REQUIRE(xh && y0 && w && yc && yg && xg, "alloc");
	memcpy(yg, y0, (size_t)m * ldy * sizeof(float));
	TT_REQUIRE(!tk_qweight_rows(q, row0, n, w, NULL), "dequant");
	for (int i = 0; i < m; i++)
		for (int r = 0; r < n; r++) {
			double mag = fabs((double)beta * y0[i * ldy + r]);
			for (int c = 0; c < COLS; c++)
				mag += fabs((double)xh[i * COLS + c] * w[r * COLS + c]);
			bound = fmax(bound, 2.0 * k * u / (1.0 - k * u) * mag);
		}
	snprintf(shape, sizeof(shape), "%s rows %lld+%d, m %d, beta %g%s", what, (long long)row0,
		 n, m, beta, host_io ? ", host x/y" : "");
	int rc_c = tk_qmatmul(&cpu, q, row0, n, m, xh, yc, ldy, beta);
	int rc_g = tk_qmatmul(&gpu, q, row0, n, m, xg, yg, ldy, beta);
	BOTH_OK(rc_c, rc_g, shape);
	check_close("qmatmul", yg, yc, (size_t)m * ldy, bound, 0.0);
	if (!host_io) {
		tk_backend_free_mem(&gpu, yg);
		tk_backend_free_mem(&gpu, xg);
	} else {
		free(yg);
	}
	tk_backend_free_mem(&cpu, yc);
	free(xh);
	free(y0);
	free(w);
}

static void qmm_weight(const char *what, struct tk_qweight *q)
{
	char w[120];

	for (int moved = 0; moved <= 1 && !tt_failed_now; moved++) {
		if (moved)
			TT_REQUIRE(!tk_qweight_to_backend(q, &gpu, NULL), "%s: to_backend", what);
		snprintf(w, sizeof(w), "%s, %s weight", what, moved ? "device" : "host");
		qmm_case(w, q, 0, ROWS, 1, 0.0f, 0);
		qmm_case(w, q, 3, 5, 3, 1.0f, 0);
		qmm_case(w, q, 299, 1, 8, 0.0f, 1);
		qmm_case(w, q, 17, 130, 11, 1.0f, 0); /* 11 rows: two passes of 8 */
	}
}

static void test_qmatmul(void)
{
	NEED_GPU();
	static const struct {
		enum tk_qkind kind;
		size_t bs;
		int nested;
		const char *what;
	} C[] = {
		{ TK_QK_NF4, 64, 0, "nf4/64" },	 { TK_QK_NF4, 64, 1, "nf4/64 nested" },
		{ TK_QK_FP4, 64, 0, "fp4/64" },	 { TK_QK_FP4, 64, 1, "fp4/64 nested" },
		{ TK_QK_NF4, 256, 1, "nf4/256 nested" },
	};
	rng_seed(21);
	for (size_t i = 0; i < sizeof(C) / sizeof(C[0]) && !tt_failed_now; i++) {
		struct tk_qweight q;
		float *x = rand_host((size_t)ROWS * COLS, -1, 1);
		TT_REQUIRE(x && !tk_qweight_quantize4(&q, x, ROWS, COLS, C[i].kind, C[i].bs,
						      C[i].nested, 1, NULL),
			   "quantize %s", C[i].what);
		free(x);
		qmm_weight(C[i].what, &q);
		tk_qweight_free(&q);
	}
	struct tk_qweight q8;
	TT_REQUIRE(!make_q8(&q8), "alloc");
	qmm_weight("int8", &q8);
	tk_qweight_free(&q8);
}

/* Attention over a float cache, or a bf16 one (bf16: each backend's
 * store_rows_bf16 of the same floats, the same codes, then its attention
 * over them).  Tolerance: q, keys and values in [-1, 1): the outputs are averages of
 * values, |out| < 1; CUDA's expf is within 2 ulp and the online softmax
 * rescales each warp's sums, the CPU divides each weight by the sum, so a
 * few ulp of 1 apart per term: atol 1e-5, rtol 1e-5. */
static void att_case(int D, int window, float scale, float softcap, int bf16)
{
	const struct tk_attn_opts ao = { scale, window, softcap, bf16 };
	enum { NSEQ = 4, L = 37, H = 8, KV = 2, N = 7 };
	const int32_t seq[N] = { 1, 1, 1, 1, 0, 2, 3 };
	const int32_t pos[N] = { 0, 1, 2, 3, 20, 36, 0 };
	const size_t K = (size_t)KV * D, cn = (size_t)NSEQ * L * K, qn = (size_t)N * H * D;
	struct pair kc = pair_rand(cn, -1, 1), vc = pair_rand(cn, -1, 1);
	struct pair q = pair_rand(qn, -1, 1), out = pair_rand(qn, -1, 1);
	char shape[120];

	TT_REQUIRE(kc.c && kc.g && vc.c && vc.g && q.c && q.g && out.c && out.g, "alloc");
	snprintf(shape, sizeof(shape),
		 "H %d KV %d D %d, window %d, scale %g, softcap %g, %d rows of 4 sequences%s", H,
		 KV, D, window, scale, softcap, N, bf16 ? ", bf16 cache" : "");
	/* a bf16 cache: each backend's store_rows_bf16 of the same floats */
	void *ck = kc.c, *cv = vc.c, *gk = kc.g, *gv = vc.g;
	int64_t *idx = bf16 ? malloc((size_t)NSEQ * L * sizeof(int64_t)) : NULL;
	if (bf16) {
		ck = tk_backend_alloc(&cpu, cn * sizeof(uint16_t));
		cv = tk_backend_alloc(&cpu, cn * sizeof(uint16_t));
		gk = tk_backend_alloc(&gpu, cn * sizeof(uint16_t));
		gv = tk_backend_alloc(&gpu, cn * sizeof(uint16_t));
		TT_REQUIRE(idx && ck && cv && gk && gv, "alloc");
		for (int r = 0; r < NSEQ * L; r++)
			idx[r] = r;
		int rc[4] = { tk_store_rows_bf16(&cpu, ck, kc.c, idx, NSEQ * L, (int)K),
			      tk_store_rows_bf16(&cpu, cv, vc.c, idx, NSEQ * L, (int)K),
			      tk_store_rows_bf16(&gpu, gk, kc.g, idx, NSEQ * L, (int)K),
			      tk_store_rows_bf16(&gpu, gv, vc.g, idx, NSEQ * L, (int)K) };
		BOTH_OK(rc[0] | rc[1], rc[2] | rc[3], "store_rows_bf16");
	}
	int rc_c = tk_attention_decode(&cpu, out.c, q.c, ck, cv, seq, pos, N, L, H, KV, D, &ao);
	int rc_g = tk_attention_decode(&gpu, out.g, q.g, gk, gv, seq, pos, N, L, H, KV, D, &ao);
	BOTH_OK(rc_c, rc_g, shape);
	CHECK_PAIR("attention_decode", out, 1e-5, 1e-5);
	if (bf16) {
		tk_backend_free_mem(&cpu, ck);
		tk_backend_free_mem(&cpu, cv);
		tk_backend_free_mem(&gpu, gk);
		tk_backend_free_mem(&gpu, gv);
		free(idx);
	}
	pair_free(&kc);
	pair_free(&vc);
	pair_free(&q);
	pair_free(&out);
}

static void test_attention_decode(void)
{
	NEED_GPU();
	rng_seed(22);
	for (int bf16 = 0; bf16 < 2; bf16++) { /* a float cache, a bf16 one */
		att_case(64, 0, 0.0f, 0.0f, bf16);
		att_case(64, 5, 0.0f, 0.0f, bf16);
		att_case(40, 0, 0.0f, 0.0f, bf16);
		att_case(128, 16, 0.0f, 0.0f, bf16);
		/* Gemma-2's: query_pre_attn_scalar 256 (scale 1/16), softcap
		 * 50; and a cap small enough to bend most scores (|s| up to
		 * D/16 = 8 > 1.5) */
		att_case(256, 5, 0.0625f, 50.0f, bf16);
		att_case(128, 0, 0.0625f, 1.5f, bf16);
	}
	/* past the kernel's head_dim and a position past the cache */
	float x[4] = { 0 };
	int32_t seq[1] = { 0 }, pos[1] = { 0 }, bad[1] = { 3 };
	TT_CHECK(tk_attention_decode(&gpu, x, x, x, x, seq, pos, 1, 1, 1, 1, 300, NULL) ==
			 TK_E_UNSUPPORTED, "head_dim 300");
	TT_CHECK(tk_attention_decode(&gpu, x, x, x, x, seq, bad, 1, 3, 1, 1, 1, NULL) == TK_E_INVAL,
		 "position 3 of 3");
}

static void test_copy_rows(void)
{
	NEED_GPU();
	const int dim = 33, n = 5, rows = 40;
	const int64_t idx[5] = { 39, 0, 7, 8, 20 }, bad[1] = { -2 };
	rng_seed(23);
	struct pair dst = pair_rand((size_t)rows * dim, -1, 1);
	float *src = rand_host((size_t)n * dim, -1, 1);
	float *srcg = dup_on(&gpu, src, (size_t)n * dim);
	TT_REQUIRE(dst.c && dst.g && src && srcg, "alloc");
	/* src from device memory, then from host memory */
	BOTH_OK(tk_copy_rows(&cpu, dst.c, src, idx, n, dim),
		tk_copy_rows(&gpu, dst.g, srcg, idx, n, dim), "5 rows of 33 into 40");
	CHECK_PAIR("copy_rows", dst, 0, 0);
	BOTH_OK(tk_copy_rows(&cpu, dst.c, src, idx + 1, 2, dim),
		tk_copy_rows(&gpu, dst.g, src, idx + 1, 2, dim), "2 rows from host memory");
	CHECK_PAIR("copy_rows", dst, 0, 0);
	TT_CHECK(tk_copy_rows(&gpu, dst.g, srcg, bad, 1, dim) == TK_E_INVAL, "negative index");
	pair_free(&dst);
	tk_backend_free_mem(&gpu, srcg);
	free(src);
}

int main(void)
{
	gpu_setup();
	TT_RUN(test_qmatmul);
	TT_RUN(test_attention_decode);
	TT_RUN(test_copy_rows);
	gpu_teardown();
	return tt_done();
}

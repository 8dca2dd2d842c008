/* test-cuda-ops.c - every op of the CUDA backend against the CPU backend.
 *
 * Random inputs of awkward sizes (odd dims, dims that are not multiples of
 * 32, rows past one reduction chunk, grouped-query heads), forward and
 * backward, each with its tolerance beside it and why.  Also: host (malloc)
 * pointers handed to the CUDA ops (staged by the backend), the argument
 * errors, and a second run giving the same bits (no atomics anywhere).
 * Prints SKIP for every test without a GPU.
 */
#include "gpu.h"
#include "base/math-common.h"

/* C = alpha op(A) op(B) + beta C for the four transposes, padded leading
 * dimensions, beta 0 over a C full of NaN (BLAS does not read it), k = 0.
 * fp32 on both sides (no TF32): sums of 45 products in another order,
 * |a|,|b| < 1: within 2e-6 absolute; 1e-5 leaves room. */
static void test_matmul(void)
{
	NEED_GPU();
	rng_seed(1);
	int m = 37, n = 29, k = 45;
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
			for (int bz = 0; bz < 2; bz++) {
				int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
				struct pair a = pair_rand((size_t)(ta ? k : m) * lda, -1, 1);
				struct pair b = pair_rand((size_t)(tb ? n : k) * ldb, -1, 1);
				struct pair c = pair_rand((size_t)m * ldc, -1, 1);
				float beta = bz ? 0.0f : 0.3f;
				if (bz)
					for (size_t i = 0; i < c.n; i++)
						c.c[i] = c.g[i] = NAN;
				int r1 = tk_matmul(&cpu, ta, tb, m, n, k, 0.7f, a.c, lda, b.c, ldb,
						   beta, c.c, ldc);
				int r2 = tk_matmul(&gpu, ta, tb, m, n, k, 0.7f, a.g, lda, b.g, ldb,
						   beta, c.g, ldc);
				BOTH_OK(r1, r2, "matmul");
				/* the padding columns of C are untouched (NaN stays NaN) */
				for (int i = 0; i < m; i++)
					for (int j = n; j < ldc; j++) {
						size_t o = (size_t)i * ldc + j;
						TT_CHECK(isnan(c.g[o]) ? bz : c.g[o] == c.c[o],
							 "C padding [%d][%d] written", i, j);
						c.g[o] = c.c[o] = 0;
					}
				char what[64];
				snprintf(what, sizeof(what), "matmul ta=%d tb=%d beta=%g", ta, tb,
					 beta);
				CHECK_PAIR(what, c, 1e-5, 1e-5);
				pair_free(&a);
				pair_free(&b);
				pair_free(&c);
			}
	/* k = 0: C = beta C; exact */
	struct pair c = pair_rand((size_t)5 * 7, -1, 1), a = pair_rand(1, 0, 1);
	int r1 = tk_matmul(&cpu, 0, 0, 5, 7, 0, 1.0f, a.c, 1, a.c, 7, 0.5f, c.c, 7);
	int r2 = tk_matmul(&gpu, 0, 0, 5, 7, 0, 1.0f, a.g, 1, a.g, 7, 0.5f, c.g, 7);
	BOTH_OK(r1, r2, "matmul k=0");
	CHECK_PAIR("matmul k=0", c, 0, 0);
	pair_free(&a);
	pair_free(&c);
}

/* LayerNorm forward, with and without bias: statistics in double on both
 * sides, so y within a few float roundings: 2e-6 abs + 1e-5 rel. */
static void test_layernorm(void)
{
	NEED_GPU();
	rng_seed(2);
	int rows = 67, dim = 161; /* 67 rows: two chunks of the column sums */
	for (int withb = 0; withb < 2; withb++) {
		struct pair x = pair_rand((size_t)rows * dim, -3, 5);
		struct pair w = pair_rand(dim, 0.5f, 1.5f), b = pair_rand(dim, -1, 1);
		struct pair y = pair_rand((size_t)rows * dim, 0, 0);
		struct pair mean = pair_rand(rows, 0, 0), rstd = pair_rand(rows, 0, 0);
		int r1 = tk_layernorm_fwd(&cpu, y.c, mean.c, rstd.c, x.c, w.c, withb ? b.c : NULL,
					  rows, dim, 1e-5f);
		int r2 = tk_layernorm_fwd(&gpu, y.g, mean.g, rstd.g, x.g, w.g, withb ? b.g : NULL,
					  rows, dim, 1e-5f);
		BOTH_OK(r1, r2, "layernorm_fwd");
		CHECK_PAIR("layernorm y", y, 2e-6, 1e-5);
		CHECK_PAIR("layernorm mean", mean, 1e-7, 1e-6); /* from the same double */
		CHECK_PAIR("layernorm rstd", rstd, 0, 1e-6);
		/* backward: dx (set), dw and db accumulate onto random values.
		 * dx: float sums of 161 terms in another order: 1e-5 abs + rel;
		 * dw, db: double sums on both sides: 1e-5 rel */
		struct pair dy = pair_rand((size_t)rows * dim, -1, 1);
		struct pair dx = pair_rand((size_t)rows * dim, 0, 0);
		struct pair dw = pair_rand(dim, -1, 1), db = pair_rand(dim, -1, 1);
		r1 = tk_layernorm_bwd(&cpu, dx.c, dw.c, db.c, dy.c, x.c, w.c, mean.c, rstd.c, rows,
				      dim);
		r2 = tk_layernorm_bwd(&gpu, dx.g, dw.g, db.g, dy.g, x.g, w.g, mean.g, rstd.g, rows,
				      dim);
		BOTH_OK(r1, r2, "layernorm_bwd");
		CHECK_PAIR("layernorm dx", dx, 1e-5, 1e-5);
		CHECK_PAIR("layernorm dw", dw, 1e-5, 1e-5);
		CHECK_PAIR("layernorm db", db, 1e-5, 1e-5);
		/* dx NULL: only the accumulations */
		r1 = tk_layernorm_bwd(&cpu, NULL, dw.c, NULL, dy.c, x.c, w.c, mean.c, rstd.c, rows,
				      dim);
		r2 = tk_layernorm_bwd(&gpu, NULL, dw.g, NULL, dy.g, x.g, w.g, mean.g, rstd.g, rows,
				      dim);
		BOTH_OK(r1, r2, "layernorm_bwd dw only");
		CHECK_PAIR("layernorm dw again", dw, 1e-5, 1e-5);
		struct pair *all[] = { &x, &w, &b, &y, &mean, &rstd, &dy, &dx, &dw, &db };
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			pair_free(all[i]);
	}
}

/* RMSNorm forward and backward: as LayerNorm; with the weight offset 0
 * (Llama) and 1 (Gemma's 1 + w, weights around 0). */
static void rmsnorm_case(float off)
{
	int rows = 130, dim = 97;
	struct pair x = pair_rand((size_t)rows * dim, -2, 2);
	struct pair w = off ? pair_rand(dim, -0.5f, 0.5f) : pair_rand(dim, 0.5f, 1.5f);
	struct pair y = pair_rand((size_t)rows * dim, 0, 0), rstd = pair_rand(rows, 0, 0);
	int r1 = tk_rmsnorm_fwd(&cpu, y.c, rstd.c, x.c, w.c, off, rows, dim, 1e-6f);
	int r2 = tk_rmsnorm_fwd(&gpu, y.g, rstd.g, x.g, w.g, off, rows, dim, 1e-6f);
	BOTH_OK(r1, r2, "rmsnorm_fwd");
	CHECK_PAIR("rmsnorm y", y, 1e-6, 1e-5);
	CHECK_PAIR("rmsnorm rstd", rstd, 0, 1e-6);
	struct pair dy = pair_rand((size_t)rows * dim, -1, 1);
	struct pair dx = pair_rand((size_t)rows * dim, 0, 0), dw = pair_rand(dim, -1, 1);
	r1 = tk_rmsnorm_bwd(&cpu, dx.c, dw.c, dy.c, x.c, w.c, off, rstd.c, rows, dim);
	r2 = tk_rmsnorm_bwd(&gpu, dx.g, dw.g, dy.g, x.g, w.g, off, rstd.g, rows, dim);
	BOTH_OK(r1, r2, "rmsnorm_bwd");
	CHECK_PAIR("rmsnorm dx", dx, 1e-5, 1e-5);
	CHECK_PAIR("rmsnorm dw", dw, 1e-5, 1e-5);
	struct pair *all[] = { &x, &w, &y, &rstd, &dy, &dx, &dw };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		pair_free(all[i]);
}

static void test_rmsnorm(void)
{
	NEED_GPU();
	rng_seed(3);
	rmsnorm_case(0.0f);
	rmsnorm_case(1.0f);
}

/* GELU and SwiGLU forward and backward: the same formulas
 * (math-common.h); nvcc fuses multiply-adds the CPU rounds twice: a few
 * ulp, so 1e-6 abs + 1e-5 rel.  In place for the backward (dgate over gate,
 * dup over up), as the model may call it. */
static void test_activations(void)
{
	NEED_GPU();
	rng_seed(4);
	size_t n = 10007;
	struct pair x = pair_rand(n, -8, 8), y = pair_rand(n, 0, 0), dy = pair_rand(n, -1, 1);
	struct pair u = pair_rand(n, -3, 3);
	BOTH_OK(tk_gelu_fwd(&cpu, y.c, x.c, n), tk_gelu_fwd(&gpu, y.g, x.g, n), "gelu_fwd");
	CHECK_PAIR("gelu", y, 1e-6, 1e-5);
	BOTH_OK(tk_gelu_bwd(&cpu, y.c, x.c, dy.c, n), tk_gelu_bwd(&gpu, y.g, x.g, dy.g, n),
		"gelu_bwd");
	CHECK_PAIR("gelu dx", y, 1e-6, 1e-5);
	BOTH_OK(tk_swiglu_fwd(&cpu, y.c, x.c, u.c, n), tk_swiglu_fwd(&gpu, y.g, x.g, u.g, n),
		"swiglu_fwd");
	CHECK_PAIR("swiglu", y, 1e-6, 1e-5);
	BOTH_OK(tk_swiglu_bwd(&cpu, x.c, u.c, x.c, u.c, dy.c, n),
		tk_swiglu_bwd(&gpu, x.g, u.g, x.g, u.g, dy.g, n), "swiglu_bwd in place");
	CHECK_PAIR("swiglu dgate", x, 1e-6, 1e-5);
	CHECK_PAIR("swiglu dup", u, 1e-6, 1e-5);
	BOTH_OK(tk_geglu_fwd(&cpu, y.c, x.c, u.c, n), tk_geglu_fwd(&gpu, y.g, x.g, u.g, n),
		"geglu_fwd");
	CHECK_PAIR("geglu", y, 1e-6, 1e-5);
	BOTH_OK(tk_geglu_bwd(&cpu, x.c, u.c, x.c, u.c, dy.c, n),
		tk_geglu_bwd(&gpu, x.g, u.g, x.g, u.g, dy.g, n), "geglu_bwd in place");
	CHECK_PAIR("geglu dgate", x, 1e-6, 1e-5);
	CHECK_PAIR("geglu dup", u, 1e-6, 1e-5);
	/* tanhf on both sides (CUDA's within 2 ulp): 1e-6 abs + 1e-5 rel */
	BOTH_OK(tk_logit_softcap(&cpu, dy.c, n, 0.7f), tk_logit_softcap(&gpu, dy.g, n, 0.7f),
		"logit_softcap");
	CHECK_PAIR("logit_softcap", dy, 1e-6, 1e-5);
	pair_free(&x);
	pair_free(&y);
	pair_free(&dy);
	pair_free(&u);
}

/* bias_add, bias_set, bias_grad (accumulates), axpy, scale, add_noise.  bias_add and scale are
 * one rounding each: exact.  axpy may be fused on the GPU: 1 ulp.
 * bias_grad: double sums of floats on both sides, rounded once: 1e-6 rel. */
static void test_simple(void)
{
	NEED_GPU();
	rng_seed(5);
	int rows = 130, dim = 77;
	size_t n = (size_t)rows * dim;
	struct pair y = pair_rand(n, -1, 1), b = pair_rand(dim, -1, 1), db = pair_rand(dim, -1, 1);
	struct pair x = pair_rand(n, -1, 1);
	BOTH_OK(tk_bias_add(&cpu, y.c, b.c, rows, dim), tk_bias_add(&gpu, y.g, b.g, rows, dim),
		"bias_add");
	CHECK_PAIR("bias_add", y, 0, 0);
	BOTH_OK(tk_bias_set(&cpu, y.c, b.c, rows, dim), tk_bias_set(&gpu, y.g, b.g, rows, dim),
		"bias_set");
	CHECK_PAIR("bias_set", y, 0, 0);
	BOTH_OK(tk_bias_grad(&cpu, db.c, y.c, rows, dim), tk_bias_grad(&gpu, db.g, y.g, rows, dim),
		"bias_grad");
	CHECK_PAIR("bias_grad", db, 1e-6, 1e-6);
	BOTH_OK(tk_axpy(&cpu, y.c, -0.37f, x.c, n), tk_axpy(&gpu, y.g, -0.37f, x.g, n), "axpy");
	CHECK_PAIR("axpy", y, 1e-7, 2e-7);
	BOTH_OK(tk_scale(&cpu, y.c, 1.7f, n), tk_scale(&gpu, y.g, 1.7f, n), "scale");
	CHECK_PAIR("scale", y, 1e-7, 2e-7); /* inputs differ by the axpy's ulp */
	/* NEFTune's noise: the same hashed floats on both (base/rng.h); the
	 * GPU may fuse -mag + 2 mag u into one FMA: 1 ulp */
	BOTH_OK(tk_add_noise(&cpu, y.c, n, 77, 0.01f), tk_add_noise(&gpu, y.g, n, 77, 0.01f),
		"add_noise");
	CHECK_PAIR("add_noise", y, 1e-7, 4e-7);
	pair_free(&y);
	pair_free(&b);
	pair_free(&db);
	pair_free(&x);
}

/* RoPE forward then inverse, head_dim 10 (not a multiple of 32) and 128,
 * each whole and partial (Phi-3: 6 of 10, 96 of 128 rotated), positions up
 * to 4095, from a host array (the training loop's case).  The angles are
 * the same fp32 numbers (inverse frequencies from the same host powf);
 * CUDA's cosf/sinf are within 2 ulp of glibc's: 1e-6 abs for |x| < 1; the
 * numbers past the rotary width pass through both unchanged. */
static void test_rope(void)
{
	NEED_GPU();
	rng_seed(6);
	int dims[] = { 10, 128, 10, 128 }, rots[] = { 10, 128, 6, 96 };
	for (int di = 0; di < 4; di++) {
		int rows = 19, heads = 3, hd = dims[di], rd = rots[di];
		size_t n = (size_t)rows * heads * hd;
		int32_t *pos = malloc(rows * sizeof(int32_t));
		for (int r = 0; r < rows; r++)
			pos[r] = (int32_t)(rng_u32() % 4096);
		struct pair x = pair_rand(n, -1, 1);
		float tab[64];
		for (int i = 0; i < rd / 2; i++)
			tab[i] = tk_rope_inv_freq(i, rd, 10000.0f);
		/* scale 1.2 on the second dimension: YaRN's attention factor */
		float scale = di % 2 ? 1.2f : 1.0f;
		for (int inv = 0; inv < 2; inv++) {
			BOTH_OK(tk_rope(&cpu, x.c, pos, rows, heads, hd, rd, tab, scale, inv),
				tk_rope(&gpu, x.g, pos, rows, heads, hd, rd, tab, scale, inv),
				"rope");
			CHECK_PAIR(inv ? "rope inverse" : "rope", x, 1e-6, 1e-6);
		}
		pair_free(&x);
		free(pos);
	}
}

struct att_case {
	int B, T, H, KV, D;
	struct tk_attn_opts ao; /* scale, window, softcap; zeros: the defaults */
};

/* Causal attention with GQA, forward and backward.  Scores and outputs are
 * float sums of D products in another order (online softmax on the GPU):
 * out and lse 2e-5 abs; the gradients, sums over T rows, 1e-4 abs + rel.
 * D = 200 takes the smallest tiles; D = 257 is refused (unsupported).
 * Sliding windows (1, shorter than a tile, across tiles, longer than T)
 * and Gemma-2's scale and soft-capping: the same tolerances, tanhf on
 * either side within 2 ulp and |d tanh| <= 1. */
static void test_attention(void)
{
	NEED_GPU();
	rng_seed(7);
	struct att_case cs[] = {
		{ 2, 37, 4, 2, 24, { 0.0f, 0, 0.0f, 0 } }, /* GQA groups of 2, T not a multiple of a tile */
		{ 1, 70, 6, 1, 33, { 0.0f, 0, 0.0f, 0 } }, /* multi-query, odd head_dim */
		{ 3, 5, 2, 2, 64, { 0.0f, 0, 0.0f, 0 } }, /* short sequences, plain multi-head */
		{ 1, 40, 4, 2, 128, { 0.0f, 0, 0.0f, 0 } },
		{ 1, 21, 2, 1, 200, { 0.0f, 0, 0.0f, 0 } },
		{ 2, 37, 4, 2, 24, { 0.0f, 1, 0.0f, 0 } },
		{ 1, 70, 6, 1, 33, { 0.0f, 5, 0.0f, 0 } },
		{ 1, 100, 4, 2, 64, { 0.0f, 33, 0.0f, 0 } },
		{ 3, 5, 2, 2, 64, { 0.0f, 4096, 0.0f, 0 } },
		{ 1, 70, 4, 2, 128, { 0.0625f, 0, 50.0f, 0 } },
		{ 2, 45, 4, 1, 40, { 0.3f, 7, 1.5f, 0 } },
		{ 1, 40, 2, 1, 256, { 0.0625f, 9, 50.0f, 0 } },
	};
	for (size_t ci = 0; ci < sizeof(cs) / sizeof(cs[0]); ci++) {
		struct att_case a = cs[ci];
		size_t nq = (size_t)a.B * a.T * a.H * a.D, nk = (size_t)a.B * a.T * a.KV * a.D;
		size_t nl = (size_t)a.B * a.H * a.T;
		struct pair q = pair_rand(nq, -2, 2), k = pair_rand(nk, -2, 2), v = pair_rand(nk, -1, 1);
		struct pair out = pair_rand(nq, 0, 0), lse = pair_rand(nl, 0, 0);
		struct pair dout = pair_rand(nq, -1, 1), dq = pair_rand(nq, 7, 8);
		struct pair dk = pair_rand(nk, 7, 8), dv = pair_rand(nk, 7, 8); /* overwritten */
		char what[96];
		snprintf(what, sizeof(what), "attention B%d T%d H%d KV%d D%d scale %g W%d cap %g",
			 a.B, a.T, a.H, a.KV, a.D, a.ao.scale, a.ao.window, a.ao.softcap);
		int r1 = tk_attention_fwd(&cpu, out.c, lse.c, q.c, k.c, v.c, a.B, a.T, a.H, a.KV, a.D,
					  &a.ao);
		int r2 = tk_attention_fwd(&gpu, out.g, lse.g, q.g, k.g, v.g, a.B, a.T, a.H, a.KV, a.D,
					  &a.ao);
		BOTH_OK(r1, r2, what);
		CHECK_PAIR("attention out", out, 2e-5, 1e-5);
		CHECK_PAIR("attention lse", lse, 2e-5, 1e-6);
		/* the backward from the same (CPU) out and lse on both sides */
		memcpy(out.g, out.c, nq * sizeof(float));
		memcpy(lse.g, lse.c, nl * sizeof(float));
		r1 = tk_attention_bwd(&cpu, dq.c, dk.c, dv.c, dout.c, q.c, k.c, v.c, out.c, lse.c, a.B,
				      a.T, a.H, a.KV, a.D, &a.ao);
		r2 = tk_attention_bwd(&gpu, dq.g, dk.g, dv.g, dout.g, q.g, k.g, v.g, out.g, lse.g, a.B,
				      a.T, a.H, a.KV, a.D, &a.ao);
		BOTH_OK(r1, r2, what);
		CHECK_PAIR("attention dq", dq, 1e-4, 1e-4);
		CHECK_PAIR("attention dk", dk, 1e-4, 1e-4);
		CHECK_PAIR("attention dv", dv, 1e-4, 1e-4);
		struct pair *all[] = { &q, &k, &v, &out, &lse, &dout, &dq, &dk, &dv };
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			pair_free(all[i]);
		if (tt_failed_now)
			return;
	}
	/* head_dim beyond the kernels' tiles */
	struct pair q = pair_rand((size_t)2 * 257, 0, 1), l = pair_rand(2, 0, 0);
	int rc = tk_attention_fwd(&gpu, q.g, l.g, q.g, q.g, q.g, 1, 2, 1, 1, 257, NULL);
	TT_CHECK(rc == TK_E_UNSUPPORTED, "head_dim 257 gave %d", rc);
	pair_free(&q);
	pair_free(&l);
}

/* Embedding lookup and its backward with many repeated ids (50 rows for
 * 300 ids), ids in managed memory and in a host array.  Exact: the forward
 * copies, the backward adds the same rows in the same order as the CPU. */
static void test_embedding(void)
{
	NEED_GPU();
	rng_seed(8);
	int n = 300, dim = 70, vocab = 50;
	uint32_t *hid = malloc(n * sizeof(uint32_t));
	for (int i = 0; i < n; i++)
		hid[i] = rng_u32() % (uint32_t)vocab;
	uint32_t *gid = tk_backend_alloc(&gpu, n * sizeof(uint32_t));
	TT_REQUIRE(gid, "alloc");
	memcpy(gid, hid, n * sizeof(uint32_t));
	struct pair table = pair_rand((size_t)vocab * dim, -1, 1);
	struct pair y = pair_rand((size_t)n * dim, 0, 0), dy = pair_rand((size_t)n * dim, -1, 1);
	struct pair dt = pair_rand((size_t)vocab * dim, -1, 1);
	for (int host = 0; host < 2; host++) {
		const uint32_t *ids = host ? hid : gid;
		BOTH_OK(tk_embedding_fwd(&cpu, y.c, table.c, hid, n, dim),
			tk_embedding_fwd(&gpu, y.g, table.g, ids, n, dim), "embedding_fwd");
		CHECK_PAIR(host ? "embedding (host ids)" : "embedding", y, 0, 0);
		BOTH_OK(tk_embedding_bwd(&cpu, dt.c, dy.c, hid, n, dim),
			tk_embedding_bwd(&gpu, dt.g, dy.g, ids, n, dim), "embedding_bwd");
		CHECK_PAIR(host ? "embedding dtable (host ids)" : "embedding dtable", dt, 0, 0);
	}
	free(hid);
	tk_backend_free_mem(&gpu, gid);
	pair_free(&table);
	pair_free(&y);
	pair_free(&dy);
	pair_free(&dt);
}

/* Softmax cross-entropy with ignored rows (-100) and a scale, targets in a
 * host array.  Each row's sum of exponentials is a float sum in another
 * order: the loss sum within 1e-6 per row; gradients 1e-7 abs + 1e-5 rel.
 * A target >= vocab is TK_E_INVAL with the logits untouched. */
static void test_cross_entropy(void)
{
	NEED_GPU();
	rng_seed(9);
	int rows = 37, vocab = 1001;
	size_t n = (size_t)rows * vocab;
	int32_t *tg = malloc(rows * sizeof(int32_t));
	for (int r = 0; r < rows; r++)
		tg[r] = r % 7 == 3 ? -100 : (int32_t)(rng_u32() % (uint32_t)vocab);
	tg[0] = vocab - 1;
	/* and with Gemma-2's final_logit_softcapping (cap 5 of logits in
	 * [-6, 6]: tanh well off its linear part) */
	for (int grad = 0; grad < 4; grad++) {
		struct pair x = pair_rand(n, -6, 6);
		double lc = 0.25, lg = 0.25; /* accumulates */
		float cap = grad >= 2 ? 5.0f : 0.0f;
		BOTH_OK(tk_cross_entropy(&cpu, x.c, tg, rows, vocab, 0.37f, grad & 1, &lc, cap),
			tk_cross_entropy(&gpu, x.g, tg, rows, vocab, 0.37f, grad & 1, &lg, cap),
			"cross_entropy");
		TT_CHECK(fabs(lc - lg) <= 1e-6 * rows, "loss cuda %.12g cpu %.12g", lg, lc);
		CHECK_PAIR(grad ? "cross_entropy grad" : "cross_entropy logits", x, 1e-7, 1e-5);
		pair_free(&x);
	}
	struct pair x = pair_rand(n, -6, 6);
	float *keep = malloc(n * sizeof(float));
	memcpy(keep, x.g, n * sizeof(float));
	tg[5] = vocab;
	double l = 0;
	int rc = tk_cross_entropy(&gpu, x.g, tg, rows, vocab, 1.0f, 1, &l, 0.0f);
	TT_CHECK(rc == TK_E_INVAL, "target == vocab gave %d", rc);
	TT_CHECK(!memcmp(keep, x.g, n * sizeof(float)) && l == 0, "logits or loss changed");
	free(keep);
	free(tg);
	pair_free(&x);
}

/* AdamW, three steps, decay on and off, beta1 below and above 0.5 (torch's
 * two lerp forms).  m and v are the CPU's bits (the same fp32 operations,
 * fused where torch fuses); p within 1 ulp (the CPU's scalar tail may fuse
 * p * keep into the update). */
static void test_adamw(void)
{
	NEED_GPU();
	rng_seed(10);
	size_t n = 10001;
	double b1s[] = { 0.9, 0.3 };
	for (int c = 0; c < 2; c++) {
		struct pair p = pair_rand(n, -1, 1), m = pair_rand(n, 0, 0), v = pair_rand(n, 0, 0);
		for (int step = 1; step <= 3; step++) {
			struct pair g = pair_rand(n, -1e-2f, 1e-2f);
			double wd = c ? 0.0 : 0.01;
			BOTH_OK(tk_adamw(&cpu, p.c, g.c, m.c, v.c, n, 1e-3, b1s[c], 0.999, 1e-8, wd,
					 step),
				tk_adamw(&gpu, p.g, g.g, m.g, v.g, n, 1e-3, b1s[c], 0.999, 1e-8, wd,
					 step),
				"adamw");
			pair_free(&g);
		}
		CHECK_PAIR("adamw m", m, 0, 0);
		CHECK_PAIR("adamw v", v, 0, 0);
		CHECK_PAIR("adamw p", p, 0, 2.5e-7);
		pair_free(&p);
		pair_free(&m);
		pair_free(&v);
	}
}

/* bitsandbytes' AdamW8bit (tk_adamw8): both backends take the same fp32
 * operations in the same order (lib/base/adamw8-common.h; fmaf where the
 * CPU has fmaf, every other operation correctly rounded on its own, the
 * block's absmax a maximum) and the same code lookup, so codes, absmax
 * and parameters must be the same bits.  8-bit state over 4097 elements
 * held transposed ([17, 241], a short last block) and 70000 elements
 * (many blocks, one all-zero), and the 32-bit path over 3001; 3 steps each
 * with gradients spanning 1e-9 to 30. */
static void *dup_bytes(struct tk_backend *be, const void *src, size_t n)
{
	void *p = tk_backend_alloc(be, n ? n : 1);
	if (p && n)
		memcpy(p, src, n);
	return p;
}

static void test_adamw8(void)
{
	NEED_GPU();
	rng_seed(12);
	const size_t ns[3] = { 4097, 70000, 3001 }, rows[3] = { 17, 0, 0 };
	const float mags[5] = { 1e-9f, 1e-3f, 1.0f, 30.0f, 2e-5f };
	for (int c = 0; c < 3; c++) {
		size_t n = ns[c], nb = (n + 255) / 256, cols = rows[c] ? n / rows[c] : 0;
		int eight = c < 2;
		struct pair p = pair_rand(n, -0.05f, 0.05f), m = pair_rand(n, 0, 0),
			    v = pair_rand(n, 0, 0);
		uint8_t *zb = calloc(n, 1);
		float *zf = calloc(nb, sizeof(float));
		uint8_t *q1c = dup_bytes(&cpu, zb, n), *q2c = dup_bytes(&cpu, zb, n);
		uint8_t *q1g = dup_bytes(&gpu, zb, n), *q2g = dup_bytes(&gpu, zb, n);
		float *a1c = dup_on(&cpu, zf, nb), *a2c = dup_on(&cpu, zf, nb);
		float *a1g = dup_on(&gpu, zf, nb), *a2g = dup_on(&gpu, zf, nb);
		TT_REQUIRE(zb && zf && q1c && q2c && q1g && q2g && a1c && a2c && a1g && a2g, "alloc");
		for (int step = 1; step <= 3; step++) {
			float *h = rand_host(n, -1, 1);
			for (size_t i = 0; i < n; i++)
				h[i] = i / 256 == 5 ? 0.0f : h[i] * mags[(i / 97 + (size_t)step) % 5];
			struct pair g = pair_of(h, n);
			free(h);
			double wd = c == 1 ? 0.0 : 0.01;
			gpu_shape("n=%zu%s %s", n, rows[c] ? " transposed" : "", eight ? "8-bit" : "32-bit");
			BOTH_OK(tk_adamw8(&cpu, p.c, g.c, eight ? q1c : NULL, q2c, a1c, a2c, m.c, v.c, n,
					  rows[c], cols, 2e-3, 0.9, 0.999, 1e-8, wd, step),
				tk_adamw8(&gpu, p.g, g.g, eight ? q1g : NULL, q2g, a1g, a2g, m.g, v.g, n,
					  rows[c], cols, 2e-3, 0.9, 0.999, 1e-8, wd, step),
				"adamw8");
			pair_free(&g);
		}
		CHECK_PAIR("adamw8 p", p, 0, 0);
		if (eight) {
			TT_CHECK(!memcmp(q1c, q1g, n) && !memcmp(q2c, q2g, n), "n %zu: codes differ", n);
			TT_CHECK(!memcmp(a1c, a1g, nb * sizeof(float)) &&
					 !memcmp(a2c, a2g, nb * sizeof(float)),
				 "n %zu: absmax differs", n);
		} else {
			CHECK_PAIR("adamw8 m", m, 0, 0);
			CHECK_PAIR("adamw8 v", v, 0, 0);
		}
		pair_free(&p);
		pair_free(&m);
		pair_free(&v);
		tk_backend_free_mem(&cpu, q1c);
		tk_backend_free_mem(&cpu, q2c);
		tk_backend_free_mem(&gpu, q1g);
		tk_backend_free_mem(&gpu, q2g);
		tk_backend_free_mem(&cpu, a1c);
		tk_backend_free_mem(&cpu, a2c);
		tk_backend_free_mem(&gpu, a1g);
		tk_backend_free_mem(&gpu, a2g);
		free(zb);
		free(zf);
	}
}

/* sum_squares over 3+ chunks, accumulating: double sums of the same float
 * squares in another order: 1e-12 relative. */
static void test_sum_squares(void)
{
	NEED_GPU();
	rng_seed(11);
	size_t n = 100003;
	struct pair x = pair_rand(n, -2, 2);
	double sc = 1.5, sg = 1.5;
	BOTH_OK(tk_sum_squares(&cpu, &sc, x.c, n), tk_sum_squares(&gpu, &sg, x.g, n),
		"sum_squares");
	TT_CHECK(fabs(sc - sg) <= 1e-12 * fabs(sc), "cuda %.17g cpu %.17g", sg, sc);
	pair_free(&x);
}

/* Plain malloc'd buffers for every argument of an op (no managed memory):
 * the backend stages them through the GPU and copies the outputs back. */
static void test_host_pointers(void)
{
	NEED_GPU();
	rng_seed(12);
	int rows = 9, dim = 45;
	size_t n = (size_t)rows * dim;
	float *x = rand_host(n, -2, 2), *w = rand_host(dim, 0.5f, 1.5f), *b = rand_host(dim, -1, 1);
	float *yc = rand_host(n, 0, 0), *yg = rand_host(n, 0, 0);
	float *mc = rand_host(rows, 0, 0), *mg = rand_host(rows, 0, 0);
	float *rc = rand_host(rows, 0, 0), *rg = rand_host(rows, 0, 0);
	BOTH_OK(tk_layernorm_fwd(&cpu, yc, mc, rc, x, w, b, rows, dim, 1e-5f),
		tk_layernorm_fwd(&gpu, yg, mg, rg, x, w, b, rows, dim, 1e-5f), "layernorm host");
	check_close("layernorm y (host buffers)", yg, yc, n, 2e-6, 1e-5);
	check_close("layernorm rstd (host buffers)", rg, rc, rows, 0, 1e-6);
	float *cc = rand_host((size_t)rows * rows, 0, 0), *cg = rand_host((size_t)rows * rows, 0, 0);
	BOTH_OK(tk_matmul(&cpu, 0, 1, rows, rows, dim, 1.0f, x, dim, x, dim, 0.0f, cc, rows),
		tk_matmul(&gpu, 0, 1, rows, rows, dim, 1.0f, x, dim, x, dim, 0.0f, cg, rows),
		"matmul host");
	check_close("matmul (host buffers)", cg, cc, (size_t)rows * rows, 1e-5, 1e-5);
	free(x), free(w), free(b), free(yc), free(yg), free(mc), free(mg), free(rc), free(rg);
	free(cc), free(cg);
}

/* The same op twice gives the same bits: nothing depends on scheduling. */
static void test_deterministic(void)
{
	NEED_GPU();
	rng_seed(13);
	int B = 2, T = 45, H = 4, KV = 2, D = 40;
	size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KV * D, nl = (size_t)B * H * T;
	struct pair pq = pair_rand(nq, -1, 1), pk = pair_rand(nk, -1, 1), pv = pair_rand(nk, -1, 1);
	float *q = pq.g, *k = pk.g, *v = pv.g;
	float *o = tk_backend_alloc(&gpu, nq * 4), *l = tk_backend_alloc(&gpu, nl * 4);
	float *dq[2], *dk[2], *dv[2];
	for (int r = 0; r < 2; r++) {
		dq[r] = tk_backend_alloc(&gpu, nq * 4);
		dk[r] = tk_backend_alloc(&gpu, nk * 4);
		dv[r] = tk_backend_alloc(&gpu, nk * 4);
		TT_REQUIRE(!tk_attention_fwd(&gpu, o, l, q, k, v, B, T, H, KV, D, NULL), "fwd");
		TT_REQUIRE(!tk_attention_bwd(&gpu, dq[r], dk[r], dv[r], q, q, k, v, o, l, B, T, H, KV,
					     D, NULL), "bwd");
	}
	TT_CHECK(!memcmp(dq[0], dq[1], nq * 4) && !memcmp(dk[0], dk[1], nk * 4) &&
			 !memcmp(dv[0], dv[1], nk * 4),
		 "attention gradients differ between two runs");
	for (int r = 0; r < 2; r++) {
		tk_backend_free_mem(&gpu, dq[r]);
		tk_backend_free_mem(&gpu, dk[r]);
		tk_backend_free_mem(&gpu, dv[r]);
	}
	pair_free(&pq), pair_free(&pk), pair_free(&pv);
	tk_backend_free_mem(&gpu, o), tk_backend_free_mem(&gpu, l);
}

/* The selector: "cpu" is the CPU; "auto" is CUDA here (a GPU is present). */
static void test_selector(void)
{
	NEED_GPU();
	struct tk_backend be;
	struct tk_diag d;
	TT_REQUIRE(tk_backend_init(&be, "cpu", 1, &d) == 0, "%s", d.msg);
	TT_CHECK(!strcmp(be.i->name, "cpu"), "%s", be.i->name);
	tk_backend_free(&be);
	TT_REQUIRE(tk_backend_init(&be, "auto", 1, &d) == 0, "%s", d.msg);
	TT_CHECK(!strcmp(be.i->name, "cuda") && !d.msg[0], "%s: %s", be.i->name, d.msg);
	tk_backend_free(&be);
	TT_CHECK(tk_backend_init(&be, "cuda:1023", 1, &d) == TK_E_DEVICE, "cuda:1023");
}

int main(void)
{
	gpu_setup();
	TT_RUN(test_matmul);
	TT_RUN(test_layernorm);
	TT_RUN(test_rmsnorm);
	TT_RUN(test_activations);
	TT_RUN(test_simple);
	TT_RUN(test_rope);
	TT_RUN(test_attention);
	TT_RUN(test_embedding);
	TT_RUN(test_cross_entropy);
	TT_RUN(test_adamw);
	TT_RUN(test_adamw8);
	TT_RUN(test_sum_squares);
	TT_RUN(test_host_pointers);
	TT_RUN(test_deterministic);
	TT_RUN(test_selector);
	gpu_teardown();
	return tt_done();
}

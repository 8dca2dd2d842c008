/* Throughput figures of the device backend for tests/run-gpu's table:
 * SGEMM GFLOP/s at a few sizes and causal attention forward and backward
 * GFLOP/s, each the best of a few timed runs after a warm-up.  Every
 * result is also checked against the CPU backend on a slice (the first
 * rows), so that a fast wrong kernel does not pass as a figure.
 * UNVERIFIED on a GPU: compiled, and run only with TK_GPU_DUT=cpu.
 */
#include "gpu.h"

/* Smaller sizes when the device under test is the CPU backend, so that
 * make test stays quick. */
static int on_cpu(void)
{
	const char *d = getenv("TK_GPU_DUT");
	return d && !strcmp(d, "cpu");
}

/* Seconds of the fastest of reps calls of one op (after a warm-up); the
 * ops return with the device idle (backend-cuda.cu syncs per op). */
#define BEST_OF(reps, secs, rc, call)                                   \
	do {                                                            \
		(rc) = (call);                                          \
		(secs) = 1e30;                                          \
		for (int r_ = 0; r_ < (reps) && !(rc); r_++) {          \
			double t0_ = gpu_now();                         \
			(rc) = (call);                                  \
			double t1_ = gpu_now() - t0_;                   \
			if (t1_ < (secs))                               \
				(secs) = t1_;                           \
		}                                                       \
	} while (0)

static void test_sgemm(void)
{
	NEED_GPU();
	rng_seed(11);
	int gpu_sizes[] = { 512, 2048, 4096 }, cpu_sizes[] = { 128, 256, 512 };
	int *sizes = on_cpu() ? cpu_sizes : gpu_sizes;
	for (int si = 0; si < 3; si++) {
		int n = sizes[si];
		size_t nn = (size_t)n * n;
		float *a = rand_host(nn, -1, 1), *b = rand_host(nn, -1, 1);
		TT_REQUIRE(a && b, "out of host memory");
		float *ag = dup_on(&gpu, a, nn), *bg = dup_on(&gpu, b, nn), *cg = dup_on(&gpu, a, nn);
		TT_REQUIRE(ag && bg && cg, "cannot allocate 3 x %dx%d on the device", n, n);
		double secs;
		int rc;
		BEST_OF(5, secs, rc, tk_matmul(&gpu, 0, 0, n, n, n, 1.0f, ag, n, bg, n, 0.0f, cg, n));
		TT_REQUIRE(!rc, "matmul %d: %d (%s)", n, rc, tk_backend_cuda_last_error(&gpu));
		/* the first 8 rows against the CPU's */
		int rows = 8;
		float *ac = dup_on(&cpu, a, (size_t)rows * n), *bc = dup_on(&cpu, b, nn);
		float *cc = dup_on(&cpu, a, (size_t)rows * n);
		TT_REQUIRE(ac && bc && cc, "out of memory");
		rc = tk_matmul(&cpu, 0, 0, rows, n, n, 1.0f, ac, n, bc, n, 0.0f, cc, n);
		TT_REQUIRE(!rc, "cpu matmul: %d", rc);
		char shape[64];
		snprintf(shape, sizeof(shape), "%dx%dx%d", n, n, n);
		gpu_shape("sgemm %s, first %d rows", shape, rows);
		/* k up to 4096 terms of |a b| < 1: the 1e-5 of test-cuda-ops.c's
		 * k = 45 scaled by sqrt(k / 45) for the summation order, rounded up */
		double atol = 1e-5 * ceil(sqrt(n / 45.0));
		check_close("sgemm", cg, cc, (size_t)rows * n, atol, 1e-5);
		gpu_perf("sgemm GFLOP/s", shape, 2.0 * n * n * (double)n / secs * 1e-9, "GFLOP/s");
		tk_backend_free_mem(&cpu, ac);
		tk_backend_free_mem(&cpu, bc);
		tk_backend_free_mem(&cpu, cc);
		tk_backend_free_mem(&gpu, ag);
		tk_backend_free_mem(&gpu, bg);
		tk_backend_free_mem(&gpu, cg);
		free(a);
		free(b);
	}
}

static void test_attention(void)
{
	NEED_GPU();
	rng_seed(12);
	int B = 4, T = 1024, H = 12, D = 64;
	if (on_cpu())
		B = 1, T = 128, H = 4;
	size_t nq = (size_t)B * T * H * D, nl = (size_t)B * H * T;
	struct pair q = pair_rand(nq, -2, 2), k = pair_rand(nq, -2, 2), v = pair_rand(nq, -1, 1);
	struct pair out = pair_rand(nq, 0, 0), lse = pair_rand(nl, 0, 0), dout = pair_rand(nq, -1, 1);
	struct pair dq = pair_rand(nq, 0, 0), dk = pair_rand(nq, 0, 0), dv = pair_rand(nq, 0, 0);
	TT_REQUIRE(q.g && k.g && v.g && out.g && lse.g && dout.g && dq.g && dk.g && dv.g && q.c &&
			   k.c && v.c && out.c && lse.c && dout.c && dq.c && dk.c && dv.c,
		   "out of memory");
	char shape[64];
	snprintf(shape, sizeof(shape), "B%d T%d H%d D%d causal", B, T, H, D);
	double fwd, bwd;
	int rc;
	BEST_OF(5, fwd, rc, tk_attention_fwd(&gpu, out.g, lse.g, q.g, k.g, v.g, B, T, H, H, D, NULL));
	TT_REQUIRE(!rc, "attention_fwd: %d (%s)", rc, tk_backend_cuda_last_error(&gpu));
	BEST_OF(5, bwd, rc,
		tk_attention_bwd(&gpu, dq.g, dk.g, dv.g, dout.g, q.g, k.g, v.g, out.g, lse.g, B, T,
				 H, H, D, NULL));
	TT_REQUIRE(!rc, "attention_bwd: %d (%s)", rc, tk_backend_cuda_last_error(&gpu));
	rc = tk_attention_fwd(&cpu, out.c, lse.c, q.c, k.c, v.c, B, T, H, H, D, NULL);
	TT_REQUIRE(!rc, "cpu attention_fwd: %d", rc);
	rc = tk_attention_bwd(&cpu, dq.c, dk.c, dv.c, dout.c, q.c, k.c, v.c, out.c, lse.c, B, T, H,
			      H, D, NULL);
	TT_REQUIRE(!rc, "cpu attention_bwd: %d", rc);
	/* the tolerances of test-cuda-ops.c's attention cases (T <= 70); the
	 * backward sums over up to T keys, so it gets sqrt(T / 70) times more */
	gpu_shape("%s", shape);
	CHECK_PAIR("attention out", out, 2e-5, 1e-5);
	double g = 1e-4 * ceil(sqrt(T / 70.0));
	CHECK_PAIR("attention dq", dq, g, 1e-4);
	CHECK_PAIR("attention dk", dk, g, 1e-4);
	CHECK_PAIR("attention dv", dv, g, 1e-4);
	/* causal: QK^T and PV over half the T x T pairs, 2 flops a term; the
	 * backward does 5 such products (recomputed P, dV, dP, dQ, dK) */
	double f = 2.0 * 2.0 * B * H * (double)T * T * D / 2.0;
	gpu_perf("attention fwd GFLOP/s", shape, f / fwd * 1e-9, "GFLOP/s");
	gpu_perf("attention bwd GFLOP/s", shape, 2.5 * f / bwd * 1e-9, "GFLOP/s");
	struct pair *ps[] = { &q, &k, &v, &out, &lse, &dout, &dq, &dk, &dv };
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
		pair_free(ps[i]);
}

int main(void)
{
	gpu_setup();
	TT_RUN(test_sgemm);
	TT_RUN(test_attention);
	gpu_teardown();
	return tt_done();
}

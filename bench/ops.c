/* ops.c - timings of the CPU backend: OpenBLAS SGEMM at GPT-2-small shapes,
 * attention forward + backward, and whether OpenBLAS's threads and the
 * OpenMP regions slow each other down when they take turns.
 *
 *	make build/bench-ops && build/bench-ops [THREADS...]
 *
 * (make bench builds and runs it.)
 *
 * Prints one line per measurement: the best of several repetitions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 64-byte aligned, as tk_backend_alloc gives: with AVX-512, loads that
 * straddle cache lines made attention's backward 1.5-2.5x slower. */
static float *falloc(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, 64, n * sizeof(float))) {
		fprintf(stderr, "bench-ops: out of memory\n");
		exit(1);
	}
	return p;
}

static float *randn(size_t n, unsigned seed)
{
	float *x = falloc(n);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		x[i] = (float)((seed >> 8) * (1.0 / 16777216.0) - 0.5);
	}
	return x;
}

/* Best time of reps calls of one GEMM (ta, tb) with op(A) [m,k], op(B) [k,n]. */
static double time_gemm(struct tk_backend *be, int ta, int tb, int m, int n, int k, int reps)
{
	float *a = randn((size_t)m * k, 1), *b = randn((size_t)k * n, 2);
	float *c = randn((size_t)m * n, 3);
	double best = 1e30;
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		tk_matmul(be, ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n);
		double t = now() - t0;
		best = t < best ? t : best;
	}
	free(a), free(b), free(c);
	return best;
}

static void bench_attention(struct tk_backend *be, int B, int T, int H, int KV, int D)
{
	size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KV * D;
	float *q = randn(nq, 4), *k = randn(nk, 5), *v = randn(nk, 6), *dout = randn(nq, 7);
	float *out = falloc(nq), *lse = falloc((size_t)B * H * T);
	float *dq = falloc(nq), *dk = falloc(nk), *dv = falloc(nk);
	double bf = 1e30, bb = 1e30;
	for (int r = 0; r < 5; r++) {
		double t0 = now();
		tk_attention_fwd(be, out, lse, q, k, v, B, T, H, KV, D);
		double t1 = now();
		tk_attention_bwd(be, dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KV, D);
		double t2 = now();
		bf = t1 - t0 < bf ? t1 - t0 : bf;
		bb = t2 - t1 < bb ? t2 - t1 : bb;
	}
	/* causal: about half of the T x T scores; fwd QK^T and PV, bwd twice that
	 * plus the recomputed scores */
	double flop = 2.0 * B * H * (T * (T + 1) / 2.0) * D;
	printf("attention B=%d T=%d heads=%d/%d head_dim=%d threads=%d: fwd %.1f ms (%.1f "
	       "GFLOP/s) bwd %.1f ms (%.1f GFLOP/s) total %.1f ms\n",
	       B, T, H, KV, D, be->threads, bf * 1e3, 2 * flop / bf / 1e9, bb * 1e3,
	       5 * flop / bb / 1e9, (bf + bb) * 1e3);
	free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
}

/* Cross-entropy with its gradient over GPT-2's vocabulary. */
static void bench_ce(struct tk_backend *be, int rows, int vocab)
{
	float *x = randn((size_t)rows * vocab, 8), *w = falloc((size_t)rows * vocab);
	int32_t *tg = malloc(rows * sizeof(int32_t));
	for (int r = 0; r < rows; r++)
		tg[r] = (r * 7919) % vocab;
	double best = 1e30, loss = 0;
	for (int r = 0; r < 5; r++) {
		memcpy(w, x, (size_t)rows * vocab * 4);
		double t0 = now();
		tk_cross_entropy(be, w, tg, rows, vocab, 1.0f / rows, 1, &loss);
		double t = now() - t0;
		best = t < best ? t : best;
	}
	printf("cross_entropy %dx%d with grad threads=%d: %.1f ms\n", rows, vocab, be->threads,
	       best * 1e3);
	free(x), free(w), free(tg);
}

/* A GEMM and then an OpenMP op, in turns, against the two alone. */
static void bench_turns(struct tk_backend *be)
{
	int m = 1024, n = 3072, k = 768, reps = 20;
	size_t ne = (size_t)m * n;
	float *a = randn((size_t)m * k, 1), *b = randn((size_t)k * n, 2), *c = randn(ne, 3);
	float *y = falloc(ne);
	double tg = 0, te = 0, tt = 0;
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		tk_matmul(be, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
		tg += now() - t0;
	}
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		tk_gelu_fwd(be, y, c, ne);
		te += now() - t0;
	}
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		tk_matmul(be, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
		tk_gelu_fwd(be, y, c, ne);
		tt += now() - t0;
	}
	printf("turns threads=%d: gemm %.2f ms + gelu %.2f ms = %.2f ms alone, %.2f ms in turns "
	       "(%+.1f%%)\n",
	       be->threads, tg / reps * 1e3, te / reps * 1e3, (tg + te) / reps * 1e3,
	       tt / reps * 1e3, (tt / (tg + te) - 1) * 100);
	free(a), free(b), free(c), free(y);
}

int main(int argc, char **argv)
{
	int list[8] = { 1, 2 }, nl = 2;
	if (argc > 1) {
		nl = 0;
		for (int i = 1; i < argc && nl < 8; i++)
			list[nl++] = atoi(argv[i]);
	}
	for (int i = 0; i < nl; i++) {
		struct tk_backend be;
		struct tk_diag d;
		if (tk_backend_cpu_init(&be, list[i], &d)) {
			fprintf(stderr, "bench-ops: %s\n", d.msg);
			return 1;
		}
		static const struct {
			int ta, tb, m, n, k;
			const char *what;
		} g[] = {
			{ 0, 0, 1024, 3072, 768, "x @ W  (fwd)   " },
			{ 0, 1, 1024, 768, 3072, "dy @ W^T (dx)   " },
			{ 1, 0, 768, 3072, 1024, "x^T @ dy (dW)   " },
		};
		for (size_t j = 0; j < sizeof(g) / sizeof(g[0]); j++) {
			time_gemm(&be, g[j].ta, g[j].tb, g[j].m, g[j].n, g[j].k, 2); /* warm */
			double t = time_gemm(&be, g[j].ta, g[j].tb, g[j].m, g[j].n, g[j].k, 10);
			printf("sgemm %s %dx%dx%d threads=%d: %.2f ms, %.1f GFLOP/s\n", g[j].what,
			       g[j].m, g[j].n, g[j].k, be.threads, t * 1e3,
			       2.0 * g[j].m * g[j].n * g[j].k / t / 1e9);
		}
		bench_attention(&be, 4, 256, 12, 12, 64);
		bench_ce(&be, 1024, 50257);
		bench_turns(&be);
		tk_backend_free(&be);
	}
	return 0;
}

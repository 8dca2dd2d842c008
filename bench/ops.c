/* ops.c - timings of the CPU backend: OpenBLAS SGEMM at GPT-2-small shapes,
 * (the lm head's chunks included, of tk_model_chunk_rows rows for a batch
 * of 1024 tokens), attention forward + backward,
 * cross-entropy, the other ops of a training step and AdamW at its sizes,
 * and whether OpenBLAS's threads and the OpenMP regions slow each other
 * down when they take turns; decode-step matrix-vector products (fp32 and
 * NF4) against the memory's read bandwidth; QLoRA's 4-bit matmuls against
 * SGEMM on the same shapes; where --bf16 runs on bf16 hardware (bf16.h),
 * the bf16 GEMM at the training shapes, alone and as tk's matmul calls it
 * (with its conversion of fp32 operands to bf16).
 *
 *	make build/bench-ops && build/bench-ops [decode|qlora|train] [THREADS...]
 *
 * (make bench builds and runs it all.)
 *
 * Prints one line per measurement: the best of several repetitions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/quant.h"
#include "base/math-common.h"
#include "compute/backend.h"
#include "compute/bf16.h"
#include "compute/cpu.h"
#include "compute/pool.h"
#include "model/model-int.h" /* tk_qtile_rows, tk_model_chunk_rows */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of every thread of the process: on a machine shared with
 * other work, time a thread spent waiting for a core is not in it. */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The best CPU seconds of the last read_bandwidth/time_gemv/time_qgemv. */
static double best_cpu;

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

/* The bf16 GEMM at a training shape, best of reps: *raw from operands
 * already bf16 (the rate oneDNN reaches), the return value through
 * tk_matmul at TK_PREC_BF16 (fp32 operands converted first, as --bf16
 * runs).  0 when the hw path is not available. */
static double time_bf16(struct tk_backend *be, int ta, int tb, int m, int n, int k, int reps,
			double *raw)
{
	struct tk_diag d;
	*raw = 0;
	if (tk_bf16_path() != TK_BF16_HW || tk_bf16_check(&d) ||
	    tk_backend_set_prec(be, TK_PREC_BF16, &d))
		return 0;
	size_t na = (size_t)m * k, nb = (size_t)k * n;
	float *a = randn(na, 1), *b = randn(nb, 2), *c = randn((size_t)m * n, 3);
	unsigned short *ha = malloc(na * 2), *hb = malloc(nb * 2);
	if (!ha || !hb) {
		fprintf(stderr, "bench-ops: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < na; i++)
		ha[i] = tk_bf16_code(a[i]);
	for (size_t i = 0; i < nb; i++)
		hb[i] = tk_bf16_code(b[i]);
	double best = 1e30, braw = 1e30;
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		tk_matmul(be, ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n);
		double t1 = now();
		if (tk_bf16_gemm(ta, tb, m, n, k, 1.0f, ha, ta ? m : k, hb, tb ? k : n, 0.0f, c, n,
				 be->threads, &d)) {
			fprintf(stderr, "bench-ops: %s\n", d.msg);
			exit(1);
		}
		double t2 = now();
		best = t1 - t0 < best ? t1 - t0 : best;
		braw = t2 - t1 < braw ? t2 - t1 : braw;
	}
	tk_backend_set_prec(be, TK_PREC_FP32, &d);
	free(a), free(b), free(c), free(ha), free(hb);
	*raw = braw;
	return best;
}

/* window > 0: a sliding window (struct tk_attn_opts), whose masked key
 * tiles the backend skips. */
static void bench_attention(struct tk_backend *be, int B, int T, int H, int KV, int D,
			    int window)
{
	const struct tk_attn_opts ao = { 0.0f, window, 0.0f, 0 };
	size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KV * D;
	float *q = randn(nq, 4), *k = randn(nk, 5), *v = randn(nk, 6), *dout = randn(nq, 7);
	float *out = falloc(nq), *lse = falloc((size_t)B * H * T);
	float *dq = falloc(nq), *dk = falloc(nk), *dv = falloc(nk);
	double bf = 1e30, bb = 1e30;
	for (int r = 0; r < 5; r++) {
		double t0 = now();
		tk_attention_fwd(be, out, lse, q, k, v, B, T, H, KV, D, &ao);
		double t1 = now();
		tk_attention_bwd(be, dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KV, D, &ao);
		double t2 = now();
		bf = t1 - t0 < bf ? t1 - t0 : bf;
		bb = t2 - t1 < bb ? t2 - t1 : bb;
	}
	/* causal: the scores each row keeps (about half of T x T, or T x window);
	 * fwd QK^T and PV, bwd twice that plus the recomputed scores */
	double kept = 0.0;
	for (int t = 0; t < T; t++)
		kept += window > 0 && t + 1 > window ? window : t + 1;
	double flop = 2.0 * B * H * kept * D;
	printf("attention B=%d T=%d heads=%d/%d head_dim=%d window=%d threads=%d: fwd %.1f ms "
	       "(%.1f GFLOP/s) bwd %.1f ms (%.1f GFLOP/s) total %.1f ms\n",
	       B, T, H, KV, D, window, be->threads, bf * 1e3, 2 * flop / bf / 1e9, bb * 1e3,
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
		tk_cross_entropy(be, w, tg, rows, vocab, 1.0f / rows, 1, &loss, 0.0f);
		double t = now() - t0;
		best = t < best ? t : best;
	}
	printf("cross_entropy %dx%d with grad threads=%d: %.1f ms\n", rows, vocab, be->threads,
	       best * 1e3);
	free(x), free(w), free(tg);
}

/* The other ops of a GPT-2-small training step, at its shapes (B*T = 1024
 * rows, hidden 768, MLP 3072), and AdamW over its 124 M parameters. */
static void bench_small_ops(struct tk_backend *be)
{
	int rows = 1024, dim = 768, ff = 3072, reps = 10;
	size_t nf = (size_t)rows * ff, np = 124439808;
	float *x = randn(nf, 11), *y = falloc(nf), *dy = randn(nf, 12), *w = randn(ff, 13);
	float *b = randn(ff, 14), *mean = falloc(rows), *rstd = falloc(rows);
	float *dw = randn(ff, 15), *db = randn(ff, 16);
	double t[8];
	for (int i = 0; i < 8; i++)
		t[i] = 1e30;
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		tk_layernorm_fwd(be, y, mean, rstd, x, w, b, rows, dim, 1e-5f);
		double t1 = now();
		tk_layernorm_bwd(be, y, dw, db, dy, x, w, mean, rstd, rows, dim);
		double t2 = now();
		tk_gelu_fwd(be, y, x, nf);
		double t3 = now();
		tk_gelu_bwd(be, y, x, dy, nf);
		double t4 = now();
		tk_bias_add(be, y, b, rows, ff);
		double t5 = now();
		tk_bias_grad(be, db, dy, rows, ff);
		double t6 = now();
		tk_axpy(be, y, 0.5f, dy, (size_t)rows * dim);
		double t7 = now();
		double d[7] = { t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6 };
		for (int i = 0; i < 7; i++)
			t[i] = d[i] < t[i] ? d[i] : t[i];
	}
	printf("ops threads=%d: layernorm %dx%d fwd %.3f ms bwd %.3f ms; gelu %dx%d fwd %.3f ms "
	       "bwd %.3f ms; bias %dx%d add %.3f ms grad %.3f ms; axpy %dx%d %.3f ms\n",
	       be->threads, rows, dim, t[0] * 1e3, t[1] * 1e3, rows, ff, t[2] * 1e3, t[3] * 1e3,
	       rows, ff, t[4] * 1e3, t[5] * 1e3, rows, dim, t[6] * 1e3);
	free(x), free(y), free(dy), free(w), free(b), free(mean), free(rstd), free(dw), free(db);
	float *p = randn(np, 17), *g = randn(np, 18), *m = falloc(np), *v = falloc(np);
	memset(m, 0, np * sizeof(float));
	memset(v, 0, np * sizeof(float));
	double best = 1e30, ss = 0;
	for (int r = 0; r < 4; r++) {
		double t0 = now();
		tk_adamw(be, p, g, m, v, np, 1e-4, 0.9, 0.999, 1e-8, 0.01, r + 1);
		double t1 = now();
		best = t1 - t0 < best ? t1 - t0 : best;
	}
	double bs = 1e30;
	for (int r = 0; r < 4; r++) {
		double t0 = now();
		tk_sum_squares(be, &ss, g, np);
		double t1 = now();
		bs = t1 - t0 < bs ? t1 - t0 : bs;
	}
	printf("adamw %zu params threads=%d: %.1f ms (%.1f GB/s); sum_squares %.1f ms\n", np,
	       be->threads, best * 1e3, 28.0 * np / best / 1e9, bs * 1e3);
	free(p), free(g), free(m), free(v);
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

/* ---- decode: matrix-vector products at the memory bound ---- */

/* Weights per measurement: enough copies of a matrix to fill this many
 * bytes, well past the last-level cache (48 MiB on the Xeon here), so
 * that every pass reads them from memory as a decode step does. */
#define DECODE_BYTES (256UL << 20)

/* The sum of a[0 .. n) (n a multiple of 64) with 4 independent vector
 * accumulators of the widest registers the CPU has: loads, not the adds'
 * latency, limit it (one scalar chain adds 16 bytes per 4 cycles). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx512f"))) static float sum512(const float *a, size_t n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	for (size_t i = 0; i < n; i += 64) {
		s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
		s1 = _mm512_add_ps(s1, _mm512_load_ps(a + i + 16));
		s2 = _mm512_add_ps(s2, _mm512_load_ps(a + i + 32));
		s3 = _mm512_add_ps(s3, _mm512_load_ps(a + i + 48));
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target("avx2"))) static float sum256(const float *a, size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	for (size_t i = 0; i < n; i += 32) {
		s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
		s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
		s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16));
		s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
	}
	float t[8];
	_mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static float sum_read(const float *a, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (tk_cpu_isa_best() == TK_CPU_ISA_AVX512)
		return sum512(a, n);
	if (tk_cpu_isa_best() == TK_CPU_ISA_AVX2)
		return sum256(a, n);
#endif
	float s = 0;
	for (size_t i = 0; i < n; i++)
		s += a[i];
	return s;
}

/* 256 KiB of floats: one iteration of read_pass. */
#define READ_CHUNK (1 << 16)

struct read_job {
	const float *a;
	float sums[64]; /* per thread */
};

static void read_chunk(void *p, int c, int tid)
{
	struct read_job *j = p;
	j->sums[tid % 64] += sum_read(j->a + (size_t)c * READ_CHUNK, READ_CHUNK);
}

/* One sum over a[0 .. n) (n a multiple of READ_CHUNK floats) with nt
 * threads taking a chunk at a time as they come, on tk's decode pool as the
 * GEMV loops run (on a shared machine a thread that loses its core does
 * not hold up the others; and no OpenMP team is left spinning on the cores
 * the pool's GEMV then needs: with an OpenMP pass here, tk's fp32 m = 1
 * loops measured 60-83% of the bound on a 2-core Zen 3, 90-107% with
 * OMP_WAIT_POLICY=passive); its seconds, and its CPU seconds in *cpu. */
static double read_pass(const float *a, size_t n, int nt, double *cpu)
{
	struct read_job j = { a, { 0 } };
	double t0 = now(), c0 = cpu_now(), s = 0;
	tk_pool_for(nt, (int)(n / READ_CHUNK), read_chunk, &j);
	double t = now() - t0;
	*cpu = cpu_now() - c0;
	for (int i = 0; i < 64; i++)
		s += j.sums[i];
	if (s == 1234.5) /* keeps the sum */
		printf(" ");
	return t;
}

/* Read bandwidth: the best of 6 sums over the n floats of a (512 MiB). */
static double read_bandwidth(const float *a, size_t n, int nt)
{
	double best = 1e30;
	best_cpu = 1e30;
	for (int r = 0; r < 6; r++) {
		double c, t = read_pass(a, n, nt, &c);
		best = t < best ? t : best;
		best_cpu = c < best_cpu ? c : best_cpu;
	}
	return n * sizeof(float) / best;
}

/* The read bound a product's passes are held to: a sum over as many
 * bytes as a pass reads (at least 64 MiB, past the last-level cache),
 * timed just before each pass, best of as many.  On a machine shared
 * with other work, bandwidth measured once per shape swung 41-72 GB/s
 * (2 threads) between shapes of one run, and rows timed in a quiet spell
 * against a bound taken in a busy one read over 100%: taken in turns,
 * the pass and its bound see the same machine. */
struct bound {
	const float *a; /* the floats summed: enough for bytes */
	size_t bytes;
	double best, best_cpu; /* seconds: the best sum, its best CPU seconds */
};

static void bound_pass(struct bound *b, int nt)
{
	size_t n = (b->bytes / sizeof(float) + READ_CHUNK - 1) & ~(size_t)(READ_CHUNK - 1);
	double c, t = read_pass(b->a, n, nt, &c);
	b->best = t < b->best ? t : b->best;
	b->best_cpu = c < b->best_cpu ? c : b->best_cpu;
}

/* Best of reps passes of m rows through every copy of an fp32 [n, k],
 * each after a pass of the bound *bd (reset here). */
static double time_gemv(struct tk_backend *be, float **w, int nw, int m, int n, int k,
			int reps, struct bound *bd)
{
	float *x = randn((size_t)m * k, 22), *y = falloc((size_t)m * n);
	double best = 1e30;
	best_cpu = 1e30;
	bd->best = bd->best_cpu = 1e30;
	for (int r = 0; r < reps; r++) {
		bound_pass(bd, be->threads);
		double t0 = now(), c0 = cpu_now();
		for (int j = 0; j < nw; j++)
			tk_matmul(be, 0, 1, m, n, k, 1.0f, x, k, w[j], k, 0.0f, y, n);
		double t = now() - t0, c = cpu_now() - c0;
		best = t < best ? t : best;
		best_cpu = c < best_cpu ? c : best_cpu;
	}
	free(x), free(y);
	return best;
}

static double time_qgemv(struct tk_backend *be, struct tk_qweight *q, int nq, int m, int reps,
			 struct bound *bd)
{
	int n = (int)q[0].rows, k = (int)q[0].cols;
	float *x = randn((size_t)m * k, 23), *y = falloc((size_t)m * n);
	double best = 1e30;
	best_cpu = 1e30;
	bd->best = bd->best_cpu = 1e30;
	for (int r = 0; r < reps; r++) {
		bound_pass(bd, be->threads);
		double t0 = now(), c0 = cpu_now();
		for (int j = 0; j < nq; j++)
			tk_qmatmul(be, &q[j], 0, n, m, x, y, n, 0.0f);
		double t = now() - t0, c = cpu_now() - c0;
		best = t < best ? t : best;
		best_cpu = c < best_cpu ? c : best_cpu;
	}
	free(x), free(y);
	return best;
}

/* A copy of q with buffers of its own. */
static void qweight_dup(struct tk_qweight *to, const struct tk_qweight *q)
{
	void **pf[TK_QWEIGHT_NBUF], **pt[TK_QWEIGHT_NBUF];
	size_t bytes[TK_QWEIGHT_NBUF];
	*to = *q;
	tk_qweight_bufs((struct tk_qweight *)q, pf, bytes);
	tk_qweight_bufs(to, pt, bytes);
	for (int i = 0; i < TK_QWEIGHT_NBUF; i++)
		if (*pf[i]) {
			*pt[i] = malloc(bytes[i]);
			memcpy(*pt[i], *pf[i], bytes[i]);
		}
}

/* fp32 and NF4 (blocks of 64, double quantization: bitsandbytes' QLoRA
 * default) decode products with 1 and 8 rows, tk's own loops at each
 * instruction-set level this CPU runs, and OpenBLAS (SGEMV for 1 row, SGEMM
 * for 8: the path before them) for fp32; GB/s of weights read, against
 * the read bound taken in turns with the row's passes (struct bound), its
 * GB/s in brackets; the run's best and worst bound at the end. */
static void bench_decode(struct tk_backend *be)
{
	static const struct {
		int n, k;
		const char *what;
	} sh[] = {
		{ 1536, 576, "135M gate/up" },  { 576, 1536, "135M down" },
		{ 4096, 4096, "7B q/k/v/o" },   { 4096, 11008, "7B down" },
	};
	const int reps = 8;
	char *saved = getenv("TK_CPU_ISA") ? strdup(getenv("TK_CPU_ISA")) : NULL;
	const size_t nbw = (512UL << 20) / sizeof(float);
	float *bwa = randn(nbw, 21);
	double bw = read_bandwidth(bwa, nbw, be->threads), bwc = 512.0 * (1 << 20) / best_cpu;
	double lo = 1e30, hi = 0;
	printf("decode threads=%d: read bandwidth %.2f GB/s, %.2f GB per CPU second (best of 6 sums "
	       "over 512 MiB); %s\n", be->threads, bw / 1e9, bwc / 1e9, tk_cpu_describe());
	for (size_t s = 0; s < sizeof(sh) / sizeof(sh[0]); s++) {
		int n = sh[s].n, k = sh[s].k;
		size_t bytes = (size_t)n * k * sizeof(float);
		int nw = (int)((DECODE_BYTES + bytes - 1) / bytes);
		float **w = malloc(nw * sizeof(*w));
		struct bound bd = { bwa, (size_t)nw * bytes, 0, 0 };
		for (int j = 0; j < nw; j++)
			w[j] = randn((size_t)n * k, 30 + j);
		for (int m = 1; m <= 8; m += 7)
			for (int isa = (int)tk_cpu_isa_best(); isa >= 0; isa--) {
				setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
				time_gemv(be, w, nw, m, n, k, 1, &bd);
				double t = time_gemv(be, w, nw, m, n, k, reps, &bd);
				double gbs = (double)bytes * nw / t, gbc = (double)bytes * nw / best_cpu;
				double b = bd.bytes / bd.best, bc = bd.bytes / bd.best_cpu;
				lo = b < lo ? b : lo, hi = b > hi ? b : hi;
				printf("gemv fp32 %-13s %5dx%-5d m=%d %-8s: %7.1f us/matrix %6.2f GB/s "
				       "= %3.0f%% of read bandwidth (%.1f); per CPU second %3.0f%%\n",
				       sh[s].what, n, k, m, isa ? tk_cpu_isa_name(isa) : "openblas",
				       t / nw * 1e6, gbs / 1e9, 100 * gbs / b, b / 1e9, 100 * gbc / bc);
			}
		struct tk_qweight q0;
		tk_qweight_quantize4(&q0, w[0], n, k, TK_QK_NF4, 64, 1, be->threads, NULL);
		for (int j = 0; j < nw; j++)
			free(w[j]);
		free(w);
		size_t qb = tk_qweight_bytes(&q0);
		int nq = (int)((DECODE_BYTES / 4 + qb - 1) / qb);
		struct tk_qweight *q = malloc(nq * sizeof(*q));
		for (int j = 0; j < nq; j++)
			qweight_dup(&q[j], &q0);
		bd.bytes = (size_t)nq * qb;
		for (int m = 1; m <= 8; m += 7)
			for (int isa = (int)tk_cpu_isa_best(); isa >= 0; isa--) {
				setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
				time_qgemv(be, q, nq, m, 1, &bd);
				double t = time_qgemv(be, q, nq, m, reps, &bd);
				double gbs = (double)qb * nq / t, gbc = (double)qb * nq / best_cpu;
				double b = bd.bytes / bd.best, bc = bd.bytes / bd.best_cpu;
				lo = b < lo ? b : lo, hi = b > hi ? b : hi;
				printf("gemv nf4  %-13s %5dx%-5d m=%d %-8s: %7.1f us/matrix %6.2f GB/s "
				       "= %3.0f%% of read bandwidth (%.1f); per CPU second %3.0f%%\n",
				       sh[s].what, n, k, m,
				       isa ? tk_cpu_isa_name(isa) : "generic", t / nq * 1e6,
				       gbs / 1e9, 100 * gbs / b, b / 1e9, 100 * gbc / bc);
			}
		for (int j = 0; j < nq; j++)
			tk_qweight_free(&q[j]);
		free(q);
		tk_qweight_free(&q0);
	}
	printf("decode threads=%d: read bound in turns with the rows %.2f to %.2f GB/s\n",
	       be->threads, lo / 1e9, hi / 1e9);
	free(bwa);
	if (saved)
		setenv("TK_CPU_ISA", saved, 1);
	else
		unsetenv("TK_CPU_ISA");
	free(saved);
}

/* ---- QLoRA: 4-bit matmuls of training against SGEMM ---- */

/* y [M, N] = x [M, K] W^T and dx [M, K] = dy [M, N] W for an NF4 W [N, K],
 * the way lib/model/model-linear.c runs them (tr rows of W dequantized at
 * a time, one GEMM per tile), against one SGEMM of the same shape on an
 * fp32 W, best of reps; tr = 0: TK_QTILE floats of rows (model-linear.c's
 * tile before TK_QTILE_ROWS), -1: tk_qtile_rows (its tile now). */
static void bench_qlora_shape(struct tk_backend *be, int M, int N, int K, int tr, int reps)
{
	float *w = randn((size_t)N * K, 40), *x = randn((size_t)M * K, 41);
	float *dy = randn((size_t)M * N, 42), *y = falloc((size_t)M * N);
	float *dx = falloc((size_t)M * K);
	if (!tr)
		tr = (int)(TK_QTILE / (unsigned)K);
	else if (tr < 0)
		tr = tk_qtile_rows(K);
	tr = tr < 1 ? 1 : tr > N ? N : tr;
	float *tile = falloc((size_t)tr * K);
	struct tk_qweight q;
	tk_qweight_quantize4(&q, w, N, K, TK_QK_NF4, 64, 1, be->threads, NULL);
	double t[5] = { 1e30, 1e30, 1e30, 1e30, 1e30 };
	for (int r = 0; r < reps + 1; r++) {
		double t0 = now();
		tk_matmul(be, 0, 1, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
		double t1 = now();
		tk_matmul(be, 0, 0, M, K, N, 1.0f, dy, N, w, K, 0.0f, dx, K);
		double t2 = now(), tdq = 0;
		for (int t0r = 0; t0r < N; t0r += tr) {
			int n = N - t0r < tr ? N - t0r : tr;
			double a = now();
			tk_dequant_rows(be, &q, t0r, n, tile, NULL);
			tdq += now() - a;
			tk_matmul(be, 0, 1, M, n, K, 1.0f, x, K, tile, K, 0.0f, y + t0r, N);
		}
		double t3 = now();
		for (int t0r = 0; t0r < N; t0r += tr) {
			int n = N - t0r < tr ? N - t0r : tr;
			tk_dequant_rows(be, &q, t0r, n, tile, NULL);
			tk_matmul(be, 0, 0, M, K, n, 1.0f, dy + t0r, N, tile, K, t0r ? 1.0f : 0.0f,
				  dx, K);
		}
		double t4 = now();
		double d[5] = { t1 - t0, t2 - t1, t3 - t2, t4 - t3, tdq };
		for (int i = 0; r && i < 5; i++)
			t[i] = d[i] < t[i] ? d[i] : t[i];
	}
	double fl = 2.0 * M * N * K;
	printf("qlora %5dx%-5d M=%d threads=%d tile %4d rows: fwd sgemm %.1f GFLOP/s, nf4 %.1f "
	       "GFLOP/s (%.0f%% of sgemm; dequant %.0f%% of it); bwd dx sgemm %.1f GFLOP/s, nf4 "
	       "%.1f GFLOP/s (%.0f%%)\n",
	       N, K, M, be->threads, tr, fl / t[0] / 1e9, fl / t[2] / 1e9, 100 * t[0] / t[2],
	       100 * t[4] / t[2], fl / t[1] / 1e9, fl / t[3] / 1e9, 100 * t[1] / t[3]);
	tk_qweight_free(&q);
	free(w), free(x), free(dy), free(y), free(dx), free(tile);
}

/* LoRA's rank-r matmuls at GPT-2's c_fc (768 -> 3072) and c_attn (768 ->
 * 2304), 1024 rows, r 16 (tk_lora_lin_fwd/bwd), at beta 0 as time_gemm
 * runs them (tk_lora_lin_fwd runs the B product at beta 1 after a bias):
 * each is thin, so its rate is far from SGEMM's. */
static void bench_lora(struct tk_backend *be)
{
	static const int outs[] = { 3072, 2304 };
	const int rows = 1024, in = 768, r = 16;
	for (size_t o = 0; o < sizeof(outs) / sizeof(outs[0]); o++) {
		int out = outs[o];
		const struct {
			int ta, tb, m, n, k;
			const char *what;
		} g[] = {
			{ 0, 1, rows, r, in, "u = x A^T      " },  { 0, 1, rows, out, r, "y += u B^T     " },
			{ 1, 0, out, r, rows, "dB += dy^T u   " }, { 0, 0, rows, r, out, "du = dy B      " },
			{ 1, 0, r, in, rows, "dA += du^T x   " },  { 0, 0, rows, in, r, "dx += du A     " },
		};
		double sum = 0;
		for (size_t j = 0; j < sizeof(g) / sizeof(g[0]); j++) {
			time_gemm(be, g[j].ta, g[j].tb, g[j].m, g[j].n, g[j].k, 2);
			double t = time_gemm(be, g[j].ta, g[j].tb, g[j].m, g[j].n, g[j].k, 20);
			sum += t;
			printf("lora %s %dx%dx%d threads=%d: %.3f ms, %.1f GFLOP/s\n", g[j].what,
			       g[j].m, g[j].n, g[j].k, be->threads, t * 1e3,
			       2.0 * g[j].m * g[j].n * g[j].k / t / 1e9);
		}
		printf("lora %d -> %d r %d, all six threads=%d: %.3f ms\n", in, out, r, be->threads,
		       sum * 1e3);
	}
}

static void bench_qlora(struct tk_backend *be)
{
	static const int shapes[][2] = { { 4096, 4096 }, { 11008, 4096 }, { 4096, 11008 } };
	static const int tiles[] = { 0, -1 };
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (size_t t = 0; t < sizeof(tiles) / sizeof(tiles[0]); t++)
			bench_qlora_shape(be, 512, shapes[s][0], shapes[s][1], tiles[t], 2);
}

int main(int argc, char **argv)
{
	int list[8] = { 1, 2 }, nl = 2, a0 = 1;
	const char *only = NULL;
	if (argc > 1 && (!strcmp(argv[1], "decode") || !strcmp(argv[1], "qlora") ||
			 !strcmp(argv[1], "lora") ||
			 !strcmp(argv[1], "train")))
		only = argv[a0++];
	if (argc > a0) {
		nl = 0;
		for (int i = a0; i < argc && nl < 8; i++)
			list[nl++] = atoi(argv[i]);
	}
	for (int i = 0; i < nl; i++) {
		struct tk_backend be;
		struct tk_diag d;
		if (tk_backend_cpu_init(&be, list[i], &d)) {
			fprintf(stderr, "bench-ops: %s\n", d.msg);
			return 1;
		}
		if (!only || !strcmp(only, "decode"))
			bench_decode(&be);
		if (!only || !strcmp(only, "qlora"))
			bench_qlora(&be);
		if (!only || !strcmp(only, "lora"))
			bench_lora(&be);
		if (only && strcmp(only, "train")) {
			tk_backend_free(&be);
			continue;
		}
		const int hr = tk_model_chunk_rows(50257, 1024); /* the head's chunk */
		const struct {
			int ta, tb, m, n, k;
			const char *what;
		} g[] = {
			{ 0, 0, 1024, 3072, 768, "x @ W  (fwd)   " },
			{ 0, 1, 1024, 768, 3072, "dy @ W^T (dx)   " },
			{ 1, 0, 768, 3072, 1024, "x^T @ dy (dW)   " },
			{ 0, 1, hr, 50257, 768, "x @ E^T (head)  " },
			{ 0, 0, hr, 768, 50257, "dl @ E (head dx)" },
		};
		for (size_t j = 0; j < sizeof(g) / sizeof(g[0]); j++) {
			time_gemm(&be, g[j].ta, g[j].tb, g[j].m, g[j].n, g[j].k, 2); /* warm */
			double t = time_gemm(&be, g[j].ta, g[j].tb, g[j].m, g[j].n, g[j].k, 10);
			printf("sgemm %s %dx%dx%d threads=%d: %.2f ms, %.1f GFLOP/s\n", g[j].what,
			       g[j].m, g[j].n, g[j].k, be.threads, t * 1e3,
			       2.0 * g[j].m * g[j].n * g[j].k / t / 1e9);
		}
		/* bf16: on bf16 hardware, or wherever TK_BF16=hw forces it */
		for (size_t j = 0; j < sizeof(g) / sizeof(g[0]); j++) {
			double raw, t;
			double fl = 2.0 * g[j].m * g[j].n * g[j].k;
			if (!time_bf16(&be, g[j].ta, g[j].tb, g[j].m, g[j].n, g[j].k, 2, &raw))
				break;
			t = time_bf16(&be, g[j].ta, g[j].tb, g[j].m, g[j].n, g[j].k, 10, &raw);
			printf("bf16gemm %s %dx%dx%d threads=%d: %.2f ms, %.1f GFLOP/s; tk's matmul "
			       "(fp32 operands converted) %.2f ms, %.1f GFLOP/s\n", g[j].what, g[j].m,
			       g[j].n, g[j].k, be.threads, raw * 1e3, fl / raw / 1e9, t * 1e3,
			       fl / t / 1e9);
		}
		bench_attention(&be, 4, 256, 12, 12, 64, 0);
		/* Mistral's shape of heads on a long block, full and windowed */
		bench_attention(&be, 1, 2048, 8, 2, 64, 0);
		bench_attention(&be, 1, 2048, 8, 2, 64, 256);
		bench_ce(&be, 1024, 50257);
		bench_small_ops(&be);
		bench_turns(&be);
		tk_backend_free(&be);
	}
	return 0;
}

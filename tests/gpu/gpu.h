/* gpu.h - shared by the CUDA conformance tests (tests/gpu/): a CPU and a
 * CUDA backend side by side, buffers in each, and comparisons.
 *
 * Without a GPU (or in a build without CUDA) every test prints SKIP with
 * the reason; with TK_REQUIRE_GPU=1 (make test-gpu) a missing GPU is a
 * FAIL instead.  Tolerances are written next to each case: |got - want| <=
 * atol + rtol |want|, element by element.
 *
 * Every comparison also prints a line for tests/run-gpu's table (tabs
 * between the fields):
 *   ROW  op  shape  dtype  pass|FAIL  max-abs-err  max-rel-err  tolerance
 * the shape being the what of the last BOTH_OK (or gpu_shape()) and the
 * element count; gpu_perf() prints PERF  what  shape  value  unit.
 *
 * TK_GPU_DUT=cpu makes "gpu" a second CPU backend (3 threads, the
 * reference has 1) so that the harness can be run without a GPU; the
 * CUDA-only checks of a test may then fail, the comparisons should not.
 */
#ifndef TK_TESTS_GPU_H
#define TK_TESTS_GPU_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compute/backend.h"
#include "tt.h"

static struct tk_backend cpu, gpu;
static int have_gpu;
static char no_gpu_why[1100];
static char gpu_ctx[160];		/* the shape column of the next ROWs */
static const char *gpu_dtype = "fp32"; /* the dtype column; a test may set it */

/* Starts both backends (once). */
static void gpu_setup(void)
{
	struct tk_diag d;
	tk_diag_clear(&d);
	if (tk_backend_cpu_init(&cpu, 1, &d)) {
		fprintf(stderr, "cpu backend: %s\n", d.msg);
		exit(1);
	}
	const char *dut = getenv("TK_GPU_DUT");
	int rc;
	if (dut && !strcmp(dut, "cpu"))
		rc = tk_backend_cpu_init(&gpu, 3, &d);
	else
		rc = tk_backend_cuda_init(&gpu, 0, 0, 1, &d);
	have_gpu = rc == 0;
	if (!have_gpu)
		snprintf(no_gpu_why, sizeof(no_gpu_why), "no CUDA backend: %s", d.msg);
}

static void gpu_teardown(void)
{
	tk_backend_free(&gpu);
	tk_backend_free(&cpu);
}

/* First line of every test. */
#define NEED_GPU()                                                              \
	do {                                                                    \
		if (!have_gpu) {                                                \
			const char *req_ = getenv("TK_REQUIRE_GPU");            \
			TT_REQUIRE(!(req_ && !strcmp(req_, "1")), "%s", no_gpu_why); \
			TT_SKIP("%s", no_gpu_why);                              \
		}                                                               \
	} while (0)

static uint64_t rng_s = 0x2545f4914f6cdd1dull;

static inline void rng_seed(uint64_t s)
{
	rng_s = s ? s : 1;
}

static inline uint32_t rng_u32(void)
{
	rng_s ^= rng_s << 13;
	rng_s ^= rng_s >> 7;
	rng_s ^= rng_s << 17;
	return (uint32_t)(rng_s >> 16);
}

/* Uniform in [lo, hi). */
static inline float rng_f(float lo, float hi)
{
	return lo + (hi - lo) * (float)(rng_u32() >> 8) * (1.0f / 16777216.0f);
}

/* A host array of n uniform floats (free()). */
static inline float *rand_host(size_t n, float lo, float hi)
{
	float *p = malloc((n ? n : 1) * sizeof(float));
	for (size_t i = 0; p && i < n; i++)
		p[i] = rng_f(lo, hi);
	return p;
}

/* A copy of src (n floats) in be's memory (tk_backend_free_mem()). */
static inline float *dup_on(struct tk_backend *be, const float *src, size_t n)
{
	float *p = tk_backend_alloc(be, (n ? n : 1) * sizeof(float));
	if (p && n)
		memcpy(p, src, n * sizeof(float));
	return p;
}

/* A pair of copies of src: c on the CPU backend, g on the CUDA one. */
struct pair {
	float *c, *g;
	size_t n;
};

static inline struct pair pair_of(const float *src, size_t n)
{
	struct pair p = { dup_on(&cpu, src, n), dup_on(&gpu, src, n), n };
	return p;
}

static inline struct pair pair_rand(size_t n, float lo, float hi)
{
	float *h = rand_host(n, lo, hi);
	struct pair p = pair_of(h, n);
	free(h);
	return p;
}

static inline void pair_free(struct pair *p)
{
	tk_backend_free_mem(&cpu, p->c);
	tk_backend_free_mem(&gpu, p->g);
	p->c = p->g = NULL;
}

/* Sets the shape column of the ROW lines that follow (printf format). */
static inline void gpu_shape(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void gpu_shape(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(gpu_ctx, sizeof(gpu_ctx), fmt, ap);
	va_end(ap);
}

/* Prints a throughput figure for tests/run-gpu's table. */
static inline void gpu_perf(const char *what, const char *shape, double value, const char *unit)
{
	printf("PERF\t%s\t%s\t%.4g\t%s\n", what, shape, value, unit);
	fflush(stdout);
}

/* Monotonic seconds, for gpu_perf's figures. */
static inline double gpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Checks got against want (n floats) within atol + rtol |want|; reports
 * the worst element and prints the case's ROW line. */
static inline void check_close(const char *what, const float *got, const float *want, size_t n,
			double atol, double rtol)
{
	size_t worst = 0, bad = 0;
	double wex = -1.0, mabs = 0, mrel = 0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)got[i] - want[i]), lim = atol + rtol * fabs(want[i]);
		if (e > mabs || e != e)
			mabs = e;
		if (want[i] != 0 && (e / fabs(want[i]) > mrel || e != e))
			mrel = e / fabs(want[i]);
		if (!(e <= lim)) { /* NaN counts as bad */
			bad++;
			if (!(e <= wex)) {
				wex = e;
				worst = i;
			}
		}
	}
	printf("ROW\t%s\t%s%sn=%zu\t%s\t%s\t%.3g\t%.3g\tatol %g rtol %g\n", what, gpu_ctx,
	       gpu_ctx[0] ? ", " : "", n, gpu_dtype, bad ? "FAIL" : "pass", mabs, mrel, atol, rtol);
	fflush(stdout);
	TT_CHECK(!bad, "%s: %zu of %zu elements off; worst [%zu] cuda %.9g cpu %.9g", what, bad,
		 n, worst, got[worst], want[worst]);
}

#define CHECK_PAIR(what, p, atol, rtol) check_close((what), (p).g, (p).c, (p).n, (atol), (rtol))

/* Both backends ran the op with status 0. */
#define BOTH_OK(rc_cpu, rc_gpu, what)                                                   \
	do {                                                                            \
		gpu_shape("%s", (what));                                                \
		TT_REQUIRE((rc_cpu) == 0 && (rc_gpu) == 0, "%s: cpu %d, cuda %d (%s)",  \
			   (what), (rc_cpu), (rc_gpu), tk_backend_cuda_last_error(&gpu)); \
	} while (0)

#endif

/* gemm-libs.c - the fp32 and bf16 GEMM rates of the CPU GEMM libraries tk
 * could use, on GPT-2's shapes: one library per run, so that each keeps its
 * own thread pool (bench/gemm-libs.sh runs them in turn and takes medians).
 *
 *   gemm-libs openblas PATH      Debian's OpenBLAS (OPENBLAS_CORETYPE as set)
 *   gemm-libs scipy PATH         scipy-openblas32 (scipy_ prefixed symbols)
 *   gemm-libs mkl PATH           MKL's libmkl_rt (sgemm and gemm_bf16bf16f32)
 *   gemm-libs onednn -           oneDNN's matmul primitive (fp32 and bf16)
 *
 * Prints one line per shape and precision: "LIB PREC MxNxK GFLOP/s impl",
 * the rate the median of REPS calls gives.  C[M,N] = A[M,K] B[K,N], row
 * major, no transposes (GPT-2's Conv1D weights are [in, out]).  Threads:
 * OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL's set_num_threads from
 * TK_BENCH_THREADS (default 2).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dnnl.h>

#define REPS 5

static const int shapes[][3] = { { 1024, 768, 768 }, { 1024, 2304, 768 }, { 1024, 3072, 768 },
				 { 1024, 768, 3072 }, { 1024, 50257, 768 } };

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static unsigned short bf16(float x)
{
	unsigned u;
	memcpy(&u, &x, 4);
	return (unsigned short)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *,
			 int, float, float *, int);
typedef void (*bgemm_fn)(int, int, int, int, int, int, float, const unsigned short *, int,
			 const unsigned short *, int, float, float *, int);
typedef void (*threads_fn)(int);
typedef char *(*str_fn)(void);

struct ctx {
	sgemm_fn sgemm;
	bgemm_fn bgemm;
	dnnl_engine_t eng;
	dnnl_stream_t strm;
	dnnl_primitive_t prim;
	dnnl_memory_t ma, mb, mc;
	char impl[128];
};

/* One call of the GEMM under test. */
static void run(struct ctx *c, int prec, int m, int n, int k, const void *a, const void *b,
		float *out)
{
	if (c->prim) {
		dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, c->ma },
					    { DNNL_ARG_WEIGHTS, c->mb },
					    { DNNL_ARG_DST, c->mc } };
		dnnl_primitive_execute(c->prim, c->strm, 3, args);
		dnnl_stream_wait(c->strm);
	} else if (prec) {
		c->bgemm(101, 111, 111, m, n, k, 1.f, a, k, b, n, 0.f, out, n);
	} else {
		c->sgemm(101, 111, 111, m, n, k, 1.f, a, k, b, n, 0.f, out, n);
	}
}

/* The oneDNN matmul for one shape and precision; 0 or -1 when oneDNN has
 * no implementation. */
static int onednn_prepare(struct ctx *c, int prec, int m, int n, int k, void *a, void *b,
			  float *out)
{
	dnnl_memory_desc_t ad, bd, cd;
	dnnl_dims_t da = { m, k }, db = { k, n }, dc = { m, n };
	dnnl_data_type_t t = prec ? dnnl_bf16 : dnnl_f32;
	dnnl_memory_desc_init_by_tag(&ad, 2, da, t, dnnl_ab);
	dnnl_memory_desc_init_by_tag(&bd, 2, db, t, dnnl_ab);
	dnnl_memory_desc_init_by_tag(&cd, 2, dc, dnnl_f32, dnnl_ab);
	dnnl_matmul_desc_t md;
	dnnl_primitive_desc_t pd;
	if (dnnl_matmul_desc_init(&md, &ad, &bd, NULL, &cd) ||
	    dnnl_primitive_desc_create(&pd, &md, NULL, c->eng, NULL))
		return -1;
	const char *impl = "?";
	dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
	snprintf(c->impl, sizeof(c->impl), "%s", impl);
	dnnl_primitive_create(&c->prim, pd);
	dnnl_primitive_desc_destroy(pd);
	dnnl_memory_create(&c->ma, &ad, c->eng, a);
	dnnl_memory_create(&c->mb, &bd, c->eng, b);
	dnnl_memory_create(&c->mc, &cd, c->eng, out);
	return 0;
}

static void onednn_release(struct ctx *c)
{
	if (!c->prim)
		return;
	dnnl_primitive_destroy(c->prim);
	dnnl_memory_destroy(c->ma);
	dnnl_memory_destroy(c->mb);
	dnnl_memory_destroy(c->mc);
	c->prim = NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: gemm-libs openblas|scipy|mkl|blis|onednn PATH\n");
		return 2;
	}
	const char *lib = argv[1];
	int threads = getenv("TK_BENCH_THREADS") ? atoi(getenv("TK_BENCH_THREADS")) : 2;
	struct ctx c = { 0 };
	void *h = NULL;
	if (strcmp(lib, "onednn") && !(h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL))) {
		fprintf(stderr, "gemm-libs: %s\n", dlerror());
		return 1;
	}
	const char *kernel = "";
	if (!strcmp(lib, "openblas") || !strcmp(lib, "scipy")) {
		int sc = !strcmp(lib, "scipy");
		c.sgemm = (sgemm_fn)dlsym(h, sc ? "scipy_cblas_sgemm" : "cblas_sgemm");
		c.bgemm = (bgemm_fn)dlsym(h, sc ? "scipy_cblas_sbgemm" : "cblas_sbgemm");
		((threads_fn)dlsym(h, sc ? "scipy_openblas_set_num_threads"
					 : "openblas_set_num_threads"))(threads);
		kernel = ((str_fn)dlsym(h, sc ? "scipy_openblas_get_corename"
					      : "openblas_get_corename"))();
	} else if (!strcmp(lib, "mkl")) {
		c.sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
		c.bgemm = (bgemm_fn)dlsym(h, "cblas_gemm_bf16bf16f32");
		((threads_fn)dlsym(h, "MKL_Set_Num_Threads"))(threads);
		kernel = getenv("MKL_ENABLE_INSTRUCTIONS") ? getenv("MKL_ENABLE_INSTRUCTIONS")
							   : "auto";
	} else if (!strcmp(lib, "blis")) {
		c.sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
		((threads_fn)dlsym(h, "bli_thread_set_num_threads"))(threads);
		kernel = ((const char *(*)(int))dlsym(h, "bli_arch_string"))(
			((int (*)(void))dlsym(h, "bli_arch_query_id"))());
	} else if (!strcmp(lib, "onednn")) {
		dnnl_engine_create(&c.eng, dnnl_cpu, 0);
		dnnl_stream_create(&c.strm, c.eng, dnnl_stream_default_flags);
		const dnnl_version_t *v = dnnl_version();
		static char vb[64];
		snprintf(vb, sizeof(vb), "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
		kernel = vb;
	} else {
		fprintf(stderr, "gemm-libs: no library '%s'\n", lib);
		return 2;
	}
	printf("# %s: %s\n", lib, kernel);
	for (int prec = 0; prec < 2; prec++) {
		if (!strcmp(lib, "onednn") ? 0 : prec ? !c.bgemm : !c.sgemm) {
			printf("%s %s - none\n", lib, prec ? "bf16" : "fp32");
			continue;
		}
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
			int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
			size_t esz = prec ? 2 : 4;
			void *a = malloc((size_t)m * k * esz), *b = malloc((size_t)k * n * esz);
			float *out = malloc((size_t)m * n * 4);
			srand(1);
			for (size_t i = 0; i < (size_t)m * k; i++) {
				float x = (float)rand() / RAND_MAX - 0.5f;
				if (prec)
					((unsigned short *)a)[i] = bf16(x);
				else
					((float *)a)[i] = x;
			}
			for (size_t i = 0; i < (size_t)k * n; i++) {
				float x = (float)rand() / RAND_MAX - 0.5f;
				if (prec)
					((unsigned short *)b)[i] = bf16(x);
				else
					((float *)b)[i] = x;
			}
			if (!strcmp(lib, "onednn") &&
			    onednn_prepare(&c, prec, m, n, k, a, b, out)) {
				printf("%s %s %dx%dx%d - none\n", lib, prec ? "bf16" : "fp32", m, n, k);
				free(a), free(b), free(out);
				continue;
			}
			run(&c, prec, m, n, k, a, b, out); /* warm up */
			double t[REPS];
			for (int r = 0; r < REPS; r++) {
				double t0 = now();
				run(&c, prec, m, n, k, a, b, out);
				t[r] = now() - t0;
			}
			qsort(t, REPS, sizeof(double), cmp);
			printf("%s %s %dx%dx%d %.1f %s\n", lib, prec ? "bf16" : "fp32", m, n, k,
			       2.0 * m * n * k / t[REPS / 2] * 1e-9, c.prim ? c.impl : "");
			fflush(stdout);
			onednn_release(&c);
			free(a), free(b), free(out);
		}
	}
	return 0;
}

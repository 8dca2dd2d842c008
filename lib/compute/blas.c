/* blas.c - see blas.h.  The CPU's features come from cpu.h. */
#include "compute/blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compute/cpu.h"

static int has_cooperlake(void) { return tk_cpu_features()->avx512bf16; }
static int has_skylakex(void) { return tk_cpu_features()->avx512; }
static int has_zen(void) { return tk_cpu_features()->amd && tk_cpu_features()->avx2 && tk_cpu_features()->fma; }
static int has_haswell(void) { return tk_cpu_features()->avx2 && tk_cpu_features()->fma; }
static int has_sandybridge(void) { return tk_cpu_features()->avx; }
static int has_nehalem(void) { return tk_cpu_features()->sse42; }
static int has_prescott(void) { return tk_cpu_features()->sse3; }

const struct tk_blas_kernel tk_blas_kernels[] = {
	{ "cooperlake", "Cooperlake", "AVX-512 F/CD/BW/DQ/VL and AVX512_BF16", has_cooperlake },
	{ "skylakex", "SkylakeX", "AVX-512 F/CD/BW/DQ/VL", has_skylakex },
	{ "zen", "Zen", "an AMD CPU with AVX2 and FMA", has_zen },
	{ "haswell", "Haswell", "AVX2 and FMA", has_haswell },
	{ "sandybridge", "Sandybridge", "AVX", has_sandybridge },
	{ "nehalem", "Nehalem", "SSE4.2", has_nehalem },
	{ "prescott", "Prescott", "SSE3", has_prescott },
	{ NULL, NULL, NULL, NULL },
};

const struct tk_blas_kernel *tk_blas_best_kernel(void)
{
	for (const struct tk_blas_kernel *k = tk_blas_kernels; k->name; k++)
		if (k->cpu_has())
			return k;
	return NULL; /* not x86-64: OpenBLAS chooses */
}

int tk_blas_kernel_check(const char *what, const char *name, const struct tk_blas_kernel **out,
			 struct tk_diag *d)
{
	const struct tk_blas_kernel *k;
	*out = NULL;
	if (!strcasecmp(name, "auto"))
		return 0;
	for (k = tk_blas_kernels; k->name && strcasecmp(k->name, name); k++)
		;
	if (!k->name) {
		char names[256] = "";
		for (const struct tk_blas_kernel *q = tk_blas_kernels; q->name; q++) {
			size_t n = strlen(names);
			snprintf(names + n, sizeof(names) - n, "%s%s", n ? ", " : "", q->name);
		}
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%s: no kernel '%s' (use auto, %s)", what,
				   name, names);
	}
	if (!k->cpu_has()) {
		const struct tk_blas_kernel *best = tk_blas_best_kernel();
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "%s: this CPU cannot run the %s kernel (it needs %s; the best here "
				   "is %s)", what, k->name, k->needs,
				   best ? best->name : "OpenBLAS's own choice");
	}
	*out = k;
	return 0;
}

/* ---- the library ---- */

typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, int, int,
			 int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*sgemv_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, int, int, float, const float *,
			 int, const float *, int, float, float *, int);
typedef void (*threads_fn)(int);
typedef char *(*str_fn)(void);

static struct {
	int rc;
	struct tk_diag d;
	sgemm_fn sgemm;
	sgemv_fn sgemv;
	threads_fn set_threads;
	char kernel[64];
	char line[256];
} lib;

/* The OpenBLAS shared libraries to try, in order. */
static const char *const sonames[] = { "libopenblas.so.0", "libopenblas.so", NULL };

static void load(void)
{
	const char *user = getenv("OPENBLAS_CORETYPE");
	const char *want = getenv("TK_CPU_KERNEL");
	const struct tk_blas_kernel *k = NULL;
	const char *why = "chosen from the CPU's features";
	tk_diag_clear(&lib.d);
	if (user && user[0]) {
		why = "OPENBLAS_CORETYPE set by the user";
	} else if (want && want[0] && strcasecmp(want, "auto")) {
		if ((lib.rc = tk_blas_kernel_check("TK_CPU_KERNEL", want, &k, &lib.d)))
			return;
		why = "TK_CPU_KERNEL";
	} else {
		k = tk_blas_best_kernel();
	}
	/* OpenBLAS reads its core type when it is loaded: set it just for
	 * that, and leave the environment as it was */
	if (k)
		setenv("OPENBLAS_CORETYPE", k->coretype, 1);
	void *h = NULL;
	const char *err = "";
	for (int i = 0; sonames[i] && !h; i++)
		if (!(h = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL)))
			err = dlerror();
	if (k)
		unsetenv("OPENBLAS_CORETYPE");
	if (!h) {
		lib.rc = tk_diag_set(&lib.d, TK_E_DEVICE, sonames[0], -1,
				     "cannot load OpenBLAS: %s (apt-get install libopenblas0)", err);
		return;
	}
	lib.sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
	lib.sgemv = (sgemv_fn)dlsym(h, "cblas_sgemv");
	lib.set_threads = (threads_fn)dlsym(h, "openblas_set_num_threads");
	str_fn corename = (str_fn)dlsym(h, "openblas_get_corename");
	str_fn config = (str_fn)dlsym(h, "openblas_get_config");
	if (!lib.sgemm || !lib.sgemv || !lib.set_threads || !corename) {
		lib.rc = tk_diag_set(&lib.d, TK_E_DEVICE, sonames[0], -1,
				     "not an OpenBLAS: cblas_sgemm, cblas_sgemv or openblas_* missing");
		return;
	}
	snprintf(lib.kernel, sizeof(lib.kernel), "%s", corename());
	/* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": its first two words */
	char ver[64] = "OpenBLAS";
	if (config) {
		const char *cf = config();
		int n = (int)strcspn(cf, " ");
		n += (int)strcspn(cf + n + (cf[n] == ' '), " ") + (cf[n] == ' ');
		snprintf(ver, sizeof(ver), "%.*s", n, cf);
	}
	snprintf(lib.line, sizeof(lib.line), "%s, %s kernels (%s)", ver, lib.kernel, why);
	if (k && strcasecmp(lib.kernel, k->coretype))
		snprintf(lib.line + strlen(lib.line), sizeof(lib.line) - strlen(lib.line),
			 "; asked for %s", k->coretype);
	lib.rc = 0;
}

int tk_blas_init(struct tk_diag *d)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, load);
	if (lib.rc && d)
		*d = lib.d;
	return lib.rc;
}

const char *tk_blas_describe(void)
{
	return lib.line;
}

const char *tk_blas_kernel_name(void)
{
	return lib.kernel;
}

void tk_sgemm(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
	      const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	lib.sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void tk_sgemv(int m, int n, float alpha, const float *a, int lda, const float *x, int incx,
	      float beta, float *y, int incy)
{
	lib.sgemv(CblasRowMajor, CblasNoTrans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

void tk_blas_set_threads(int n)
{
	if (lib.set_threads)
		lib.set_threads(n);
}

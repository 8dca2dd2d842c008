/* blas.c - see blas.h. */
#include "compute/blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* ---- what the CPU runs: cpuid, and XCR0 for what the OS saves ---- */

struct cpu_feat {
	int ok; /* filled */
	int amd, sse3, sse42, avx, fma, avx2, avx512, avx512bf16, amx;
};

static struct cpu_feat feat;

static void read_features(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, dx;
	struct cpu_feat f = { .ok = 1 };
	if (!__get_cpuid(0, &a, &b, &c, &dx)) {
		feat = f;
		return;
	}
	unsigned max = a;
	/* "AuthenticAMD" or Hygon's "HygonGenuine": b = "Auth"/"Hygo" */
	f.amd = b == 0x68747541 || b == 0x6f677948;
	__get_cpuid(1, &a, &b, &c, &dx);
	f.sse3 = c & 1;
	f.sse42 = (c >> 20) & 1;
	int osxsave = (c >> 27) & 1;
	unsigned long long xcr0 = 0;
	if (osxsave) {
		unsigned lo, hi;
		__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
		xcr0 = ((unsigned long long)hi << 32) | lo;
	}
	int os_avx = (xcr0 & 0x6) == 0x6;        /* XMM and YMM state */
	int os_avx512 = (xcr0 & 0xe6) == 0xe6;   /* and opmask, ZMM */
	int os_amx = (xcr0 & 0x60000) == 0x60000; /* tile config and data */
	f.avx = os_avx && ((c >> 28) & 1);
	f.fma = f.avx && ((c >> 12) & 1);
	if (max >= 7) {
		__cpuid_count(7, 0, a, b, c, dx);
		f.avx2 = f.avx && ((b >> 5) & 1);
		/* F, DQ, CD, BW, VL: what OpenBLAS's SkylakeX kernels use */
		unsigned need = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
		f.avx512 = os_avx512 && (b & need) == need;
		f.amx = os_amx && ((dx >> 22) & 1) && ((dx >> 24) & 1);
		unsigned a1, b1, c1, d1;
		__cpuid_count(7, 1, a1, b1, c1, d1);
		f.avx512bf16 = f.avx512 && ((a1 >> 5) & 1);
	}
	feat = f;
#else
	feat.ok = 1;
#endif
}

static pthread_once_t feat_once = PTHREAD_ONCE_INIT;

static const struct cpu_feat *features(void)
{
	pthread_once(&feat_once, read_features);
	return &feat;
}

static int has_cooperlake(void) { return features()->avx512bf16; }
static int has_skylakex(void) { return features()->avx512; }
static int has_zen(void) { return features()->amd && features()->avx2 && features()->fma; }
static int has_haswell(void) { return features()->avx2 && features()->fma; }
static int has_sandybridge(void) { return features()->avx; }
static int has_nehalem(void) { return features()->sse42; }
static int has_prescott(void) { return features()->sse3; }

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

static char cpu_buf[512];

static void describe_cpu(void)
{
	char model[256] = "an unknown CPU";
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
				const char *p = strchr(line, ':') + 1;
				while (*p == ' ' || *p == '\t')
					p++;
				snprintf(model, sizeof(model), "%.*s", (int)strcspn(p, "\n"), p);
				break;
			}
		fclose(f);
	}
	const struct cpu_feat *c = features();
	const struct {
		const char *name;
		int on;
	} fl[] = { { "sse4.2", c->sse42 },  { "avx", c->avx },       { "fma", c->fma },
		   { "avx2", c->avx2 },     { "avx512", c->avx512 }, { "avx512_bf16", c->avx512bf16 },
		   { "amx", c->amx } };
	char have[128] = "", lack[128] = "";
	for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
		char *to = fl[i].on ? have : lack;
		size_t n = strlen(to);
		snprintf(to + n, sizeof(have) - n, "%s%s", n ? " " : "", fl[i].name);
	}
	snprintf(cpu_buf, sizeof(cpu_buf), "%s [%s%s%s]", model, have[0] ? have : "no SIMD above SSE3",
		 lack[0] ? "; no " : "", lack);
}

const char *tk_cpu_describe(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, describe_cpu);
	return cpu_buf;
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
	} else if (want && want[0] && strcmp(want, "auto")) {
		for (k = tk_blas_kernels; k->name && strcasecmp(k->name, want); k++)
			;
		if (!k->name) {
			char names[256] = "";
			for (const struct tk_blas_kernel *q = tk_blas_kernels; q->name; q++) {
				size_t n = strlen(names);
				snprintf(names + n, sizeof(names) - n, "%s%s", n ? ", " : "", q->name);
			}
			lib.rc = tk_diag_set(&lib.d, TK_E_INVAL, NULL, -1,
					     "TK_CPU_KERNEL: no kernel '%s' (use auto, %s)", want,
					     names);
			return;
		}
		if (!k->cpu_has()) {
			const struct tk_blas_kernel *best = tk_blas_best_kernel();
			lib.rc = tk_diag_set(&lib.d, TK_E_INVAL, NULL, -1,
					     "TK_CPU_KERNEL: this CPU cannot run the %s kernel (it "
					     "needs %s; the best here is %s)", k->name, k->needs,
					     best ? best->name : "OpenBLAS's own choice");
			return;
		}
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

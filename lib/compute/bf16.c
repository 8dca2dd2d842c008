/* bf16.c - see bf16.h.  oneDNN is Debian's libdnnl 2.6 (its 2.x C API:
 * dnnl_matmul_desc_init), loaded with dlopen so that a tool that never
 * takes the hw path does not need it. */
#include "compute/bf16.h"

#include <dlfcn.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <dnnl.h>

#include "compute/cpu.h"

int tk_bf16_cpu_has(void)
{
	return tk_cpu_features()->avx512bf16 || tk_cpu_features()->amx;
}

/* TK_BF16: 0 emulate, 1 hw, -1 unset or auto, -2 unknown. */
static int wanted(void)
{
	const char *v = getenv("TK_BF16");
	if (!v || !v[0] || !strcasecmp(v, "auto"))
		return -1;
	if (!strcasecmp(v, "hw"))
		return TK_BF16_HW;
	if (!strcasecmp(v, "emulate"))
		return TK_BF16_EMULATE;
	return -2;
}

const char *tk_bf16_path_name(enum tk_bf16_path p)
{
	return p == TK_BF16_HW ? "hw" : "emulate";
}

/* ---- oneDNN ---- */

#define DNNL_FNS(X)                                                                             \
	X(dnnl_engine_create)                                                                   \
	X(dnnl_stream_create)                                                                   \
	X(dnnl_memory_desc_init_by_strides)                                                     \
	X(dnnl_memory_desc_init_by_tag)                                                         \
	X(dnnl_matmul_desc_init)                                                                \
	X(dnnl_primitive_attr_create)                                                           \
	X(dnnl_primitive_attr_destroy)                                                          \
	X(dnnl_primitive_attr_set_output_scales)                                                \
	X(dnnl_primitive_attr_set_post_ops)                                                     \
	X(dnnl_post_ops_create)                                                                 \
	X(dnnl_post_ops_destroy)                                                                \
	X(dnnl_post_ops_append_sum)                                                             \
	X(dnnl_primitive_desc_create)                                                           \
	X(dnnl_primitive_desc_query)                                                            \
	X(dnnl_primitive_desc_destroy)                                                          \
	X(dnnl_primitive_create)                                                                \
	X(dnnl_primitive_destroy)                                                               \
	X(dnnl_primitive_execute)                                                               \
	X(dnnl_memory_create)                                                                   \
	X(dnnl_memory_destroy)                                                                  \
	X(dnnl_stream_wait)                                                                     \
	X(dnnl_version)                                                                         \
	X(dnnl_get_effective_cpu_isa)

static struct {
	int rc;
	struct tk_diag d;
	dnnl_engine_t eng;
	dnnl_stream_t strm;
	pthread_mutex_t lock; /* one stream: executions one at a time */
	char version[32];
#define X(f) __typeof__(&f) f;
	DNNL_FNS(X)
#undef X
} dn = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* oneDNN's name of the instruction set it runs. */
static const char *isa_name(dnnl_cpu_isa_t isa)
{
	switch ((int)isa) {
	case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
	case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
	case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
	case dnnl_cpu_isa_avx512_core: return "avx512_core";
	case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
	case dnnl_cpu_isa_avx2: return "avx2";
	default: return "an older ISA";
	}
}

static const char soname[] = "libdnnl.so.2";

static void load(void)
{
	tk_diag_clear(&dn.d);
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		dn.rc = tk_diag_set(&dn.d, TK_E_DEVICE, NULL, -1,
				    "cannot load oneDNN (apt-get install libdnnl2): %s", dlerror());
		return;
	}
#define X(f)                                                                                    \
	if (!(dn.f = (__typeof__(&f))dlsym(h, #f))) {                                           \
		dn.rc = tk_diag_set(&dn.d, TK_E_DEVICE, NULL, -1, "%s is not oneDNN 2.x: %s missing", \
				    soname, #f);                                                \
		return;                                                                         \
	}
	DNNL_FNS(X)
#undef X
	if (dn.dnnl_engine_create(&dn.eng, dnnl_cpu, 0) ||
	    dn.dnnl_stream_create(&dn.strm, dn.eng, dnnl_stream_default_flags)) {
		dn.rc = tk_diag_set(&dn.d, TK_E_DEVICE, NULL, -1,
				    "oneDNN: cannot create its CPU engine");
		return;
	}
	const dnnl_version_t *v = dn.dnnl_version();
	snprintf(dn.version, sizeof(dn.version), "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
	/* oneDNN 2.x has bf16 matmuls from AVX-512 up only: ask for one */
	dnnl_memory_desc_t md16, md32;
	dnnl_dims_t dims = { 16, 16 };
	dnnl_matmul_desc_t mm;
	dnnl_primitive_desc_t pd = NULL;
	if (dn.dnnl_memory_desc_init_by_tag(&md16, 2, dims, dnnl_bf16, dnnl_ab) ||
	    dn.dnnl_memory_desc_init_by_tag(&md32, 2, dims, dnnl_f32, dnnl_ab) ||
	    dn.dnnl_matmul_desc_init(&mm, &md16, &md16, NULL, &md32) ||
	    dn.dnnl_primitive_desc_create(&pd, &mm, NULL, dn.eng, NULL)) {
		dn.rc = tk_diag_set(&dn.d, TK_E_INVAL, NULL, -1,
				    "%s has no bf16 matmul for this CPU (it needs AVX-512; oneDNN "
				    "runs %s here)", dn.version,
				    isa_name(dn.dnnl_get_effective_cpu_isa()));
		return;
	}
	dn.dnnl_primitive_desc_destroy(pd);
	dn.rc = 0;
}

static int dnnl_load(struct tk_diag *d)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, load);
	if (dn.rc && d)
		*d = dn.d;
	return dn.rc;
}

/* Unforced, hw needs both the CPU's bf16 instructions and a oneDNN that
 * runs its bf16 matmul: a machine without libdnnl2 still trains --bf16,
 * emulated (tk_bf16_describe says why). */
enum tk_bf16_path tk_bf16_path(void)
{
	int w = wanted();
	if (w >= 0)
		return (enum tk_bf16_path)w;
	return tk_bf16_cpu_has() && !dnnl_load(NULL) ? TK_BF16_HW : TK_BF16_EMULATE;
}

int tk_bf16_check(struct tk_diag *d)
{
	struct tk_diag why;
	int rc;
	if (wanted() == -2)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "TK_BF16: no path '%s' (use auto, hw, emulate)", getenv("TK_BF16"));
	if (tk_bf16_path() != TK_BF16_HW || !(rc = dnnl_load(&why)))
		return 0;
	/* only a forced hw path gets here */
	return tk_diag_set(d, rc, NULL, -1, "TK_BF16=hw: %.900s: use TK_BF16=emulate (or unset it)",
			   why.msg);
}

const char *tk_bf16_describe(void)
{
	static char line[512];
	const char *why = wanted() >= 0 ? "forced by TK_BF16" : "chosen from the CPU's features";
	const char *hw = tk_cpu_features()->amx ? "AMX" :
			 tk_cpu_features()->avx512bf16 ? "AVX512_BF16" :
			 "neither AVX512_BF16 nor AMX";
	struct tk_diag d;
	if (wanted() == -2 && tk_bf16_check(&d))
		snprintf(line, sizeof(line), "%.300s", d.msg);
	else if (wanted() < 0 && tk_bf16_cpu_has() && dnnl_load(&d)) /* emulate: why */
		snprintf(line, sizeof(line),
			 "emulate: operands rounded to bf16, fp32 arithmetic (this CPU has %s, but "
			 "%.400s)", hw, d.msg);
	else if (tk_bf16_path() == TK_BF16_EMULATE)
		snprintf(line, sizeof(line),
			 "emulate: operands rounded to bf16, fp32 arithmetic (%s; this CPU has %s)",
			 why, hw);
	else if (dnnl_load(&d))
		snprintf(line, sizeof(line), "hw: %.400s", d.msg);
	else
		snprintf(line, sizeof(line), "hw: %s bf16 matmul, %s (%s; this CPU has %s%s)",
			 dn.version, isa_name(dn.dnnl_get_effective_cpu_isa()), why, hw,
			 tk_bf16_cpu_has() ? "" : ": oneDNN converts to fp32");
	return line;
}

int tk_bf16_gemm(int ta, int tb, int m, int n, int k, float alpha, const unsigned short *a,
		 int lda, const unsigned short *b, int ldb, float beta, float *c, int ldc,
		 int threads, struct tk_diag *d)
{
	/* op(A) [m,k] and op(B) [k,n] described by strides: a transposed
	 * operand is the stored matrix read down its columns */
	dnnl_dims_t da = { m, k }, db = { k, n }, dc = { m, n };
	dnnl_dims_t sa = { ta ? 1 : lda, ta ? lda : 1 }, sb = { tb ? 1 : ldb, tb ? ldb : 1 };
	dnnl_dims_t sc = { ldc, 1 };
	dnnl_memory_desc_t ad, bd, cd;
	dnnl_matmul_desc_t md;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_post_ops_t po = NULL;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_t prim = NULL;
	dnnl_memory_t ma = NULL, mb = NULL, mc = NULL;
	int st = 0, step = 0;
	/* each step a status; the first that fails is named */
	if (!(st = dn.dnnl_memory_desc_init_by_strides(&ad, 2, da, dnnl_bf16, sa)) && ++step &&
	    !(st = dn.dnnl_memory_desc_init_by_strides(&bd, 2, db, dnnl_bf16, sb)) && ++step &&
	    !(st = dn.dnnl_memory_desc_init_by_strides(&cd, 2, dc, dnnl_f32, sc)) && ++step &&
	    !(st = dn.dnnl_matmul_desc_init(&md, &ad, &bd, NULL, &cd)) && ++step &&
	    !(st = dn.dnnl_primitive_attr_create(&attr)) && ++step &&
	    !(st = alpha == 1.f ? 0 : dn.dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha)) &&
	    ++step && !(st = dn.dnnl_post_ops_create(&po)) && ++step &&
	    !(st = beta == 0.f ? 0 : dn.dnnl_post_ops_append_sum(po, beta)) && ++step &&
	    !(st = dn.dnnl_primitive_attr_set_post_ops(attr, po)) && ++step &&
	    !(st = dn.dnnl_primitive_desc_create(&pd, &md, attr, dn.eng, NULL)) && ++step &&
	    !(st = dn.dnnl_primitive_create(&prim, pd)) && ++step &&
	    !(st = dn.dnnl_memory_create(&ma, &ad, dn.eng, (void *)a)) && ++step &&
	    !(st = dn.dnnl_memory_create(&mb, &bd, dn.eng, (void *)b)) && ++step &&
	    !(st = dn.dnnl_memory_create(&mc, &cd, dn.eng, c)) && ++step) {
		dnnl_exec_arg_t args[3] = {
			{ DNNL_ARG_SRC, ma }, { DNNL_ARG_WEIGHTS, mb }, { DNNL_ARG_DST, mc }
		};
		pthread_mutex_lock(&dn.lock);
		int saved = omp_get_max_threads();
		if (threads > 0)
			omp_set_num_threads(threads);
		if (!(st = dn.dnnl_primitive_execute(prim, dn.strm, 3, args)))
			st = dn.dnnl_stream_wait(dn.strm);
		omp_set_num_threads(saved);
		pthread_mutex_unlock(&dn.lock);
	}
	if (mc)
		dn.dnnl_memory_destroy(mc);
	if (mb)
		dn.dnnl_memory_destroy(mb);
	if (ma)
		dn.dnnl_memory_destroy(ma);
	if (prim)
		dn.dnnl_primitive_destroy(prim);
	if (pd)
		dn.dnnl_primitive_desc_destroy(pd);
	if (po)
		dn.dnnl_post_ops_destroy(po);
	if (attr)
		dn.dnnl_primitive_attr_destroy(attr);
	if (st)
		return tk_diag_set(d, TK_E_DEVICE, NULL, -1,
				   "oneDNN bf16 matmul %dx%dx%d (ta %d, tb %d): status %d at step %d",
				   m, n, k, ta, tb, (int)st, step);
	return 0;
}

/* backend-cuda.cu - the CUDA backend: struct tk_backend_i on one GPU.
 *
 * Memory.  The model and the training loop read and write parameters,
 * gradients and optimizer state from the host, so alloc gives managed
 * memory (cudaMallocManaged, prefetched to the GPU where the device
 * supports it): the existing code runs unchanged, at the cost of page
 * migrations whenever the host touches a buffer the GPU used last (the
 * host writing parameters at load, reading the loss, the optimizer's
 * clipping on the host...).  An op may also be handed plain host memory
 * (the ids, targets and positions the training loop keeps in malloc'd
 * arrays, a caller's scratch): each pointer is classified with
 * cudaPointerGetAttributes, and one the GPU cannot reach is staged through
 * a device copy for the op (copied in; copied back when the op writes it).
 *
 * Accounting.  alloc's blocks (their sizes in a table of the context) and
 * the device scratch are counted (in_use, peak: mem_info), and alloc
 * refuses to go beyond a limit: TK_DEVICE_MEMORY_LIMIT, else the device's
 * free memory at init.  Staged copies and cuBLAS's workspace are not
 * counted; mem_info's dev_used (cudaMemGetInfo) sees everything.
 *
 * Synchronisation.  Every op waits for its work before it returns, since
 * its caller may read the results on the host next: correct first, at the
 * price of a launch latency per op.  sync is then a no-op wait.
 *
 * GEMM.  cuBLAS, fp32 (TF32 tensor cores when asked), loaded with dlopen
 * at init so that a CUDA build of the tools starts, and runs on the CPU,
 * on a machine without cuBLAS.  Row-major C = op(A) op(B) is computed as
 * the column-major C^T = op(B)^T op(A)^T.
 *
 * Errors.  Every CUDA and cuBLAS call is checked; a failure returns
 * TK_E_DEVICE (TK_E_NOMEM when out of memory) and keeps the statement,
 * file, line and CUDA's message for tk_backend_cuda_last_error().
 *
 * A backend is used by one thread at a time.  Unverified: compiled, never
 * run on a GPU in this project; tests/gpu/ checks every op against the CPU.
 */
#include "cuda-common.cuh"

#include <cublas_v2.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "precision.cuh"
#include "adamw8.cuh"
#include "dequant.cuh"
#include "ops-cuda.cuh"

#include "base/math-common.h"

extern "C" {
#include "compute/backend.h"
#include "base/quant.h"
}

/* ---- cuBLAS, loaded at init ---- */

struct blas_fns {
	void *lib;
	decltype(&cublasCreate_v2) create;
	decltype(&cublasDestroy_v2) destroy;
	decltype(&cublasSetStream_v2) set_stream;
	decltype(&cublasSetMathMode) set_math;
	decltype(&cublasSgemm_v2) sgemm;
	/* cublasGemmEx (C++ overloads it: the C symbol's type spelled out);
	 * may be NULL: fp32 only */
	cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
				  int, const void *, const void *, cudaDataType, int, const void *,
				  cudaDataType, int, const void *, void *, cudaDataType, int,
				  cublasComputeType_t, cublasGemmAlgo_t);
	decltype(&cublasGetStatusString) status_string; /* may be NULL */
};

static struct blas_fns blas;

#define TK_STR2(x) #x
#define TK_STR(x) TK_STR2(x)

/* Loads cuBLAS once (not thread-safe: init runs on one thread). */
static int blas_load(struct tk_diag *d)
{
	if (blas.lib)
		return 0;
	const char *names[] = {
		"libcublas.so." TK_STR(CUBLAS_VER_MAJOR),
#ifdef TK_CUDA_LIBDIR
		TK_CUDA_LIBDIR "/libcublas.so." TK_STR(CUBLAS_VER_MAJOR),
#endif
		"libcublas.so",
	};
	void *lib = NULL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !lib; i++)
		lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return tk_diag_set(d, TK_E_DEVICE, NULL, -1,
				   "cannot load cuBLAS (%s): install the CUDA %d libraries or "
				   "add their directory to LD_LIBRARY_PATH",
				   names[0], CUBLAS_VER_MAJOR);
	struct blas_fns f;
	memset(&f, 0, sizeof(f));
	f.create = (decltype(f.create))dlsym(lib, "cublasCreate_v2");
	f.destroy = (decltype(f.destroy))dlsym(lib, "cublasDestroy_v2");
	f.set_stream = (decltype(f.set_stream))dlsym(lib, "cublasSetStream_v2");
	f.set_math = (decltype(f.set_math))dlsym(lib, "cublasSetMathMode");
	f.sgemm = (decltype(f.sgemm))dlsym(lib, "cublasSgemm_v2");
	f.gemm_ex = (decltype(f.gemm_ex))dlsym(lib, "cublasGemmEx");
	f.status_string = (decltype(f.status_string))dlsym(lib, "cublasGetStatusString");
	if (!f.create || !f.destroy || !f.set_stream || !f.set_math || !f.sgemm) {
		dlclose(lib);
		return tk_diag_set(d, TK_E_DEVICE, NULL, -1,
				   "cuBLAS (%s) lacks cublasCreate_v2/cublasSgemm_v2", names[0]);
	}
	f.lib = lib;
	blas = f;
	return 0;
}

static int blas_fail(cublasStatus_t s, const char *stmt, const char *file, int line,
		     struct tk_diag *d)
{
	int err = s == CUBLAS_STATUS_ALLOC_FAILED ? TK_E_NOMEM : TK_E_DEVICE;
	return tk_diag_set(d, err, NULL, -1, "%s:%d: %s: cuBLAS status %d (%s)", file, line, stmt,
			   (int)s, blas.status_string ? blas.status_string(s) : "?");
}

/* ---- the backend's state ---- */

struct cu_ctx {
	int index;           /* CUDA ordinal */
	int prefetch;        /* concurrentManagedAccess: prefetch hints work */
	int cc;              /* compute capability, major * 10 + minor */
	char name[256];      /* the device's name (cudaGetDeviceProperties) */
	cudaStream_t st;
	cublasHandle_t h;
	void *scratch;       /* device scratch, grown on demand */
	size_t scratch_cap;
	void *host;          /* host scratch (targets, partial sums) */
	size_t host_cap;
	struct tk_diag diag; /* the last failure */
	/* memory: bytes held by alloc and the device scratch, their peak, the
	 * limit alloc keeps to (TK_DEVICE_MEMORY_LIMIT, else the device's free
	 * memory at init), and alloc's blocks and sizes (open addressing) */
	size_t in_use, peak, limit;
	struct mem_ent *tab;
	size_t tab_cap, tab_n; /* tab_cap: 0 or a power of 2 */
};

struct mem_ent {
	void *p; /* NULL: empty slot */
	size_t bytes;
};

static size_t mem_slot(const struct cu_ctx *c, const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 20) & (c->tab_cap - 1);
}

/* Whether bytes more fit under the limit. */
static int mem_fits(const struct cu_ctx *c, size_t bytes)
{
	return !c->limit || (bytes <= c->limit && c->in_use <= c->limit - bytes);
}

static void mem_add(struct cu_ctx *c, size_t bytes)
{
	c->in_use += bytes;
	if (c->in_use > c->peak)
		c->peak = c->in_use;
}

/* Records block p of bytes; -1 when the host is out of memory. */
static int mem_put(struct cu_ctx *c, void *p, size_t bytes)
{
	if ((c->tab_n + 1) * 2 > c->tab_cap) {
		size_t ncap = c->tab_cap ? c->tab_cap * 2 : 256, ocap = c->tab_cap;
		struct mem_ent *nt = (struct mem_ent *)calloc(ncap, sizeof(*nt)), *ot = c->tab;
		if (!nt)
			return -1;
		c->tab = nt;
		c->tab_cap = ncap;
		for (size_t i = 0; i < ocap; i++)
			if (ot[i].p) {
				size_t j = mem_slot(c, ot[i].p);
				while (nt[j].p)
					j = (j + 1) & (ncap - 1);
				nt[j] = ot[i];
			}
		free(ot);
	}
	size_t j = mem_slot(c, p);
	while (c->tab[j].p)
		j = (j + 1) & (c->tab_cap - 1);
	c->tab[j].p = p;
	c->tab[j].bytes = bytes;
	c->tab_n++;
	return 0;
}

/* Forgets block p; returns its size (0 when it is not one of alloc's). */
static size_t mem_take(struct cu_ctx *c, const void *p)
{
	if (!c->tab_cap)
		return 0;
	size_t mask = c->tab_cap - 1, i = mem_slot(c, p);
	while (c->tab[i].p != p) {
		if (!c->tab[i].p)
			return 0;
		i = (i + 1) & mask;
	}
	size_t bytes = c->tab[i].bytes;
	/* backward-shift deletion keeps every probe sequence unbroken */
	for (size_t j = (i + 1) & mask; c->tab[j].p; j = (j + 1) & mask) {
		size_t k = mem_slot(c, c->tab[j].p);
		if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
			c->tab[i] = c->tab[j];
			i = j;
		}
	}
	c->tab[i].p = NULL;
	c->tab[i].bytes = 0;
	c->tab_n--;
	return bytes;
}

/* The pointers one op stages, and the op's status. */
#define STAGE_MAX 8
struct stage {
	struct cu_ctx *c;
	int err, n;
	struct {
		void *user, *dev;
		size_t bytes;
		int out;
	} e[STAGE_MAX];
};

/* Records a failed CUDA call in the stage (first failure wins). */
static int stage_cuda(struct stage *s, cudaError_t e, const char *stmt, const char *file,
		      int line)
{
	if (e == cudaSuccess)
		return 0;
	(void)cudaGetLastError();
	int err = tk_cuda_fail(e, stmt, file, line, &s->c->diag);
	if (!s->err)
		s->err = err;
	return err;
}

#define SCK(s, stmt) stage_cuda((s), (stmt), #stmt, __FILE__, __LINE__)

static void stage_begin(struct stage *s, struct tk_backend *be)
{
	s->c = (struct cu_ctx *)be->ctx;
	s->err = 0;
	s->n = 0;
	SCK(s, cudaSetDevice(s->c->index));
}

/* Whether the GPU of c can read and write p directly. */
static int reachable(struct cu_ctx *c, const void *p)
{
	cudaPointerAttributes a;
	if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
		(void)cudaGetLastError();
		return 0;
	}
	switch (a.type) {
	case cudaMemoryTypeManaged:
		return 1;
	case cudaMemoryTypeDevice:
		return a.device == c->index;
	case cudaMemoryTypeHost: /* pinned: mapped at the same address with UVA */
		return a.devicePointer == p;
	default:
		return 0;
	}
}

/* p as the op may use it on the GPU: p itself, or a device copy of its
 * bytes (copied back at stage_end when out).  NULL stays NULL; NULL after
 * a failure (s->err set). */
static void *stage_ptr(struct stage *s, const void *p, size_t bytes, int out)
{
	if (!p || s->err)
		return (void *)p;
	if (reachable(s->c, p))
		return (void *)p;
	if (s->n == STAGE_MAX) {
		s->err = tk_diag_set(&s->c->diag, TK_E_DEVICE, NULL, -1,
				     "more than %d host buffers staged in one op", STAGE_MAX);
		return NULL;
	}
	void *dev = NULL;
	if (SCK(s, cudaMalloc(&dev, bytes ? bytes : 1)))
		return NULL;
	s->e[s->n].user = (void *)p;
	s->e[s->n].dev = dev;
	s->e[s->n].bytes = bytes;
	s->e[s->n].out = out;
	s->n++;
	if (bytes)
		/* Default: p may also be another device's memory */
		SCK(s, cudaMemcpyAsync(dev, p, bytes, cudaMemcpyDefault, s->c->st));
	return s->err ? NULL : dev;
}

#define IN(s, p, bytes) (decltype(p))stage_ptr((s), (p), (bytes), 0)
#define OUT(s, p, bytes) (decltype(p))stage_ptr((s), (p), (bytes), 1)

/* Device scratch of at least bytes for this op (NULL after a failure).
 * Safe to regrow: the previous op has finished (ops synchronize). */
static void *scratch(struct stage *s, size_t bytes)
{
	struct cu_ctx *c = s->c;
	if (s->err)
		return NULL;
	if (bytes > c->scratch_cap) {
		if (c->scratch)
			SCK(s, cudaFree(c->scratch));
		c->scratch = NULL;
		c->in_use -= c->scratch_cap;
		c->scratch_cap = 0;
		size_t cap = bytes + bytes / 4;
		if (!mem_fits(c, cap)) {
			s->err = tk_diag_set(&c->diag, TK_E_NOMEM, NULL, -1,
					     "%zu MiB of scratch would go beyond the memory "
					     "limit (%zu MiB)", cap >> 20, c->limit >> 20);
			return NULL;
		}
		if (SCK(s, cudaMalloc(&c->scratch, cap)))
			return NULL;
		c->scratch_cap = cap;
		mem_add(c, cap);
	}
	return s->err ? NULL : c->scratch; /* s->err: the cudaFree above failed */
}

/* Host scratch of at least bytes (NULL, with s->err, when out of memory). */
static void *host_scratch(struct stage *s, size_t bytes)
{
	struct cu_ctx *c = s->c;
	if (s->err)
		return NULL;
	if (bytes > c->host_cap) {
		void *p = realloc(c->host, bytes);
		if (!p) {
			s->err = tk_diag_set(&c->diag, TK_E_NOMEM, NULL, -1, "out of memory");
			return NULL;
		}
		c->host = p;
		c->host_cap = bytes;
	}
	return c->host;
}

/* Finishes an op: copies staged outputs back (unless it failed), waits for
 * the stream, frees the staged copies; returns the op's status. */
static int stage_end(struct stage *s)
{
	struct cu_ctx *c = s->c;
	for (int i = 0; i < s->n && !s->err; i++)
		if (s->e[i].out && s->e[i].bytes)
			SCK(s, cudaMemcpyAsync(s->e[i].user, s->e[i].dev, s->e[i].bytes,
					       cudaMemcpyDefault, c->st));
	SCK(s, cudaStreamSynchronize(c->st));
	for (int i = 0; i < s->n; i++) /* a failure is recorded and its error cleared */
		if (s->e[i].dev)
			SCK(s, cudaFree(s->e[i].dev));
	s->n = 0;
	return s->err;
}

/* Bytes spanned by a row-major matrix of rows x cols with row stride ld. */
static size_t span(long rows, long cols, long ld)
{
	return rows > 0 && cols > 0 ? ((size_t)(rows - 1) * ld + cols) * sizeof(float) : 0;
}

/* ---- the ops ---- */

/* matmul in prec (enum tk_prec; prec_ok has checked the device): bf16 and
 * fp16 operands rounded into packed 16-bit codes in the device scratch by
 * the rounding of lib/base/math-common.h, then cublasGemmEx with fp32 C and
 * fp32 accumulation (CUBLAS_COMPUTE_32F); tf32 operands rounded the same
 * way into packed fp32 copies (so that the tensor cores, which may
 * truncate, read exactly the CPU emulation's operands), then
 * CUBLAS_COMPUTE_32F_FAST_TF32.  Pointers are device-accessible. */
static void matmul_prec(struct stage *s, int prec, int ta, int tb, int m, int n, int k,
			float alpha, const float *da, int lda, const float *db, int ldb,
			float beta, float *dc, int ldc)
{
	cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
	cublasStatus_t st;
	/* stored shapes: A [m,k] or [k,m] (ta), B [k,n] or [n,k] (tb) */
	int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
	size_t na = (size_t)ar * ac, nb = (size_t)br * bc;
	if (prec == TK_PREC_TF32) {
		na = (na + 31) / 32 * 32; /* B's copy 128-byte aligned */
		float *ra = (float *)scratch(s, (na + nb) * sizeof(float));
		if (!ra)
			return;
		float *rb = ra + na;
		if (SCK(s, cu_round_tf32(s->c->st, ra, da, ar, ac, lda)) ||
		    SCK(s, cu_round_tf32(s->c->st, rb, db, br, bc, ldb)))
			return;
		st = blas.gemm_ex(s->c->h, opb, opa, n, m, k, &alpha, rb, CUDA_R_32F, bc, ra,
				  CUDA_R_32F, ac, &beta, dc, CUDA_R_32F, ldc,
				  CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT);
		if (st != CUBLAS_STATUS_SUCCESS)
			s->err = blas_fail(st, "cublasGemmEx (tf32)", __FILE__, __LINE__, &s->c->diag);
		return;
	}
	na = (na + 63) / 64 * 64; /* B's codes 128-byte aligned */
	unsigned short *ca = (unsigned short *)scratch(s, (na + nb) * sizeof(unsigned short));
	if (!ca)
		return;
	unsigned short *cb = ca + na;
	int bf16 = prec == TK_PREC_BF16;
	cudaDataType_t ty = bf16 ? CUDA_R_16BF : CUDA_R_16F;
	if (SCK(s, cu_round_codes(s->c->st, ca, da, ar, ac, lda, bf16)) ||
	    SCK(s, cu_round_codes(s->c->st, cb, db, br, bc, ldb, bf16)))
		return;
	st = blas.gemm_ex(s->c->h, opb, opa, n, m, k, &alpha, cb, ty, bc, ca, ty, ac, &beta, dc,
			  CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	if (st != CUBLAS_STATUS_SUCCESS)
		s->err = blas_fail(st, bf16 ? "cublasGemmEx (bf16)" : "cublasGemmEx (fp16)", __FILE__,
				   __LINE__, &s->c->diag);
}

/* fp32 always; fp16 with cublasGemmEx (every supported GPU, sm_75 and up,
 * has fp16 tensor cores); bf16 and tf32 from compute capability 8.0. */
static int cuda_prec_ok(struct tk_backend *be, int prec, struct tk_diag *d)
{
	const struct cu_ctx *c = (const struct cu_ctx *)be->ctx;
	static const char *const names[] = { "fp32", "tf32", "bf16", "fp16" };
	if (prec == TK_PREC_FP32)
		return 0;
	if (prec < TK_PREC_FP32 || prec > TK_PREC_FP16)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "unknown precision %d", prec);
	if (!blas.gemm_ex)
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "the cuBLAS loaded has no cublasGemmEx: %s needs it (train "
				   "in fp32)", names[prec]);
	if (prec != TK_PREC_FP16 && c->cc < 80)
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "cuda:%d (%s) is sm_%d: %s needs compute capability 8.0 or "
				   "newer (use --fp16%s)", c->index, c->name, c->cc, names[prec],
				   prec == TK_PREC_TF32 ? ", or fp32 without --tf32" : "");
	return 0;
}

static int cuda_matmul(struct tk_backend *be, int ta, int tb, int m, int n, int k, float alpha,
		       const float *a, int lda, const float *b, int ldb, float beta, float *c,
		       int ldc)
{
	struct stage s;
	stage_begin(&s, be);
	float *dc = OUT(&s, c, span(m, n, ldc));
	if (k == 0) {
		/* BLAS semantics: C = beta C, and beta 0 does not read C */
		if (!s.err)
			SCK(&s, cu_scale_matrix(s.c->st, dc, m, n, ldc, beta));
		return stage_end(&s);
	}
	const float *da = IN(&s, a, ta ? span(k, m, lda) : span(m, k, lda));
	const float *db = IN(&s, b, tb ? span(n, k, ldb) : span(k, n, ldb));
	if (!s.err && be->prec != TK_PREC_FP32) {
		matmul_prec(&s, be->prec, ta, tb, m, n, k, alpha, da, lda, db, ldb, beta, dc, ldc);
		return stage_end(&s);
	}
	if (!s.err) {
		cublasStatus_t st = blas.sgemm(s.c->h, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
					       ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, db,
					       ldb, da, lda, &beta, dc, ldc);
		if (st != CUBLAS_STATUS_SUCCESS)
			s.err = blas_fail(st, "cublasSgemm_v2", __FILE__, __LINE__, &s.c->diag);
	}
	return stage_end(&s);
}

static int cuda_layernorm_fwd(struct tk_backend *be, float *y, float *mean, float *rstd,
			      const float *x, const float *w, const float *b, int rows, int dim,
			      float eps)
{
	struct stage s;
	stage_begin(&s, be);
	size_t rd = (size_t)rows * dim * sizeof(float), rb = (size_t)rows * sizeof(float);
	size_t db = (size_t)dim * sizeof(float);
	float *dy = OUT(&s, y, rd), *dm = OUT(&s, mean, rb), *dr = OUT(&s, rstd, rb);
	const float *dx = IN(&s, x, rd), *dw = IN(&s, w, db), *dbb = IN(&s, b, db);
	if (!s.err)
		SCK(&s, cu_layernorm_fwd(s.c->st, dy, dm, dr, dx, dw, dbb, rows, dim, eps));
	return stage_end(&s);
}

static int cuda_layernorm_bwd(struct tk_backend *be, float *dx, float *dw, float *db,
			      const float *dy, const float *x, const float *w, const float *mean,
			      const float *rstd, int rows, int dim)
{
	struct stage s;
	stage_begin(&s, be);
	size_t rd = (size_t)rows * dim * sizeof(float), rb = (size_t)rows * sizeof(float);
	size_t cb = (size_t)dim * sizeof(float);
	float *ddx = OUT(&s, dx, rd), *ddw = OUT(&s, dw, cb), *ddb = OUT(&s, db, cb);
	const float *ddy = IN(&s, dy, rd), *dxx = IN(&s, x, rd), *dww = IN(&s, w, cb);
	const float *dm = IN(&s, mean, rb), *dr = IN(&s, rstd, rb);
	double *sc = (dw || db) ? (double *)scratch(&s, cu_colsum_scratch(rows, dim) *
								sizeof(double))
				: NULL;
	if (!s.err)
		SCK(&s, cu_layernorm_bwd(s.c->st, ddx, ddw, ddb, ddy, dxx, dww, dm, dr, rows, dim,
					 sc));
	return stage_end(&s);
}

static int cuda_rmsnorm_fwd(struct tk_backend *be, float *y, float *rstd, const float *x,
			    const float *w, float w_off, int rows, int dim, float eps)
{
	struct stage s;
	stage_begin(&s, be);
	size_t rd = (size_t)rows * dim * sizeof(float), rb = (size_t)rows * sizeof(float);
	float *dy = OUT(&s, y, rd), *dr = OUT(&s, rstd, rb);
	const float *dx = IN(&s, x, rd), *dw = IN(&s, w, (size_t)dim * sizeof(float));
	if (!s.err)
		SCK(&s, cu_rmsnorm_fwd(s.c->st, dy, dr, dx, dw, w_off, rows, dim, eps));
	return stage_end(&s);
}

static int cuda_rmsnorm_bwd(struct tk_backend *be, float *dx, float *dw, const float *dy,
			    const float *x, const float *w, float w_off, const float *rstd,
			    int rows, int dim)
{
	struct stage s;
	stage_begin(&s, be);
	size_t rd = (size_t)rows * dim * sizeof(float), rb = (size_t)rows * sizeof(float);
	size_t cb = (size_t)dim * sizeof(float);
	float *ddx = OUT(&s, dx, rd), *ddw = OUT(&s, dw, cb);
	const float *ddy = IN(&s, dy, rd), *dxx = IN(&s, x, rd), *dww = IN(&s, w, cb);
	const float *dr = IN(&s, rstd, rb);
	double *sc = dw ? (double *)scratch(&s, cu_colsum_scratch(rows, dim) * sizeof(double))
			: NULL;
	if (!s.err)
		SCK(&s, cu_rmsnorm_bwd(s.c->st, ddx, ddw, ddy, dxx, dww, w_off, dr, rows, dim,
				       sc));
	return stage_end(&s);
}

static int cuda_gelu_fwd(struct tk_backend *be, float *y, const float *x, size_t n)
{
	struct stage s;
	stage_begin(&s, be);
	float *dy = OUT(&s, y, n * sizeof(float));
	const float *dx = IN(&s, x, n * sizeof(float));
	if (!s.err)
		SCK(&s, cu_gelu_fwd(s.c->st, dy, dx, n));
	return stage_end(&s);
}

static int cuda_gelu_bwd(struct tk_backend *be, float *dx, const float *x, const float *dy,
			 size_t n)
{
	struct stage s;
	stage_begin(&s, be);
	float *ddx = OUT(&s, dx, n * sizeof(float));
	const float *dxx = IN(&s, x, n * sizeof(float)), *ddy = IN(&s, dy, n * sizeof(float));
	if (!s.err)
		SCK(&s, cu_gelu_bwd(s.c->st, ddx, dxx, ddy, n));
	return stage_end(&s);
}

/* SwiGLU's and GeGLU's staging around their launchers. */
typedef cudaError_t (*glu_fwd_fn)(cudaStream_t, float *, const float *, const float *, size_t);
typedef cudaError_t (*glu_bwd_fn)(cudaStream_t, float *, float *, const float *, const float *,
				  const float *, size_t);

static int glu_fwd(struct tk_backend *be, glu_fwd_fn fn, float *y, const float *gate,
		   const float *up, size_t n)
{
	struct stage s;
	stage_begin(&s, be);
	float *dy = OUT(&s, y, n * sizeof(float));
	const float *dg = IN(&s, gate, n * sizeof(float)), *du = IN(&s, up, n * sizeof(float));
	if (!s.err)
		SCK(&s, fn(s.c->st, dy, dg, du, n));
	return stage_end(&s);
}

static int glu_bwd(struct tk_backend *be, glu_bwd_fn fn, float *dgate, float *dup,
		   const float *gate, const float *up, const float *dy, size_t n)
{
	struct stage s;
	stage_begin(&s, be);
	size_t nb = n * sizeof(float);
	float *ddg = OUT(&s, dgate, nb), *ddu = OUT(&s, dup, nb);
	const float *dg = IN(&s, gate, nb), *du = IN(&s, up, nb), *ddy = IN(&s, dy, nb);
	if (!s.err)
		SCK(&s, fn(s.c->st, ddg, ddu, dg, du, ddy, n));
	return stage_end(&s);
}

static int cuda_swiglu_fwd(struct tk_backend *be, float *y, const float *gate, const float *up,
			   size_t n)
{
	return glu_fwd(be, cu_swiglu_fwd, y, gate, up, n);
}

static int cuda_swiglu_bwd(struct tk_backend *be, float *dgate, float *dup, const float *gate,
			   const float *up, const float *dy, size_t n)
{
	return glu_bwd(be, cu_swiglu_bwd, dgate, dup, gate, up, dy, n);
}

static int cuda_geglu_fwd(struct tk_backend *be, float *y, const float *gate, const float *up,
			  size_t n)
{
	return glu_fwd(be, cu_geglu_fwd, y, gate, up, n);
}

static int cuda_geglu_bwd(struct tk_backend *be, float *dgate, float *dup, const float *gate,
			  const float *up, const float *dy, size_t n)
{
	return glu_bwd(be, cu_geglu_bwd, dgate, dup, gate, up, dy, n);
}

static int cuda_logit_softcap(struct tk_backend *be, float *x, size_t n, float cap)
{
	struct stage s;
	stage_begin(&s, be);
	float *dx = OUT(&s, x, n * sizeof(float));
	if (!s.err)
		SCK(&s, cu_logit_softcap(s.c->st, dx, n, cap));
	return stage_end(&s);
}

static int cuda_bias_add(struct tk_backend *be, float *y, const float *bias, int rows, int dim,
			 int set)
{
	struct stage s;
	stage_begin(&s, be);
	float *dy = OUT(&s, y, (size_t)rows * dim * sizeof(float));
	const float *db = IN(&s, bias, (size_t)dim * sizeof(float));
	if (!s.err)
		SCK(&s, cu_bias_add(s.c->st, dy, db, rows, dim, set));
	return stage_end(&s);
}

static int cuda_bias_grad(struct tk_backend *be, float *dbias, const float *dy, int rows,
			  int dim)
{
	struct stage s;
	stage_begin(&s, be);
	float *db = OUT(&s, dbias, (size_t)dim * sizeof(float));
	const float *ddy = IN(&s, dy, (size_t)rows * dim * sizeof(float));
	double *sc = (double *)scratch(&s, cu_colsum_scratch(rows, dim) * sizeof(double));
	if (!s.err)
		SCK(&s, cu_bias_grad(s.c->st, db, ddy, rows, dim, sc));
	return stage_end(&s);
}

static int cuda_axpy(struct tk_backend *be, float *y, float a, const float *x, size_t n)
{
	struct stage s;
	stage_begin(&s, be);
	float *dy = OUT(&s, y, n * sizeof(float));
	const float *dx = IN(&s, x, n * sizeof(float));
	if (!s.err)
		SCK(&s, cu_axpy(s.c->st, dy, a, dx, n));
	return stage_end(&s);
}

static int cuda_scale(struct tk_backend *be, float *x, float sc, size_t n)
{
	struct stage s;
	stage_begin(&s, be);
	float *dx = OUT(&s, x, n * sizeof(float));
	if (!s.err)
		SCK(&s, cu_scale(s.c->st, dx, sc, n));
	return stage_end(&s);
}

static int cuda_add_noise(struct tk_backend *be, float *x, size_t n, uint64_t key, float mag)
{
	struct stage s;
	stage_begin(&s, be);
	float *dx = OUT(&s, x, n * sizeof(float));
	if (!s.err)
		SCK(&s, cu_add_noise(s.c->st, dx, n, key, mag));
	return stage_end(&s);
}

/* The inverse frequencies come from the host (model/rope.h computes them
 * once for both backends) and are uploaded, so that both backends rotate
 * by the same fp32 angles. */
static int cuda_rope(struct tk_backend *be, float *x, const int32_t *pos, int rows, int heads,
		     int head_dim, int rot_dim, const float *inv_freq, float scale, int inverse)
{
	struct stage s;
	stage_begin(&s, be);
	int half = rot_dim / 2;
	float *inv = (float *)host_scratch(&s, (size_t)half * sizeof(float));
	float *dinv = (float *)scratch(&s, (size_t)half * sizeof(float));
	if (inv)
		memcpy(inv, inv_freq, (size_t)half * sizeof(float));
	if (!s.err)
		SCK(&s, cudaMemcpyAsync(dinv, inv, (size_t)half * sizeof(float),
					cudaMemcpyHostToDevice, s.c->st));
	float *dx = OUT(&s, x, (size_t)rows * heads * head_dim * sizeof(float));
	const int32_t *dp = IN(&s, pos, (size_t)rows * sizeof(int32_t));
	if (!s.err)
		SCK(&s, cu_rope(s.c->st, dx, dp, dinv, rows, heads, head_dim, rot_dim, scale,
				inverse));
	return stage_end(&s);
}

static int cuda_attention_fwd(struct tk_backend *be, float *out, float *lse, const float *q,
			      const float *k, const float *v, int B, int T, int n_head,
			      int n_kv_head, int head_dim, const struct tk_attn_opts *ao)
{
	if (head_dim > cu_attention_max_dim())
		return TK_E_UNSUPPORTED;
	struct stage s;
	stage_begin(&s, be);
	size_t qb = (size_t)B * T * n_head * head_dim * sizeof(float);
	size_t kb = (size_t)B * T * n_kv_head * head_dim * sizeof(float);
	float *dout = OUT(&s, out, qb), *dl = OUT(&s, lse, (size_t)B * n_head * T * sizeof(float));
	const float *dq = IN(&s, q, qb), *dk = IN(&s, k, kb), *dv = IN(&s, v, kb);
	if (!s.err)
		SCK(&s, cu_attention_fwd(s.c->st, dout, dl, dq, dk, dv, B, T, n_head, n_kv_head,
					 head_dim, ao->scale, ao->window, ao->softcap));
	return stage_end(&s);
}

static int cuda_attention_bwd(struct tk_backend *be, float *dq, float *dk, float *dv,
			      const float *dout, const float *q, const float *k, const float *v,
			      const float *out, const float *lse, int B, int T, int n_head,
			      int n_kv_head, int head_dim, const struct tk_attn_opts *ao)
{
	if (head_dim > cu_attention_max_dim())
		return TK_E_UNSUPPORTED;
	struct stage s;
	stage_begin(&s, be);
	size_t rows = (size_t)B * n_head * T;
	size_t qb = rows * head_dim * sizeof(float);
	size_t kb = (size_t)B * T * n_kv_head * head_dim * sizeof(float);
	float *ddq = OUT(&s, dq, qb), *ddk = OUT(&s, dk, kb), *ddv = OUT(&s, dv, kb);
	const float *ddo = IN(&s, dout, qb), *dqq = IN(&s, q, qb), *dkk = IN(&s, k, kb);
	const float *dvv = IN(&s, v, kb), *dou = IN(&s, out, qb);
	const float *dl = IN(&s, lse, rows * sizeof(float));
	float *sc = (float *)scratch(&s, rows * sizeof(float));
	if (!s.err)
		SCK(&s, cu_attention_bwd(s.c->st, ddq, ddk, ddv, ddo, dqq, dkk, dvv, dou, dl, B, T,
					 n_head, n_kv_head, head_dim, ao->scale, ao->window,
					 ao->softcap, sc));
	return stage_end(&s);
}

/* The largest id + 1, read on the host: the table's rows touched (for
 * staging a host table).  ids is a host copy. */
static size_t ids_rows(const uint32_t *ids, int n)
{
	uint32_t mx = 0;
	for (int i = 0; i < n; i++)
		mx = ids[i] > mx ? ids[i] : mx;
	return (size_t)mx + 1;
}

/* A host copy of n 32-bit values wherever they live (NULL on failure). */
static void *host_copy32(struct stage *s, const void *p, int n)
{
	void *h = host_scratch(s, (size_t)n * 4);
	if (h && SCK(s, cudaMemcpy(h, p, (size_t)n * 4, cudaMemcpyDefault)))
		return NULL;
	return h;
}

static int cuda_embedding_fwd(struct tk_backend *be, float *y, const float *table,
			      const uint32_t *ids, int n, int dim)
{
	struct stage s;
	stage_begin(&s, be);
	size_t trows = 0;
	if (!s.err && !reachable(s.c, table)) { /* stage only the rows used */
		const uint32_t *h = (const uint32_t *)host_copy32(&s, ids, n);
		trows = h ? ids_rows(h, n) : 0;
	}
	float *dy = OUT(&s, y, (size_t)n * dim * sizeof(float));
	const float *dt = IN(&s, table, trows * dim * sizeof(float));
	const uint32_t *di = IN(&s, ids, (size_t)n * sizeof(uint32_t));
	if (!s.err)
		SCK(&s, cu_embedding_fwd(s.c->st, dy, dt, di, n, dim));
	return stage_end(&s);
}

static int cuda_embedding_bwd(struct tk_backend *be, float *dtable, const float *dy,
			      const uint32_t *ids, int n, int dim)
{
	struct stage s;
	stage_begin(&s, be);
	size_t trows = 0;
	if (!s.err && !reachable(s.c, dtable)) {
		const uint32_t *h = (const uint32_t *)host_copy32(&s, ids, n);
		trows = h ? ids_rows(h, n) : 0;
	}
	float *dt = OUT(&s, dtable, trows * dim * sizeof(float));
	const float *ddy = IN(&s, dy, (size_t)n * dim * sizeof(float));
	const uint32_t *di = IN(&s, ids, (size_t)n * sizeof(uint32_t));
	int *sc = (int *)scratch(&s, (size_t)2 * n * sizeof(int));
	if (!s.err)
		SCK(&s, cu_embedding_bwd(s.c->st, dt, ddy, di, n, dim, sc));
	return stage_end(&s);
}

static int cuda_cross_entropy(struct tk_backend *be, float *logits, const int32_t *targets,
			      int rows, int vocab, float scale, int grad, double *loss_sum,
			      float softcap)
{
	struct stage s;
	stage_begin(&s, be);
	/* targets >= vocab are refused before anything is written, as on the CPU */
	const int32_t *ht = (const int32_t *)host_copy32(&s, targets, rows);
	for (int r = 0; ht && r < rows; r++)
		if (ht[r] >= vocab) {
			stage_end(&s);
			return TK_E_INVAL;
		}
	float *dl = OUT(&s, logits, (size_t)rows * vocab * sizeof(float));
	const int32_t *dt = IN(&s, targets, (size_t)rows * sizeof(int32_t));
	double *rl = (double *)scratch(&s, (size_t)rows * sizeof(double));
	double *hl = (double *)host_scratch(&s, (size_t)rows * sizeof(double));
	if (!s.err)
		SCK(&s, cu_cross_entropy(s.c->st, dl, dt, rows, vocab, scale, grad, rl, softcap));
	if (!s.err)
		SCK(&s, cudaMemcpyAsync(hl, rl, (size_t)rows * sizeof(double),
					cudaMemcpyDeviceToHost, s.c->st));
	int rc = stage_end(&s);
	if (!rc && loss_sum) {
		double sum = 0.0;
		for (int r = 0; r < rows; r++) /* row order, as the CPU */
			sum += hl[r];
		*loss_sum += sum;
	}
	return rc;
}

/* The scalars as cpu_adamw computes them (torch's formula, hyperparameters
 * in double, each tensor op in fp32). */
static int cuda_adamw(struct tk_backend *be, float *p, const float *g, float *m, float *v,
		      size_t n, double lr, double beta1, double beta2, double eps,
		      double weight_decay, int step)
{
	struct tk_adamw_k k = tk_adamw_setup(lr, beta1, beta2, eps, weight_decay, step);
	struct stage s;
	stage_begin(&s, be);
	size_t nb = n * sizeof(float);
	float *dp = OUT(&s, p, nb), *dm = OUT(&s, m, nb), *dv = OUT(&s, v, nb);
	const float *dg = IN(&s, g, nb);
	if (!s.err)
		SCK(&s, cu_adamw(s.c->st, dp, dg, dm, dv, n, k));
	return stage_end(&s);
}

/* bitsandbytes' AdamW8bit (base/adamw8-common.h), k from tk_adamw8_setup as
 * on the CPU. */
static int cuda_adamw8(struct tk_backend *be, float *p, const float *g, uint8_t *q1, uint8_t *q2,
		       float *absmax1, float *absmax2, size_t n, size_t rows, size_t cols,
		       const struct tk_adamw8_k *k)
{
	struct stage s;
	stage_begin(&s, be);
	size_t nf = n * sizeof(float), na = (n + TK_ADAMW8_BLOCK - 1) / TK_ADAMW8_BLOCK * sizeof(float);
	float *dp = OUT(&s, p, nf), *da1 = OUT(&s, absmax1, na), *da2 = OUT(&s, absmax2, na);
	uint8_t *dq1 = OUT(&s, q1, n), *dq2 = OUT(&s, q2, n);
	const float *dg = IN(&s, g, nf);
	if (!s.err)
		SCK(&s, cu_adamw8(s.c->st, dp, dg, dq1, dq2, da1, da2, n, rows, cols, *k));
	return stage_end(&s);
}

static int cuda_adamw8_f32(struct tk_backend *be, float *p, const float *g, float *m, float *v,
			   size_t n, const struct tk_adamw8_k *k)
{
	struct stage s;
	stage_begin(&s, be);
	size_t nb = n * sizeof(float);
	float *dp = OUT(&s, p, nb), *dm = OUT(&s, m, nb), *dv = OUT(&s, v, nb);
	const float *dg = IN(&s, g, nb);
	if (!s.err)
		SCK(&s, cu_adamw8_f32(s.c->st, dp, dg, dm, dv, n, *k));
	return stage_end(&s);
}

static int cuda_sum_squares(struct tk_backend *be, double *out, const float *x, size_t n)
{
	struct stage s;
	stage_begin(&s, be);
	size_t nch = (n + TK_CU_SUMSQ_CHUNK - 1) / TK_CU_SUMSQ_CHUNK;
	const float *dx = IN(&s, x, n * sizeof(float));
	double *part = (double *)scratch(&s, nch * sizeof(double));
	double *hp = (double *)host_scratch(&s, nch * sizeof(double));
	if (!s.err)
		SCK(&s, cu_sum_squares(s.c->st, part, dx, n));
	if (!s.err)
		SCK(&s, cudaMemcpyAsync(hp, part, nch * sizeof(double), cudaMemcpyDeviceToHost,
					s.c->st));
	int rc = stage_end(&s);
	if (!rc) {
		double sum = 0.0;
		for (size_t c = 0; c < nch; c++)
			sum += hp[c];
		*out += sum;
	}
	return rc;
}

/* The device views of the slices of a 4-bit weight's buffers that
 * elements e0 .. e1-1 use: the packed bytes from byte e0 / 2, the absmax
 * (or, nested, the 8-bit codes and the group absmax) from block e0 /
 * blocksize (and group (e0 / blocksize) / 256) on; staged when q is host
 * memory (a weight not moved by tk_qweight_to_backend).  Unused ones NULL. */
struct q4_slices {
	const uint8_t *data, *qabsmax;
	const float *absmax, *nested_absmax;
};

static struct q4_slices stage_q4(struct stage *s, const struct tk_qweight *q, size_t e0,
				 size_t e1)
{
	const size_t bs = q->blocksize, b0 = e0 / bs, b1 = (e1 - 1) / bs + 1;
	struct q4_slices v = { NULL, NULL, NULL, NULL };
	v.data = IN(s, (const uint8_t *)q->data + e0 / 2, (e1 + 1) / 2 - e0 / 2);
	if (q->nested) {
		const size_t n0 = b0 / TK_Q4_NESTED_BLOCKSIZE;
		const size_t n1 = (b1 - 1) / TK_Q4_NESTED_BLOCKSIZE + 1;
		v.qabsmax = IN(s, (const uint8_t *)q->qabsmax + b0, b1 - b0);
		v.nested_absmax = IN(s, (const float *)q->nested_absmax + n0,
				     (n1 - n0) * sizeof(float));
	} else {
		v.absmax = IN(s, (const float *)q->absmax + b0, (b1 - b0) * sizeof(float));
	}
	return v;
}

/* The wrapper has checked the range and the layout.  Only the slices of
 * q's buffers that the rows use are staged when q is host memory (a
 * weight not moved by tk_qweight_to_backend). */
static int cuda_dequant_rows(struct tk_backend *be, const struct tk_qweight *q, int64_t row0,
			     int64_t n, float *out)
{
	struct stage s;
	stage_begin(&s, be);
	const size_t cols = (size_t)q->cols, e0 = (size_t)row0 * cols, e1 = e0 + (size_t)n * cols;
	float *dout = OUT(&s, out, (e1 - e0) * sizeof(float));
	if (q->kind == TK_QK_INT8) {
		const int8_t *dc = IN(&s, (const int8_t *)q->data + e0, e1 - e0);
		const float *ds = IN(&s, q->scb + row0, (size_t)n * sizeof(float));
		if (!s.err)
			SCK(&s, cu_dequant8(s.c->st, dout, dc, ds, (size_t)n, cols));
		return stage_end(&s);
	}
	const size_t bs = q->blocksize;
	struct q4_slices v = stage_q4(&s, q, e0, e1);
	const uint8_t *dd = v.data, *dq = v.qabsmax;
	const float *da = v.absmax, *dn = v.nested_absmax;
	if (!s.err)
		SCK(&s, cu_dequant4(s.c->st, dout, dd, da, dq, dn, q->offset,
				    q->kind == TK_QK_FP4, bs, e0, e1));
	return stage_end(&s);
}

/* Managed memory, prefetched to the GPU where the device can. */
static void *cuda_alloc(struct tk_backend *be, size_t bytes)
{
	struct cu_ctx *c = (struct cu_ctx *)be->ctx;
	void *p = NULL;
	if (bytes == 0)
		bytes = 1;
	if (!mem_fits(c, bytes)) {
		tk_diag_set(&c->diag, TK_E_NOMEM, NULL, -1,
			    "%zu MiB more would go beyond the memory limit (%zu of %zu MiB in "
			    "use)", bytes >> 20, c->in_use >> 20, c->limit >> 20);
		return NULL;
	}
	cudaError_t e = cudaSetDevice(c->index);
	if (e != cudaSuccess) {
		(void)cudaGetLastError();
		tk_cuda_fail(e, "cudaSetDevice", __FILE__, __LINE__, &c->diag);
		return NULL;
	}
	e = cudaMallocManaged(&p, bytes, cudaMemAttachGlobal);
	if (e != cudaSuccess) {
		(void)cudaGetLastError();
		tk_cuda_fail(e, "cudaMallocManaged", __FILE__, __LINE__, &c->diag);
		return NULL;
	}
	if (mem_put(c, p, bytes)) {
		cudaFree(p);
		(void)cudaGetLastError();
		tk_diag_set(&c->diag, TK_E_NOMEM, NULL, -1, "out of host memory");
		return NULL;
	}
	mem_add(c, bytes);
	if (c->prefetch) {
#if CUDART_VERSION >= 13000
		cudaMemLocation loc;
		memset(&loc, 0, sizeof(loc));
		loc.type = cudaMemLocationTypeDevice;
		loc.id = c->index;
		e = cudaMemPrefetchAsync(p, bytes, loc, 0, c->st);
#else
		e = cudaMemPrefetchAsync(p, bytes, c->index, c->st);
#endif
		if (e != cudaSuccess) /* a hint: its failure changes nothing */
			(void)cudaGetLastError();
		/* the caller may write it from the host at once */
		if (cudaStreamSynchronize(c->st) != cudaSuccess)
			(void)cudaGetLastError();
	}
	return p;
}

static void cuda_free(struct tk_backend *be, void *p)
{
	struct cu_ctx *c = (struct cu_ctx *)be->ctx;
	if (!p)
		return;
	c->in_use -= mem_take(c, p);
	cudaError_t e = cudaSetDevice(c->index);
	if (e == cudaSuccess)
		e = cudaFree(p);
	if (e != cudaSuccess) {
		/* free has no status: keep the message, and clear the error, which
		 * the next op's launch check (cudaGetLastError) would report */
		(void)cudaGetLastError();
		tk_cuda_fail(e, "cudaFree", __FILE__, __LINE__, &c->diag);
	}
}

/* Counts from alloc and scratch; the device's own from cudaMemGetInfo
 * (total - free: what nvidia-smi shows as used, every process). */
static int cuda_mem_info(struct tk_backend *be, struct tk_mem_info *mi)
{
	struct cu_ctx *c = (struct cu_ctx *)be->ctx;
	size_t fr = 0, tot = 0;
	mi->in_use = c->in_use;
	mi->peak = c->peak;
	mi->limit = c->limit;
	mi->dev_used = 0;
	mi->dev_total = 0;
	if (cudaSetDevice(c->index) == cudaSuccess && cudaMemGetInfo(&fr, &tot) == cudaSuccess) {
		mi->dev_used = tot - fr;
		mi->dev_total = tot;
	}
	(void)cudaGetLastError();
	return 0;
}

static int cuda_sync(struct tk_backend *be)
{
	struct cu_ctx *c = (struct cu_ctx *)be->ctx;
	TK_CUDA_CHECK(cudaSetDevice(c->index), &c->diag);
	TK_CUDA_CHECK(cudaStreamSynchronize(c->st), &c->diag);
	return 0;
}

static void cuda_destroy(struct tk_backend *be)
{
	struct cu_ctx *c = (struct cu_ctx *)be->ctx;
	if (!c)
		return;
	if (cudaSetDevice(c->index) == cudaSuccess) {
		if (c->h)
			blas.destroy(c->h);
		if (c->scratch)
			cudaFree(c->scratch);
		if (c->st)
			cudaStreamDestroy(c->st);
	}
	(void)cudaGetLastError();
	free(c->host);
	free(c->tab);
	free(c);
}

/* ---- decode (kernels/decode.cu) ---- */

/* The wrapper has checked the range; q's buffers are staged, as in
 * cuda_dequant_rows, by the slices the rows use when they are host
 * memory. */
static int cuda_qmatmul(struct tk_backend *be, const struct tk_qweight *q, int64_t row0, int n,
			int m, const float *x, float *y, int ldy, float beta)
{
	if (q->kind != TK_QK_INT8 &&
	    ((q->kind != TK_QK_NF4 && q->kind != TK_QK_FP4) ||
	     !tk_q4_blocksize_ok((long long)q->blocksize)))
		return TK_E_INVAL;
	struct stage s;
	stage_begin(&s, be);
	const size_t cols = (size_t)q->cols, e0 = (size_t)row0 * cols, e1 = e0 + (size_t)n * cols;
	float *dy = OUT(&s, y, span(m, n, ldy));
	if (!cols) { /* an empty dot product: y = beta y */
		if (!s.err)
			SCK(&s, cu_scale_matrix(s.c->st, dy, m, n, ldy, beta));
		return stage_end(&s);
	}
	const float *dx = IN(&s, x, (size_t)m * cols * sizeof(float));
	if (q->kind == TK_QK_INT8) {
		const int8_t *dc = IN(&s, (const int8_t *)q->data + e0, e1 - e0);
		const float *ds = IN(&s, (const float *)q->scb + row0, (size_t)n * sizeof(float));
		if (!s.err)
			SCK(&s, cu_qmatmul8(s.c->st, dy, ldy, beta, dx, m, n, cols, dc, ds));
		return stage_end(&s);
	}
	const size_t bs = q->blocksize, b0 = e0 / bs;
	const size_t n0 = b0 / TK_Q4_NESTED_BLOCKSIZE;
	struct q4_slices v = stage_q4(&s, q, e0, e1);
	const uint8_t *dd = v.data, *dq = v.qabsmax;
	const float *da = v.absmax, *dn = v.nested_absmax;
	if (!s.err)
		SCK(&s, cu_qmatmul4(s.c->st, dy, ldy, beta, dx, m, n, (long long)row0, cols, dd,
				    e0 / 2, da, dq, dn, b0, n0, q->offset, q->kind == TK_QK_FP4,
				    bs));
	return stage_end(&s);
}

/* seq and pos are read on the host first (from wherever they are) to
 * check them and to know how much of the caches the op spans. */
static int cuda_attention_decode(struct tk_backend *be, float *out, const float *q,
				 const void *kc, const void *vc, const int32_t *seq,
				 const int32_t *pos, int n, int max_len, int n_head,
				 int n_kv_head, int head_dim, const struct tk_attn_opts *ao)
{
	if (head_dim > cu_attention_decode_max_dim())
		return TK_E_UNSUPPORTED;
	struct stage s;
	stage_begin(&s, be);
	const size_t nb = (size_t)n * sizeof(int32_t);
	int32_t *hs = (int32_t *)host_scratch(&s, 2 * nb);
	if (!s.err)
		SCK(&s, cudaMemcpyAsync(hs, seq, nb, cudaMemcpyDefault, s.c->st));
	if (!s.err)
		SCK(&s, cudaMemcpyAsync(hs + n, pos, nb, cudaMemcpyDefault, s.c->st));
	if (!s.err)
		SCK(&s, cudaStreamSynchronize(s.c->st));
	if (s.err)
		return stage_end(&s);
	int32_t top = 0;
	for (int i = 0; i < n; i++) {
		if (hs[i] < 0 || hs[n + i] < 0 || hs[n + i] >= max_len) {
			stage_end(&s);
			return TK_E_INVAL;
		}
		top = hs[i] > top ? hs[i] : top;
	}
	const size_t qb = (size_t)n * n_head * head_dim * sizeof(float);
	const size_t cb = ((size_t)top + 1) * max_len * n_kv_head * head_dim *
			  (ao->cache_bf16 ? sizeof(uint16_t) : sizeof(float));
	float *dout = OUT(&s, out, qb);
	const float *dq = IN(&s, q, qb);
	const void *dk = IN(&s, kc, cb), *dv = IN(&s, vc, cb);
	const int32_t *ds = IN(&s, seq, nb), *dp = IN(&s, pos, nb);
	if (!s.err)
		SCK(&s, cu_attention_decode(s.c->st, dout, dq, dk, dv, ao->cache_bf16, ds, dp, n,
					    max_len, n_head, n_kv_head, head_dim, ao->scale,
					    ao->window, ao->softcap));
	return stage_end(&s);
}

/* idx is read on the host first, as seq in cuda_attention_decode; the
 * cache's rows hold floats (copy_rows) or bf16 codes (store_rows_bf16). */
static int rows_into(struct tk_backend *be, void *dst, const float *src, const int64_t *idx,
		     int n, int dim, int bf16)
{
	struct stage s;
	stage_begin(&s, be);
	const size_t ib = (size_t)n * sizeof(int64_t);
	int64_t *hi = (int64_t *)host_scratch(&s, ib);
	if (!s.err)
		SCK(&s, cudaMemcpyAsync(hi, idx, ib, cudaMemcpyDefault, s.c->st));
	if (!s.err)
		SCK(&s, cudaStreamSynchronize(s.c->st));
	if (s.err)
		return stage_end(&s);
	int64_t top = 0;
	for (int i = 0; i < n; i++) {
		if (hi[i] < 0) {
			stage_end(&s);
			return TK_E_INVAL;
		}
		top = hi[i] > top ? hi[i] : top;
	}
	void *dd = OUT(&s, dst, ((size_t)top + 1) * dim * (bf16 ? sizeof(uint16_t) : sizeof(float)));
	const float *dsrc = IN(&s, src, (size_t)n * dim * sizeof(float));
	const int64_t *di = IN(&s, idx, ib);
	if (!s.err)
		SCK(&s, bf16 ? cu_store_rows_bf16(s.c->st, (uint16_t *)dd, dsrc, di, n, dim)
			     : cu_copy_rows(s.c->st, (float *)dd, dsrc, di, n, dim));
	return stage_end(&s);
}

static int cuda_copy_rows(struct tk_backend *be, float *dst, const float *src,
			  const int64_t *idx, int n, int dim)
{
	return rows_into(be, dst, src, idx, n, dim, 0);
}

static int cuda_store_rows_bf16(struct tk_backend *be, uint16_t *dst, const float *src,
				const int64_t *idx, int n, int dim)
{
	return rows_into(be, dst, src, idx, n, dim, 1);
}

static const struct tk_backend_i cuda_backend_i = {
	/* .name = */ "cuda",
	/* .host_memory = */ 0,
	/* .matmul = */ cuda_matmul,
	/* .layernorm_fwd = */ cuda_layernorm_fwd,
	/* .layernorm_bwd = */ cuda_layernorm_bwd,
	/* .rmsnorm_fwd = */ cuda_rmsnorm_fwd,
	/* .rmsnorm_bwd = */ cuda_rmsnorm_bwd,
	/* .gelu_fwd = */ cuda_gelu_fwd,
	/* .gelu_bwd = */ cuda_gelu_bwd,
	/* .swiglu_fwd = */ cuda_swiglu_fwd,
	/* .swiglu_bwd = */ cuda_swiglu_bwd,
	/* .geglu_fwd = */ cuda_geglu_fwd,
	/* .geglu_bwd = */ cuda_geglu_bwd,
	/* .logit_softcap = */ cuda_logit_softcap,
	/* .bias_add = */ cuda_bias_add,
	/* .bias_grad = */ cuda_bias_grad,
	/* .axpy = */ cuda_axpy,
	/* .rope = */ cuda_rope,
	/* .attention_fwd = */ cuda_attention_fwd,
	/* .attention_bwd = */ cuda_attention_bwd,
	/* .embedding_fwd = */ cuda_embedding_fwd,
	/* .embedding_bwd = */ cuda_embedding_bwd,
	/* .cross_entropy = */ cuda_cross_entropy,
	/* .adamw = */ cuda_adamw,
	/* .sum_squares = */ cuda_sum_squares,
	/* .scale = */ cuda_scale,
	/* .alloc = */ cuda_alloc,
	/* .free = */ cuda_free,
	/* .sync = */ cuda_sync,
	/* .destroy = */ cuda_destroy,
	/* .dequant_rows = */ cuda_dequant_rows,
	/* .prec_ok = */ cuda_prec_ok,
	/* .qmatmul = */ cuda_qmatmul,
	/* .matmul_group = */ NULL,
	/* .attention_decode = */ cuda_attention_decode,
	/* .copy_rows = */ cuda_copy_rows,
	/* .mem_info = */ cuda_mem_info,
	/* .add_noise = */ cuda_add_noise,
	/* .adamw8 = */ cuda_adamw8,
	/* .adamw8_f32 = */ cuda_adamw8_f32,
	/* .hold = */ NULL,
	/* .unhold = */ NULL,
	/* .store_rows_bf16 = */ cuda_store_rows_bf16,
};

/* Undoes a partial init. */
static int init_fail(struct cu_ctx *c, struct tk_backend *be, int rc)
{
	struct tk_backend tmp;
	tmp.i = &cuda_backend_i;
	tmp.ctx = c;
	tmp.threads = 0;
	cuda_destroy(&tmp);
	be->i = NULL;
	be->ctx = NULL;
	be->prec = TK_PREC_FP32;
	return rc;
}

extern "C" int tk_backend_cuda_init(struct tk_backend *be, int index, int flags, int threads,
				    struct tk_diag *d)
{
	tk_diag_clear(d);
	be->i = NULL;
	be->ctx = NULL;
	be->prec = TK_PREC_FP32;
	be->threads = threads > 0 ? threads : 1;
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
		(void)cudaGetLastError();
		n = 0;
	} else {
		TK_CUDA_CHECK(e, d);
	}
	if (index < 0 || index >= n)
		return tk_diag_set(d, TK_E_DEVICE, NULL, -1,
				   "no CUDA device %d (the driver reports %d): use --device cpu",
				   index, n);
	TK_CUDA_CHECK(cudaSetDevice(index), d);
	int managed = 0, concurrent = 0;
	TK_CUDA_CHECK(cudaDeviceGetAttribute(&managed, cudaDevAttrManagedMemory, index), d);
	TK_CUDA_CHECK(cudaDeviceGetAttribute(&concurrent, cudaDevAttrConcurrentManagedAccess,
					     index), d);
	if (!managed)
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "CUDA device %d has no managed memory, which tk needs: use "
				   "--device cpu", index);
	size_t limit = 0, fr = 0, tot = 0;
	int rc = tk_mem_limit_parse(getenv("TK_DEVICE_MEMORY_LIMIT"), &limit, d);
	if (rc)
		return rc;
	if (!limit) { /* the default: what is free now */
		TK_CUDA_CHECK(cudaMemGetInfo(&fr, &tot), d);
		limit = fr;
	}
	if ((rc = blas_load(d)))
		return rc;
	struct cu_ctx *c = (struct cu_ctx *)calloc(1, sizeof(*c));
	if (!c)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	c->limit = limit;
	c->index = index;
	c->prefetch = concurrent;
	cudaDeviceProp prop;
	if ((e = cudaGetDeviceProperties(&prop, index)) != cudaSuccess)
		return init_fail(c, be, tk_cuda_fail(e, "cudaGetDeviceProperties", __FILE__,
						      __LINE__, d));
	c->cc = prop.major * 10 + prop.minor;
	snprintf(c->name, sizeof(c->name), "%s", prop.name);
	tk_diag_clear(&c->diag);
	if ((e = cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking)) != cudaSuccess)
		return init_fail(c, be, tk_cuda_fail(e, "cudaStreamCreateWithFlags", __FILE__,
						      __LINE__, d));
	cublasStatus_t bs = blas.create(&c->h);
	if (bs != CUBLAS_STATUS_SUCCESS) {
		c->h = NULL;
		return init_fail(c, be, blas_fail(bs, "cublasCreate_v2", __FILE__, __LINE__, d));
	}
	if ((bs = blas.set_stream(c->h, c->st)) != CUBLAS_STATUS_SUCCESS ||
	    (bs = blas.set_math(c->h, (flags & TK_CUDA_TF32) ? CUBLAS_TF32_TENSOR_OP_MATH
							      : CUBLAS_DEFAULT_MATH)) !=
		    CUBLAS_STATUS_SUCCESS)
		return init_fail(c, be, blas_fail(bs, "cublasSetStream/SetMathMode", __FILE__,
						   __LINE__, d));
	be->i = &cuda_backend_i;
	be->ctx = c;
	return 0;
}

extern "C" const char *tk_backend_cuda_last_error(const struct tk_backend *be)
{
	if (!be || be->i != &cuda_backend_i || !be->ctx)
		return "";
	return ((const struct cu_ctx *)be->ctx)->diag.msg;
}

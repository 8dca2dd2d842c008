/* backend.c - the tk_*() wrappers over a backend's ops table.
 *
 * Each wrapper checks the arguments every backend would have to check (sizes
 * that are negative or do not fit together), so that a backend never sees
 * them and a BLAS library never gets to print its own complaint, then calls
 * the slot, or returns TK_E_UNSUPPORTED when the backend leaves it NULL.
 * Zero-sized work returns 0 without calling the backend.
 */
#include "compute/backend.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compute/device.h"
#include "base/adamw8-common.h"
#include "base/quant.h"

#define SLOT(be, op) ((be) && (be)->i && (be)->i->op)

void tk_backend_free(struct tk_backend *be)
{
	if (!be)
		return;
	if (be->i && be->i->destroy)
		be->i->destroy(be);
	be->i = NULL;
	be->ctx = NULL;
	be->prec = TK_PREC_FP32;
	be->threads = 0;
}

#ifndef TK_USE_CUDA
int tk_backend_cuda_init(struct tk_backend *be, int index, int flags, int threads,
			 struct tk_diag *d)
{
	be->i = NULL;
	be->ctx = NULL;
	be->threads = 0;
	return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
			   "this build has no CUDA support (rebuild with nvcc on the PATH)");
}

const char *tk_backend_cuda_last_error(const struct tk_backend *be)
{
	return "";
}
#endif

int tk_backend_init(struct tk_backend *be, const char *spec, int threads, struct tk_diag *d)
{
	struct tk_device dev;
	int fell_back = 0, rc;
	char note[sizeof(d->msg)] = "";
	if (!spec)
		spec = "auto";
	be->i = NULL;
	be->ctx = NULL;
	be->threads = 0;
	if (threads < 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "thread count %d is negative (use 0 for one per core)", threads);
	if ((rc = tk_device_parse(spec, &dev, &fell_back, d))) {
		/* "auto" with a driver that fails to answer: the CPU, with a note */
		if (rc != TK_E_DEVICE || strcmp(spec, "auto"))
			return rc;
		snprintf(note, sizeof(note), "CUDA is not usable (%.900s): running on the CPU",
			 d ? d->msg : "");
		dev.kind = TK_DEVICE_CPU;
		dev.index = 0;
	}
	if (fell_back)
		snprintf(note, sizeof(note), "no CUDA device found: running on the CPU");
	if (dev.kind == TK_DEVICE_CUDA) {
		const char *tf32 = getenv("TK_CUDA_TF32");
		int flags = tf32 && !strcmp(tf32, "1") ? TK_CUDA_TF32 : 0;
		int nt = threads ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
		rc = tk_backend_cuda_init(be, dev.index, flags, nt > 0 ? nt : 1, d);
		if (!rc || strcmp(spec, "auto"))
			return rc;
		/* "auto": a GPU that does not start is a note, not a failure */
		snprintf(note, sizeof(note), "CUDA device %d did not start (%.900s): running on "
			 "the CPU", dev.index, d ? d->msg : "");
	}
	if ((rc = tk_backend_cpu_init(be, threads, d)))
		return rc;
	if (note[0] && d)
		snprintf(d->msg, sizeof(d->msg), "%s", note);
	return 0;
}

int tk_matmul(struct tk_backend *be, int ta, int tb, int m, int n, int k, float alpha,
	      const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	if (!SLOT(be, matmul))
		return TK_E_UNSUPPORTED;
	if (m < 0 || n < 0 || k < 0)
		return TK_E_INVAL;
	/* row-major: op(A) is [m,k], stored [m,k] (lda >= k) or [k,m] (lda >= m) */
	int acols = ta ? m : k, bcols = tb ? k : n;
	if (lda < (acols > 1 ? acols : 1) || ldb < (bcols > 1 ? bcols : 1) ||
	    ldc < (n > 1 ? n : 1))
		return TK_E_INVAL;
	if (!m || !n)
		return 0;
	return be->i->matmul(be, !!ta, !!tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int tk_layernorm_fwd(struct tk_backend *be, float *y, float *mean, float *rstd, const float *x,
		     const float *w, const float *b, int rows, int dim, float eps)
{
	if (!SLOT(be, layernorm_fwd))
		return TK_E_UNSUPPORTED;
	if (rows < 0 || dim <= 0 || !(eps >= 0))
		return TK_E_INVAL;
	if (!rows)
		return 0;
	return be->i->layernorm_fwd(be, y, mean, rstd, x, w, b, rows, dim, eps);
}

int tk_layernorm_bwd(struct tk_backend *be, float *dx, float *dw, float *db, const float *dy,
		     const float *x, const float *w, const float *mean, const float *rstd,
		     int rows, int dim)
{
	if (!SLOT(be, layernorm_bwd))
		return TK_E_UNSUPPORTED;
	if (rows < 0 || dim <= 0)
		return TK_E_INVAL;
	if (!rows)
		return 0;
	return be->i->layernorm_bwd(be, dx, dw, db, dy, x, w, mean, rstd, rows, dim);
}

int tk_rmsnorm_fwd(struct tk_backend *be, float *y, float *rstd, const float *x, const float *w,
		   float w_off, int rows, int dim, float eps)
{
	if (!SLOT(be, rmsnorm_fwd))
		return TK_E_UNSUPPORTED;
	if (rows < 0 || dim <= 0 || !(eps >= 0))
		return TK_E_INVAL;
	if (!rows)
		return 0;
	return be->i->rmsnorm_fwd(be, y, rstd, x, w, w_off, rows, dim, eps);
}

int tk_rmsnorm_bwd(struct tk_backend *be, float *dx, float *dw, const float *dy, const float *x,
		   const float *w, float w_off, const float *rstd, int rows, int dim)
{
	if (!SLOT(be, rmsnorm_bwd))
		return TK_E_UNSUPPORTED;
	if (rows < 0 || dim <= 0)
		return TK_E_INVAL;
	if (!rows)
		return 0;
	return be->i->rmsnorm_bwd(be, dx, dw, dy, x, w, w_off, rstd, rows, dim);
}

int tk_gelu_fwd(struct tk_backend *be, float *y, const float *x, size_t n)
{
	if (!SLOT(be, gelu_fwd))
		return TK_E_UNSUPPORTED;
	return n ? be->i->gelu_fwd(be, y, x, n) : 0;
}

int tk_gelu_bwd(struct tk_backend *be, float *dx, const float *x, const float *dy, size_t n)
{
	if (!SLOT(be, gelu_bwd))
		return TK_E_UNSUPPORTED;
	return n ? be->i->gelu_bwd(be, dx, x, dy, n) : 0;
}

int tk_swiglu_fwd(struct tk_backend *be, float *y, const float *gate, const float *up, size_t n)
{
	if (!SLOT(be, swiglu_fwd))
		return TK_E_UNSUPPORTED;
	return n ? be->i->swiglu_fwd(be, y, gate, up, n) : 0;
}

int tk_swiglu_bwd(struct tk_backend *be, float *dgate, float *dup, const float *gate,
		  const float *up, const float *dy, size_t n)
{
	if (!SLOT(be, swiglu_bwd))
		return TK_E_UNSUPPORTED;
	return n ? be->i->swiglu_bwd(be, dgate, dup, gate, up, dy, n) : 0;
}

int tk_geglu_fwd(struct tk_backend *be, float *y, const float *gate, const float *up, size_t n)
{
	if (!SLOT(be, geglu_fwd))
		return TK_E_UNSUPPORTED;
	return n ? be->i->geglu_fwd(be, y, gate, up, n) : 0;
}

int tk_geglu_bwd(struct tk_backend *be, float *dgate, float *dup, const float *gate,
		 const float *up, const float *dy, size_t n)
{
	if (!SLOT(be, geglu_bwd))
		return TK_E_UNSUPPORTED;
	return n ? be->i->geglu_bwd(be, dgate, dup, gate, up, dy, n) : 0;
}

int tk_logit_softcap(struct tk_backend *be, float *x, size_t n, float cap)
{
	if (!SLOT(be, logit_softcap))
		return TK_E_UNSUPPORTED;
	if (!(cap > 0 && cap <= FLT_MAX))
		return TK_E_INVAL;
	return n ? be->i->logit_softcap(be, x, n, cap) : 0;
}

static int bias_op(struct tk_backend *be, float *y, const float *bias, int rows, int dim,
		   int set)
{
	if (!SLOT(be, bias_add))
		return TK_E_UNSUPPORTED;
	if (rows < 0 || dim < 0)
		return TK_E_INVAL;
	return rows && dim ? be->i->bias_add(be, y, bias, rows, dim, set) : 0;
}

int tk_bias_add(struct tk_backend *be, float *y, const float *bias, int rows, int dim)
{
	return bias_op(be, y, bias, rows, dim, 0);
}

int tk_bias_set(struct tk_backend *be, float *y, const float *bias, int rows, int dim)
{
	return bias_op(be, y, bias, rows, dim, 1);
}

int tk_bias_grad(struct tk_backend *be, float *dbias, const float *dy, int rows, int dim)
{
	if (!SLOT(be, bias_grad))
		return TK_E_UNSUPPORTED;
	if (rows < 0 || dim < 0)
		return TK_E_INVAL;
	return rows && dim ? be->i->bias_grad(be, dbias, dy, rows, dim) : 0;
}

int tk_axpy(struct tk_backend *be, float *y, float a, const float *x, size_t n)
{
	if (!SLOT(be, axpy))
		return TK_E_UNSUPPORTED;
	return n ? be->i->axpy(be, y, a, x, n) : 0;
}

int tk_add_noise(struct tk_backend *be, float *x, size_t n, uint64_t key, float mag)
{
	if (!SLOT(be, add_noise))
		return TK_E_UNSUPPORTED;
	return n ? be->i->add_noise(be, x, n, key, mag) : 0;
}

int tk_rope(struct tk_backend *be, float *x, const int32_t *pos, int rows, int heads,
	    int head_dim, int rot_dim, const float *inv_freq, float scale, int inverse)
{
	if (!SLOT(be, rope))
		return TK_E_UNSUPPORTED;
	if (rows < 0 || heads < 0 || head_dim <= 0 || rot_dim < 2 || rot_dim > head_dim ||
	    rot_dim % 2 || !inv_freq || !isfinite(scale))
		return TK_E_INVAL;
	return rows && heads ? be->i->rope(be, x, pos, rows, heads, head_dim, rot_dim, inv_freq,
					   scale, !!inverse)
			     : 0;
}

static int attention_args(int B, int T, int n_head, int n_kv_head, int head_dim)
{
	if (B < 0 || T < 0 || n_head <= 0 || n_kv_head <= 0 || head_dim <= 0 ||
	    n_head % n_kv_head)
		return TK_E_INVAL;
	return 0;
}

/* *f = ao with the defaults filled in (ao may be NULL); TK_E_INVAL for a
 * negative or non-finite field. */
static int attn_opts(struct tk_attn_opts *f, const struct tk_attn_opts *ao, int head_dim)
{
	struct tk_attn_opts d = { 0.0f, 0, 0.0f, 0 };
	if (ao)
		d = *ao;
	if (!isfinite(d.scale) || d.scale < 0.0f || d.window < 0 || !isfinite(d.softcap) ||
	    d.softcap < 0.0f || (d.cache_bf16 != 0 && d.cache_bf16 != 1))
		return TK_E_INVAL;
	if (d.scale == 0.0f)
		d.scale = 1.0f / sqrtf((float)head_dim);
	*f = d;
	return 0;
}

int tk_attention_fwd(struct tk_backend *be, float *out, float *lse, const float *q,
		     const float *k, const float *v, int B, int T, int n_head, int n_kv_head,
		     int head_dim, const struct tk_attn_opts *ao)
{
	struct tk_attn_opts f;
	if (!SLOT(be, attention_fwd))
		return TK_E_UNSUPPORTED;
	if (attention_args(B, T, n_head, n_kv_head, head_dim) || attn_opts(&f, ao, head_dim) ||
	    f.cache_bf16)
		return TK_E_INVAL;
	if (!B || !T)
		return 0;
	return be->i->attention_fwd(be, out, lse, q, k, v, B, T, n_head, n_kv_head, head_dim,
				    &f);
}

int tk_attention_bwd(struct tk_backend *be, float *dq, float *dk, float *dv, const float *dout,
		     const float *q, const float *k, const float *v, const float *out,
		     const float *lse, int B, int T, int n_head, int n_kv_head, int head_dim,
		     const struct tk_attn_opts *ao)
{
	struct tk_attn_opts f;
	if (!SLOT(be, attention_bwd))
		return TK_E_UNSUPPORTED;
	if (attention_args(B, T, n_head, n_kv_head, head_dim) || attn_opts(&f, ao, head_dim) ||
	    f.cache_bf16)
		return TK_E_INVAL;
	if (!B || !T)
		return 0;
	return be->i->attention_bwd(be, dq, dk, dv, dout, q, k, v, out, lse, B, T, n_head,
				    n_kv_head, head_dim, &f);
}

int tk_embedding_fwd(struct tk_backend *be, float *y, const float *table, const uint32_t *ids,
		     int n, int dim)
{
	if (!SLOT(be, embedding_fwd))
		return TK_E_UNSUPPORTED;
	if (n < 0 || dim < 0)
		return TK_E_INVAL;
	return n && dim ? be->i->embedding_fwd(be, y, table, ids, n, dim) : 0;
}

int tk_embedding_bwd(struct tk_backend *be, float *dtable, const float *dy, const uint32_t *ids,
		     int n, int dim)
{
	if (!SLOT(be, embedding_bwd))
		return TK_E_UNSUPPORTED;
	if (n < 0 || dim < 0)
		return TK_E_INVAL;
	return n && dim ? be->i->embedding_bwd(be, dtable, dy, ids, n, dim) : 0;
}

int tk_cross_entropy(struct tk_backend *be, float *logits, const int32_t *targets, int rows,
		     int vocab, float scale, int grad, double *loss_sum, float softcap)
{
	if (!SLOT(be, cross_entropy))
		return TK_E_UNSUPPORTED;
	if (rows < 0 || vocab <= 0 || !(softcap >= 0 && softcap <= FLT_MAX))
		return TK_E_INVAL;
	return rows ? be->i->cross_entropy(be, logits, targets, rows, vocab, scale, !!grad,
					   loss_sum, softcap)
		    : 0;
}

int tk_adamw(struct tk_backend *be, float *p, const float *g, float *m, float *v, size_t n,
	     double lr, double beta1, double beta2, double eps, double weight_decay, int step)
{
	if (!SLOT(be, adamw))
		return TK_E_UNSUPPORTED;
	if (step < 1 || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) ||
	    !(eps >= 0) || !(lr >= 0) || !(weight_decay >= 0))
		return TK_E_INVAL;
	return n ? be->i->adamw(be, p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step)
		 : 0;
}

int tk_adamw8(struct tk_backend *be, float *p, const float *g, uint8_t *q1, uint8_t *q2,
	      float *absmax1, float *absmax2, float *m, float *v, size_t n, size_t rows,
	      size_t cols, double lr, double beta1, double beta2, double eps,
	      double weight_decay, int step)
{
	if (q1 ? !SLOT(be, adamw8) : !SLOT(be, adamw8_f32))
		return TK_E_UNSUPPORTED;
	if (step < 1 || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) ||
	    !(eps >= 0) || !(lr >= 0) || !(weight_decay >= 0) ||
	    (q1 && (rows || cols) && (!rows || !cols || rows * cols != n)))
		return TK_E_INVAL;
	if (!n)
		return 0;
	struct tk_adamw8_k k = tk_adamw8_setup(lr, beta1, beta2, eps, weight_decay, step);
	if (!q1)
		return be->i->adamw8_f32(be, p, g, m, v, n, &k);
	return be->i->adamw8(be, p, g, q1, q2, absmax1, absmax2, n, rows, cols, &k);
}

int tk_sum_squares(struct tk_backend *be, double *out, const float *x, size_t n)
{
	if (!SLOT(be, sum_squares))
		return TK_E_UNSUPPORTED;
	return n ? be->i->sum_squares(be, out, x, n) : 0;
}

int tk_scale(struct tk_backend *be, float *x, float s, size_t n)
{
	if (!SLOT(be, scale))
		return TK_E_UNSUPPORTED;
	return n ? be->i->scale(be, x, s, n) : 0;
}

void *tk_backend_alloc(struct tk_backend *be, size_t bytes)
{
	if (be && be->i && be->i->alloc)
		return be->i->alloc(be, bytes);
	return malloc(bytes ? bytes : 1);
}

void tk_backend_free_mem(struct tk_backend *be, void *p)
{
	if (be && be->i && be->i->free)
		be->i->free(be, p);
	else
		free(p);
}

int tk_backend_sync(struct tk_backend *be)
{
	if (be && be->i && be->i->sync)
		return be->i->sync(be);
	return 0;
}

int tk_dequant_rows(struct tk_backend *be, const struct tk_qweight *q, int64_t row0, int64_t n,
		    float *out, struct tk_diag *d)
{
	if (!SLOT(be, dequant_rows))
		return tk_qweight_rows(q, row0, n, out, d);
	if (row0 < 0 || n < 0 || row0 > q->rows || n > q->rows - row0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "rows %lld..%lld outside a matrix of %lld rows",
				   (long long)row0, (long long)(row0 + n), (long long)q->rows);
	if (q->kind != TK_QK_INT8 && !tk_qkind_half(q->kind) &&
	    ((q->kind != TK_QK_NF4 && q->kind != TK_QK_FP4) ||
	     !tk_q4_blocksize_ok((long long)q->blocksize)))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "not a valid quantized weight");
	if (n == 0 || q->cols <= 0)
		return 0;
	if (tk_qkind_half(q->kind) && !be->i->host_memory) /* the CPU backend's alone */
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "16-bit weights are held on the CPU backend only");
	return be->i->dequant_rows(be, q, row0, n, out);
}

void tk_hold(struct tk_backend *be, const float *p, int rows, int cols, int ld)
{
	if (SLOT(be, hold) && p && rows > 0 && cols > 0 && ld >= cols)
		be->i->hold(be, p, rows, cols, ld);
}

void tk_unhold(struct tk_backend *be, const float *p)
{
	if (SLOT(be, unhold) && p)
		be->i->unhold(be, p);
}

int tk_backend_set_prec(struct tk_backend *be, int prec, struct tk_diag *d)
{
	int rc;

	if (!be || !be->i)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "no backend");
	if (prec < TK_PREC_FP32 || prec > TK_PREC_FP16)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "unknown precision %d", prec);
	if (prec != TK_PREC_FP32) {
		if (!be->i->prec_ok)
			return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
					   "the %s backend computes in fp32 only", be->i->name);
		if ((rc = be->i->prec_ok(be, prec, d)))
			return rc;
	}
	be->prec = prec;
	return 0;
}

int tk_qmatmul(struct tk_backend *be, const struct tk_qweight *q, int64_t row0, int n, int m,
	       const float *x, float *y, int ldy, float beta)
{
	if (!SLOT(be, qmatmul))
		return TK_E_UNSUPPORTED;
	if (!q || m < 0 || n < 0 || row0 < 0 || row0 > q->rows || n > q->rows - row0 ||
	    ldy < (n > 1 ? n : 1))
		return TK_E_INVAL;
	if (!m || !n)
		return 0;
	return be->i->qmatmul(be, q, row0, n, m, x, y, ldy, beta);
}

int tk_matmul_group(struct tk_backend *be, int m, int k, const float *x,
		    const struct tk_gemv_item *it, int count)
{
	if (!SLOT(be, matmul_group))
		return TK_E_UNSUPPORTED;
	if (m < 1 || k < 1 || count < 1 || count > TK_GEMV_GROUP_MAX)
		return TK_E_INVAL;
	for (int j = 0; j < count; j++) {
		const struct tk_qweight *q = it[j].q;
		if (it[j].n < 1 || (!it[j].w && (!q || q->cols != k || it[j].row0 < 0 ||
						  it[j].row0 > q->rows ||
						  it[j].n > q->rows - it[j].row0)))
			return TK_E_INVAL;
	}
	return be->i->matmul_group(be, m, k, x, it, count);
}

int tk_attention_decode(struct tk_backend *be, float *out, const float *q, const void *kc,
			const void *vc, const int32_t *seq, const int32_t *pos, int n,
			int max_len, int n_head, int n_kv_head, int head_dim,
			const struct tk_attn_opts *ao)
{
	struct tk_attn_opts f;
	if (!SLOT(be, attention_decode))
		return TK_E_UNSUPPORTED;
	if (n < 0 || max_len < 1 || n_head < 1 || n_kv_head < 1 || head_dim < 1 ||
	    n_head % n_kv_head || attn_opts(&f, ao, head_dim))
		return TK_E_INVAL;
	if (!n)
		return 0;
	return be->i->attention_decode(be, out, q, kc, vc, seq, pos, n, max_len, n_head,
				       n_kv_head, head_dim, &f);
}

int tk_copy_rows(struct tk_backend *be, float *dst, const float *src, const int64_t *idx, int n,
		 int dim)
{
	if (!SLOT(be, copy_rows))
		return TK_E_UNSUPPORTED;
	if (n < 0 || dim < 0)
		return TK_E_INVAL;
	if (!n || !dim)
		return 0;
	return be->i->copy_rows(be, dst, src, idx, n, dim);
}

int tk_store_rows_bf16(struct tk_backend *be, uint16_t *dst, const float *src,
		       const int64_t *idx, int n, int dim)
{
	if (!SLOT(be, store_rows_bf16))
		return TK_E_UNSUPPORTED;
	if (n < 0 || dim < 0)
		return TK_E_INVAL;
	if (!n || !dim)
		return 0;
	return be->i->store_rows_bf16(be, dst, src, idx, n, dim);
}

int tk_backend_mem_info(struct tk_backend *be, struct tk_mem_info *mi)
{
	memset(mi, 0, sizeof(*mi));
	if (!be || !be->i)
		return TK_E_INVAL;
	return be->i->mem_info ? be->i->mem_info(be, mi) : 0;
}

int tk_mem_limit_parse(const char *s, size_t *out, struct tk_diag *d)
{
	const char *what = "TK_DEVICE_MEMORY_LIMIT";
	unsigned long long v = 0, mul = 1;
	const char *p = s;

	*out = 0;
	if (!s || !*s)
		return 0;
	if (*p < '0' || *p > '9')
		goto bad;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (ULLONG_MAX - 9) / 10)
			goto big;
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	switch (*p) {
	case 'k': case 'K': mul = 1ull << 10; p++; break;
	case 'm': case 'M': mul = 1ull << 20; p++; break;
	case 'g': case 'G': mul = 1ull << 30; p++; break;
	case 't': case 'T': mul = 1ull << 40; p++; break;
	default: break;
	}
	if (*p)
		goto bad;
	if (!v)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "%s=%s: the limit must be above 0 (unset it for none)", what, s);
	if (v > SIZE_MAX / mul)
		goto big;
	*out = (size_t)(v * mul);
	return 0;
bad:
	return tk_diag_set(d, TK_E_INVAL, NULL, -1,
			   "%s=%s is not a byte count (use e.g. 8G, 512M or 1073741824)", what,
			   s);
big:
	return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%s=%s is too large", what, s);
}

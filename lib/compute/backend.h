/* backend.h - the operations the model runs, as a table per device.
 *
 * The model code calls tk_backend_*() wrappers only and never knows which
 * device computes.  Each backend is a `static const struct tk_backend_i`
 * (lib/compute/backend-cpu.c; kernels/backend-cuda.cu) whose slots may be
 * NULL where the op is not supported: the wrapper then returns
 * TK_E_UNSUPPORTED.  All tensors are fp32, row-major, contiguous unless a
 * leading dimension is given, and live in the backend's memory.  Ops
 * return 0 or a negative tk_err; none prints.
 *
 * Layouts: activations [rows, dim] with rows = B*T; attention q [B, T,
 * n_head, head_dim], k and v [B, T, n_kv_head, head_dim] (grouped-query:
 * query head h uses kv head h / (n_head / n_kv_head)).  "accumulates" means
 * the op adds into its output (gradients of shared weights).
 */
#ifndef TK_BACKEND_H
#define TK_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "base/tk.h"

struct tk_backend;
struct tk_qweight;
struct tk_mem_info;
struct tk_adamw8_k;

/* How a query attends: scale multiplies q.k (0 means 1/sqrt(head_dim));
 * window > 0 keeps keys j with i - window < j <= i (Mistral's and
 * Gemma's sliding window; 0 = full causal); softcap > 0 replaces each
 * scaled score s by softcap * tanh(s / softcap) before the softmax
 * (Gemma-2's attn_logit_softcapping; 0 = none).  The attention wrappers
 * take a pointer to one as their last parameter (NULL = all defaults) and
 * hand the slots a filled copy: scale > 0, window >= 0, softcap >= 0. */
struct tk_attn_opts {
	float scale;
	int window;
	float softcap;
	/* attention_decode only: the KV cache holds bf16 codes (as
	 * store_rows_bf16 writes them), not floats; 0 elsewhere */
	int cache_bf16;
};

/* One product of a group (matmul_group): y [m, n] (row stride n) = x W^T,
 * W the fp32 weight w [n, k] (row-major), or, when w is NULL, rows row0 ..
 * row0+n-1 of the quantized weight q (k columns). */
struct tk_gemv_item {
	const float *w;
	const struct tk_qweight *q;
	int64_t row0;
	int n;
	float *y;
};

/* Groups of matmul_group have at most this many weights. */
#define TK_GEMV_GROUP_MAX 4

struct tk_backend_i {
	const char *name;
	/* 1 when the backend's memory is the host's (alloc returns memory the
	 * CPU reads and writes directly, bounded by the host's RAM): a copy of
	 * host data into it gains nothing, and the host's limits are its
	 * limits.  0 for a device with its own memory. */
	int host_memory;
	/* C[m,n] = alpha * op(A) op(B) + beta * C, op(A) [m,k], op(B) [k,n];
	 * ta/tb: A/B stored transposed.  lda/ldb/ldc: row strides. */
	int (*matmul)(struct tk_backend *be, int ta, int tb, int m, int n, int k, float alpha,
		      const float *a, int lda, const float *b, int ldb, float beta, float *c,
		      int ldc);
	/* y[rows,dim] = LayerNorm(x) * w + b; saves mean and rstd per row. */
	int (*layernorm_fwd)(struct tk_backend *be, float *y, float *mean, float *rstd,
			     const float *x, const float *w, const float *b, int rows, int dim,
			     float eps);
	/* dx = (sets), dw, db (accumulate). */
	int (*layernorm_bwd)(struct tk_backend *be, float *dx, float *dw, float *db,
			     const float *dy, const float *x, const float *w, const float *mean,
			     const float *rstd, int rows, int dim);
	/* y = x * rsqrt(mean(x^2) + eps) * (w_off + w) (as HF LlamaRMSNorm,
	 * w_off 0, and GemmaRMSNorm, w_off 1, in fp32); dw gets d/dw. */
	int (*rmsnorm_fwd)(struct tk_backend *be, float *y, float *rstd, const float *x,
			   const float *w, float w_off, int rows, int dim, float eps);
	int (*rmsnorm_bwd)(struct tk_backend *be, float *dx, float *dw, const float *dy,
			   const float *x, const float *w, float w_off, const float *rstd,
			   int rows, int dim);
	/* GELU, tanh approximation (HF "gelu_new"). */
	int (*gelu_fwd)(struct tk_backend *be, float *y, const float *x, size_t n);
	int (*gelu_bwd)(struct tk_backend *be, float *dx, const float *x, const float *dy,
			size_t n);
	/* y = silu(gate) * up. */
	int (*swiglu_fwd)(struct tk_backend *be, float *y, const float *gate, const float *up,
			  size_t n);
	int (*swiglu_bwd)(struct tk_backend *be, float *dgate, float *dup, const float *gate,
			  const float *up, const float *dy, size_t n);
	/* y = gelu_tanh(gate) * up (Gemma's GeGLU, gelu_pytorch_tanh); the
	 * backward may write dgate over gate and dup over up. */
	int (*geglu_fwd)(struct tk_backend *be, float *y, const float *gate, const float *up,
			 size_t n);
	int (*geglu_bwd)(struct tk_backend *be, float *dgate, float *dup, const float *gate,
			 const float *up, const float *dy, size_t n);
	/* x = cap * tanh(x / cap) in place, cap > 0 (Gemma-2's
	 * final_logit_softcapping). */
	int (*logit_softcap)(struct tk_backend *be, float *x, size_t n, float cap);
	/* y[rows,dim] += bias[dim]; with set, y[rows,dim] = bias[dim] (y not
	 * read) */
	int (*bias_add)(struct tk_backend *be, float *y, const float *bias, int rows, int dim,
			int set);
	/* dbias[dim] += sum over rows of dy (accumulates). */
	int (*bias_grad)(struct tk_backend *be, float *dbias, const float *dy, int rows, int dim);
	/* y[i] += a * x[i] */
	int (*axpy)(struct tk_backend *be, float *y, float a, const float *x, size_t n);
	/* Rotary embedding in place on the first rot_dim numbers of each head
	 * of x [B*T, heads, head_dim] (HF rotate_half layout: pairs (i, i +
	 * rot_dim/2); the other head_dim - rot_dim numbers, Phi-3's partial
	 * rotary, are left as they are), position of row r = pos[r]: angle =
	 * pos * inv_freq[i] (inv_freq: rot_dim/2 floats in host memory, as
	 * model/rope.h computes them), cos and sin each multiplied by scale
	 * (HF's attention_scaling, 1 but for YaRN and LongRoPE); inverse = 1
	 * applies the transpose (the backward pass). */
	int (*rope)(struct tk_backend *be, float *x, const int32_t *pos, int rows, int heads,
		    int head_dim, int rot_dim, const float *inv_freq, float scale, int inverse);
	/* Causal attention as ao says (struct tk_attn_opts, filled by the
	 * wrapper): out [B,T,n_head,head_dim]; lse [B,n_head,T] saved
	 * log-sum-exp of the scaled (and capped) scores for the backward
	 * pass. */
	int (*attention_fwd)(struct tk_backend *be, float *out, float *lse, const float *q,
			     const float *k, const float *v, int B, int T, int n_head,
			     int n_kv_head, int head_dim, const struct tk_attn_opts *ao);
	/* dq, dk, dv are set (not accumulated); ao as in the forward. */
	int (*attention_bwd)(struct tk_backend *be, float *dq, float *dk, float *dv,
			     const float *dout, const float *q, const float *k, const float *v,
			     const float *out, const float *lse, int B, int T, int n_head,
			     int n_kv_head, int head_dim, const struct tk_attn_opts *ao);
	/* y[n,dim] = table[ids[i]] */
	int (*embedding_fwd)(struct tk_backend *be, float *y, const float *table,
			     const uint32_t *ids, int n, int dim);
	/* dtable[ids[i]] += dy[i] (accumulates; deterministic order). */
	int (*embedding_bwd)(struct tk_backend *be, float *dtable, const float *dy,
			     const uint32_t *ids, int n, int dim);
	/* Softmax cross-entropy over logits [rows, vocab] in place: rows whose
	 * target is < 0 are ignored.  Adds each counted row's loss to *loss_sum
	 * (double) and, when grad, overwrites logits with d(loss * scale)/dlogits
	 * = (softmax - onehot) * scale (0 for ignored rows).  With softcap > 0
	 * the logits are first capped in place (x = softcap * tanh(x /
	 * softcap), the loss is that of the capped logits) and the gradient is
	 * the one of the logits before capping: times 1 - (capped / softcap)^2. */
	int (*cross_entropy)(struct tk_backend *be, float *logits, const int32_t *targets,
			     int rows, int vocab, float scale, int grad, double *loss_sum,
			     float softcap);
	/* AdamW (torch.optim.AdamW, decoupled weight decay, bias-corrected),
	 * step counted from 1.  The hyperparameters are doubles because torch
	 * keeps them as Python floats: 1 - beta2 from a float beta2 = 0.999f
	 * is off by 1.3e-5 relative, which shows after a few steps. */
	int (*adamw)(struct tk_backend *be, float *p, const float *g, float *m, float *v,
		     size_t n, double lr, double beta1, double beta2, double eps,
		     double weight_decay, int step);
	/* *out += sum of x[i]^2 (in double). */
	int (*sum_squares)(struct tk_backend *be, double *out, const float *x, size_t n);
	/* x[i] *= s */
	int (*scale)(struct tk_backend *be, float *x, float s, size_t n);
	/* memory (optional on the CPU: NULL means malloc/free/memcpy) */
	void *(*alloc)(struct tk_backend *be, size_t bytes);
	void (*free)(struct tk_backend *be, void *p);
	int (*sync)(struct tk_backend *be);
	/* Releases be->ctx and whatever else init acquired (optional). */
	void (*destroy)(struct tk_backend *be);
	/* out[n, q->cols] = rows row0 .. row0+n-1 of the quantized weight q
	 * (lib/base/quant.h), bit for bit tk_qweight_rows.  The range is checked
	 * by the wrapper; q's buffers may be host memory (staged) or this
	 * backend's (tk_qweight_to_backend, compute/qweight-dev.h).  Optional:
	 * NULL dequantizes on the host with tk_qweight_rows. */
	int (*dequant_rows)(struct tk_backend *be, const struct tk_qweight *q, int64_t row0,
			    int64_t n, float *out);

	/* ---- precision, decode-step kernels, memory ---- */

	/* 0 when matmul can compute with operands of precision prec (enum
	 * tk_prec) on this device; TK_E_UNSUPPORTED with d saying why (and
	 * what to use instead) when not, e.g. bf16 on a GPU older than sm_80.
	 * NULL: fp32 only. */
	int (*prec_ok)(struct tk_backend *be, int prec, struct tk_diag *d);
	/* y[m, n] = x[m, q->cols] W^T + beta * y (row stride ldy), W = rows
	 * row0 .. row0+n-1 of the quantized weight q, read from its codes
	 * (never written out as fp32): the decode step's matmul on a 4-bit or
	 * int8 weight, for small m.  Each W element has the bits
	 * tk_qweight_rows gives it; products accumulate in fp32 in any order.
	 * Optional: NULL makes tk_lin_fwd dequantize tiles and call matmul. */
	int (*qmatmul)(struct tk_backend *be, const struct tk_qweight *q, int64_t row0, int n,
		       int m, const float *x, float *y, int ldy, float beta);
	/* The products of a group of weights on one x [m, k], m small: a
	 * decode step's q/k/v and gate/up projections, in one parallel loop
	 * rather than one each (on the CPU, each loop's start and end is a
	 * wait for every thread).  Each it[j].y gets the bits matmul (ta 0,
	 * tb 1, alpha 1, beta 0, ldy n) or qmatmul (beta 0) would give it.
	 * TK_E_UNSUPPORTED for a group it does not take (the caller then
	 * makes the products one by one).  Optional (NULL: one by one). */
	int (*matmul_group)(struct tk_backend *be, int m, int k, const float *x,
			    const struct tk_gemv_item *it, int count);
	/* Decode-step attention of n new rows over a KV cache: kc, vc
	 * [n_seq][max_len, n_kv_head * head_dim]; row i (query q[i] of
	 * [n, n_head * head_dim]) belongs to sequence seq[i] at position
	 * pos[i] and attends to positions j0 .. pos[i] of its sequence, j0 =
	 * pos[i] - ao->window + 1 when the window is set and that is
	 * positive, else 0; their keys and values are in the cache already.
	 * out [n, n_head * head_dim]; scores scaled and capped as ao says
	 * (filled by the wrapper); seq and pos may be host memory.  The cache
	 * holds floats, or bf16 codes when ao->cache_bf16 (TK_E_UNSUPPORTED
	 * where the backend has no such loop). */
	int (*attention_decode)(struct tk_backend *be, float *out, const float *q,
				const void *kc, const void *vc, const int32_t *seq,
				const int32_t *pos, int n, int max_len, int n_head,
				int n_kv_head, int head_dim, const struct tk_attn_opts *ao);
	/* dst row idx[i] = src row i, rows of dim floats (idx may be host
	 * memory): new keys and values into the KV cache. */
	int (*copy_rows)(struct tk_backend *be, float *dst, const float *src, const int64_t *idx,
			 int n, int dim);
	/* Fills *mi (struct tk_mem_info).  NULL: nothing known (all zero). */
	int (*mem_info)(struct tk_backend *be, struct tk_mem_info *mi);
	/* x[i] += tk_noise_uniform(key, i, mag) (base/rng.h): NEFTune's noise
	 * on the input embeddings. */
	int (*add_noise)(struct tk_backend *be, float *x, size_t n, uint64_t key, float mag);
	/* bitsandbytes' AdamW8bit step (base/adamw8-common.h, k from
	 * tk_adamw8_setup) on one parameter of n elements with 8-bit state:
	 * codes q1, q2 [n] and absmax1, absmax2 [ceil(n / 256)], blocked in
	 * the checkpoint order; p and g at tk_adamw8_at(i, rows, cols). */
	int (*adamw8)(struct tk_backend *be, float *p, const float *g, uint8_t *q1, uint8_t *q2,
		      float *absmax1, float *absmax2, size_t n, size_t rows, size_t cols,
		      const struct tk_adamw8_k *k);
	/* Its 32-bit state step (parameters under 4096 elements): m, v [n]. */
	int (*adamw8_f32)(struct tk_backend *be, float *p, const float *g, float *m, float *v,
			  size_t n, const struct tk_adamw8_k *k);
	/* The caller promises that the matrix at p (rows x cols, row stride
	 * ld) stays unchanged until unhold(p): a backend whose matmuls convert
	 * their operands to be->prec may convert it once and use the copy in
	 * every matmul that reads it while it is held (as autocast caches its
	 * casts of the weights).  A hold that cannot be kept (no memory) is
	 * simply not kept.  Optional, both: NULL means nothing to gain. */
	void (*hold)(struct tk_backend *be, const float *p, int rows, int cols, int ld);
	void (*unhold)(struct tk_backend *be, const float *p);
	/* copy_rows into a cache of bf16 codes: each float rounded to the
	 * nearest bf16 (ties to even), as torch's .to(torch.bfloat16).
	 * Optional: NULL, no bf16 cache on this backend. */
	int (*store_rows_bf16)(struct tk_backend *be, uint16_t *dst, const float *src,
			       const int64_t *idx, int n, int dim);
};

/* The precision of matmul's operands: they are rounded to it (round to
 * nearest even) and their products accumulate in fp32 into an fp32 C; on
 * the CPU an emulation of what the GPU computes, no faster than fp32. */
enum tk_prec {
	TK_PREC_FP32 = 0, /* fp32 (the default) */
	TK_PREC_TF32,     /* 10-bit mantissa, fp32 range (Ampere tensor cores) */
	TK_PREC_BF16,     /* bfloat16: 7-bit mantissa, fp32 range */
	TK_PREC_FP16,     /* IEEE half: 10-bit mantissa, |x| > 65504 rounds to inf */
};

/* Memory a backend reports (bytes). */
struct tk_mem_info {
	size_t in_use;    /* held by this backend's alloc now */
	size_t peak;      /* the most in_use has been since init */
	size_t limit;     /* what alloc refuses to go beyond (0: no limit known) */
	size_t dev_used;  /* the whole device, every process, as nvidia-smi shows */
	size_t dev_total; /* (dev_*: 0 where unknown, as on the CPU) */
};

struct tk_backend {
	const struct tk_backend_i *i;
	int threads;  /* CPU threads (OpenMP and OpenBLAS) */
	void *ctx;    /* backend private */
	int prec;     /* enum tk_prec of matmul's operands (tk_backend_set_prec) */
};

/* The CPU backend, fp32, OpenBLAS for GEMM, OpenMP across threads (0: one
 * per core). */
int tk_backend_cpu_init(struct tk_backend *be, int threads, struct tk_diag *d);
/* Releases what init acquired (the destroy slot); be may be NULL. */
void tk_backend_free(struct tk_backend *be);

/* The backend for a device spec: "auto", "cpu", "cuda" or "cuda:N" (as
 * tk_device_parse, lib/compute/device.h; NULL means "auto").  threads is the CPU
 * backend's thread count (0: one per core), also kept in be->threads by
 * the CUDA backend for the host-side loops of its callers.  "auto" takes
 * CUDA device 0 when there is one and its backend starts, else the CPU:
 * then 0 is returned with a note for the user in d->msg (why the CPU
 * was taken); otherwise d->msg is empty on success.  With TK_CUDA_TF32=1
 * in the environment the CUDA GEMMs may use TF32 tensor cores.  Errors:
 * TK_E_INVAL for an unknown spec, TK_E_UNSUPPORTED for "cuda" in a build
 * without CUDA, TK_E_DEVICE when the CUDA device asked for is missing or
 * fails to start (d says which and why). */
int tk_backend_init(struct tk_backend *be, const char *spec, int threads, struct tk_diag *d);

/* Flags of tk_backend_cuda_init. */
#define TK_CUDA_TF32 1 /* cuBLAS may use TF32 tensor cores for the fp32 GEMMs */

/* The CUDA backend (kernels/backend-cuda.cu) on device index: managed
 * memory from alloc, cuBLAS (loaded at run time) for matmul, every op
 * waiting for its work before it returns.  TK_E_UNSUPPORTED in a build
 * without CUDA (TK_USE_CUDA); TK_E_DEVICE when the device is missing or
 * cuBLAS cannot be loaded; TK_E_UNSUPPORTED for a device without managed
 * memory. */
int tk_backend_cuda_init(struct tk_backend *be, int index, int flags, int threads,
			 struct tk_diag *d);

/* The message of the CUDA backend's last failed call ("" for none, or for
 * a backend that is not CUDA): the ops return TK_E_DEVICE without a diag. */
const char *tk_backend_cuda_last_error(const struct tk_backend *be);

/* Wrappers: check the slot and call it (TK_E_UNSUPPORTED when NULL).
 * Sizes that are negative or do not fit together (a leading dimension
 * smaller than its row, n_head not a multiple of n_kv_head, an odd RoPE
 * head_dim, a step below 1...) are TK_E_INVAL before the backend is
 * called; zero-sized work returns 0 without calling it. */
int tk_matmul(struct tk_backend *be, int ta, int tb, int m, int n, int k, float alpha,
	      const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
int tk_layernorm_fwd(struct tk_backend *be, float *y, float *mean, float *rstd, const float *x,
		     const float *w, const float *b, int rows, int dim, float eps);
int tk_layernorm_bwd(struct tk_backend *be, float *dx, float *dw, float *db, const float *dy,
		     const float *x, const float *w, const float *mean, const float *rstd,
		     int rows, int dim);
int tk_rmsnorm_fwd(struct tk_backend *be, float *y, float *rstd, const float *x, const float *w,
		   float w_off, int rows, int dim, float eps);
int tk_rmsnorm_bwd(struct tk_backend *be, float *dx, float *dw, const float *dy, const float *x,
		   const float *w, float w_off, const float *rstd, int rows, int dim);
int tk_gelu_fwd(struct tk_backend *be, float *y, const float *x, size_t n);
int tk_gelu_bwd(struct tk_backend *be, float *dx, const float *x, const float *dy, size_t n);
int tk_swiglu_fwd(struct tk_backend *be, float *y, const float *gate, const float *up, size_t n);
int tk_swiglu_bwd(struct tk_backend *be, float *dgate, float *dup, const float *gate,
		  const float *up, const float *dy, size_t n);
int tk_geglu_fwd(struct tk_backend *be, float *y, const float *gate, const float *up, size_t n);
int tk_geglu_bwd(struct tk_backend *be, float *dgate, float *dup, const float *gate,
		 const float *up, const float *dy, size_t n);
/* TK_E_INVAL unless cap > 0 (finite). */
int tk_logit_softcap(struct tk_backend *be, float *x, size_t n, float cap);
int tk_bias_add(struct tk_backend *be, float *y, const float *bias, int rows, int dim);
/* Each row of y [rows, dim] = bias (y not read): a matmul with beta 1 then
 * adds to it. */
int tk_bias_set(struct tk_backend *be, float *y, const float *bias, int rows, int dim);
int tk_bias_grad(struct tk_backend *be, float *dbias, const float *dy, int rows, int dim);
int tk_axpy(struct tk_backend *be, float *y, float a, const float *x, size_t n);
/* x[i] += uniform noise in [-mag, mag) from the stream key (add_noise). */
int tk_add_noise(struct tk_backend *be, float *x, size_t n, uint64_t key, float mag);
/* rot_dim: even, 2 to head_dim (TK_E_INVAL otherwise). */
int tk_rope(struct tk_backend *be, float *x, const int32_t *pos, int rows, int heads,
	    int head_dim, int rot_dim, const float *inv_freq, float scale, int inverse);
/* The attention slots' wrappers: ao NULL means the defaults (scale
 * 1/sqrt(head_dim), full causal, no soft-capping).  TK_E_INVAL for sizes
 * that do not fit or a negative or non-finite scale, window or softcap. */
int tk_attention_fwd(struct tk_backend *be, float *out, float *lse, const float *q,
		     const float *k, const float *v, int B, int T, int n_head, int n_kv_head,
		     int head_dim, const struct tk_attn_opts *ao);
int tk_attention_bwd(struct tk_backend *be, float *dq, float *dk, float *dv, const float *dout,
		     const float *q, const float *k, const float *v, const float *out,
		     const float *lse, int B, int T, int n_head, int n_kv_head, int head_dim,
		     const struct tk_attn_opts *ao);
int tk_embedding_fwd(struct tk_backend *be, float *y, const float *table, const uint32_t *ids,
		     int n, int dim);
int tk_embedding_bwd(struct tk_backend *be, float *dtable, const float *dy, const uint32_t *ids,
		     int n, int dim);
/* softcap: 0 none, else > 0 (TK_E_INVAL otherwise). */
int tk_cross_entropy(struct tk_backend *be, float *logits, const int32_t *targets, int rows,
		     int vocab, float scale, int grad, double *loss_sum, float softcap);
int tk_adamw(struct tk_backend *be, float *p, const float *g, float *m, float *v, size_t n,
	     double lr, double beta1, double beta2, double eps, double weight_decay, int step);
/* bitsandbytes' AdamW8bit (optim "adamw_8bit", base/adamw8-common.h) on
 * one whole parameter of n elements, step counted from 1, hyperparameters
 * as tk_adamw's.  With q1 set, the 8-bit state: codes q1, q2 [n] and their
 * absmax1, absmax2 [ceil(n / 256)] (zeros before the first step), in the
 * order of the checkpoint tensor; rows, cols (0, 0: the same order) name
 * a parameter held transposed, checkpoint shape [rows, cols] held as
 * [cols, rows] (GPT-2's Conv1D).  With q1 NULL, the fp32 state m, v [n]
 * of bitsandbytes' 32-bit path (absmax and rows unused).  Returns 0,
 * TK_E_INVAL for bad hyperparameters, or TK_E_UNSUPPORTED. */
int tk_adamw8(struct tk_backend *be, float *p, const float *g, uint8_t *q1, uint8_t *q2,
	      float *absmax1, float *absmax2, float *m, float *v, size_t n, size_t rows,
	      size_t cols, double lr, double beta1, double beta2, double eps,
	      double weight_decay, int step);
int tk_sum_squares(struct tk_backend *be, double *out, const float *x, size_t n);
int tk_scale(struct tk_backend *be, float *x, float s, size_t n);
void *tk_backend_alloc(struct tk_backend *be, size_t bytes);
void tk_backend_free_mem(struct tk_backend *be, void *p);
/* Waits for the queued work (0 at once where the slot is NULL). */
int tk_backend_sync(struct tk_backend *be);

/* Dequantizes rows row0 .. row0+n-1 of q into out [n, q->cols] (fp32) on
 * be's device when it has a dequant_rows slot, else on the host with
 * tk_qweight_rows: the same bits either way.  out is be's memory (or host
 * memory, staged).  Returns 0; TK_E_INVAL (d says why) for rows outside
 * the matrix or a weight that is not a valid quantized layout; a
 * backend's error (TK_E_DEVICE, TK_E_NOMEM) without a diag message. */
int tk_dequant_rows(struct tk_backend *be, const struct tk_qweight *q, int64_t row0, int64_t n,
		    float *out, struct tk_diag *d);

/* Sets the precision of be's matmuls (enum tk_prec) when the backend
 * supports it (prec_ok): 0, or TK_E_UNSUPPORTED / TK_E_INVAL with d saying
 * why; be->prec is left as it was on failure. */
int tk_backend_set_prec(struct tk_backend *be, int prec, struct tk_diag *d);

/* The hold and unhold slots (no-ops where NULL): between them the matrix
 * at p must not change.  The lm head's weight is held across its chunks'
 * matmuls, which --bf16 on the CPU would otherwise convert to bf16 once
 * per chunk and direction. */
void tk_hold(struct tk_backend *be, const float *p, int rows, int cols, int ld);
void tk_unhold(struct tk_backend *be, const float *p);
/* The wrappers of the slots above: as the others (TK_E_UNSUPPORTED when
 * the slot is NULL, TK_E_INVAL for sizes that do not fit). */
int tk_qmatmul(struct tk_backend *be, const struct tk_qweight *q, int64_t row0, int n, int m,
	       const float *x, float *y, int ldy, float beta);
int tk_matmul_group(struct tk_backend *be, int m, int k, const float *x,
		    const struct tk_gemv_item *it, int count);
int tk_attention_decode(struct tk_backend *be, float *out, const float *q, const void *kc,
			const void *vc, const int32_t *seq, const int32_t *pos, int n,
			int max_len, int n_head, int n_kv_head, int head_dim,
			const struct tk_attn_opts *ao);
int tk_copy_rows(struct tk_backend *be, float *dst, const float *src, const int64_t *idx, int n,
		 int dim);
/* TK_E_UNSUPPORTED where the backend keeps no bf16 cache. */
int tk_store_rows_bf16(struct tk_backend *be, uint16_t *dst, const float *src,
		       const int64_t *idx, int n, int dim);
/* Fills *mi (zeros where the backend knows nothing); always 0 for a
 * started backend, TK_E_INVAL for one that is not. */
int tk_backend_mem_info(struct tk_backend *be, struct tk_mem_info *mi);

/* The value of TK_DEVICE_MEMORY_LIMIT, s (may be NULL), in bytes into
 * *out: digits with an optional K, M, G or T suffix (powers of 1024, either
 * case); NULL or "" is no limit (*out = 0).  Every backend's init reads it
 * and its alloc refuses to hold more (struct tk_mem_info.limit).  Returns
 * 0, or TK_E_INVAL with d naming the variable for anything else (0, a
 * fraction, another suffix, an overflow). */
int tk_mem_limit_parse(const char *s, size_t *out, struct tk_diag *d);

#endif

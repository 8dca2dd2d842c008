/* ops-cuda.cuh - the launchers of the CUDA kernels behind kernels/backend-cuda.cu.
 *
 * Each launcher enqueues its kernels on stream st and returns the launch
 * status (cudaGetLastError); it neither allocates nor synchronizes.  Every
 * pointer is device-accessible (device or managed memory): the backend has
 * staged host pointers before calling.  Scratch buffers are the caller's,
 * of the size named next to each launcher.  The semantics are those of the
 * slot of struct tk_backend_i (lib/compute/backend.h) of the same name, and the CPU
 * backend (lib/compute/backend-cpu.c) is the reference they are tested against
 * (tests/gpu/test-cuda-ops.c).
 */
#ifndef TK_OPS_CUDA_CUH
#define TK_OPS_CUDA_CUH

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "base/math-common.h"

/* Rows per partial sum of the column reductions (colsum scratch). */
#define TK_CU_COLSUM_ROWS 64

/* Doubles of scratch cu_colsum needs: 2 * dim * ceil(rows / TK_CU_COLSUM_ROWS). */
size_t cu_colsum_scratch(int rows, int dim);

cudaError_t cu_layernorm_fwd(cudaStream_t st, float *y, float *mean, float *rstd,
			     const float *x, const float *w, const float *b, int rows, int dim,
			     float eps);
/* dx (set, may be NULL), dw and db (accumulate, may be NULL); scratch of
 * cu_colsum_scratch(rows, dim) doubles. */
cudaError_t cu_layernorm_bwd(cudaStream_t st, float *dx, float *dw, float *db, const float *dy,
			     const float *x, const float *w, const float *mean,
			     const float *rstd, int rows, int dim, double *scratch);
/* Weights w_off + w (Gemma: 1). */
cudaError_t cu_rmsnorm_fwd(cudaStream_t st, float *y, float *rstd, const float *x,
			   const float *w, float w_off, int rows, int dim, float eps);
cudaError_t cu_rmsnorm_bwd(cudaStream_t st, float *dx, float *dw, const float *dy,
			   const float *x, const float *w, float w_off, const float *rstd,
			   int rows, int dim, double *scratch);
/* dbias[j] += sum over rows of dy (rows in order per partial, partials in
 * order); scratch of cu_colsum_scratch(rows, dim) doubles. */
cudaError_t cu_bias_grad(cudaStream_t st, float *dbias, const float *dy, int rows, int dim,
			 double *scratch);

cudaError_t cu_gelu_fwd(cudaStream_t st, float *y, const float *x, size_t n);
cudaError_t cu_gelu_bwd(cudaStream_t st, float *dx, const float *x, const float *dy, size_t n);
cudaError_t cu_swiglu_fwd(cudaStream_t st, float *y, const float *gate, const float *up,
			  size_t n);
cudaError_t cu_swiglu_bwd(cudaStream_t st, float *dgate, float *dup, const float *gate,
			  const float *up, const float *dy, size_t n);
cudaError_t cu_geglu_fwd(cudaStream_t st, float *y, const float *gate, const float *up,
			 size_t n);
cudaError_t cu_geglu_bwd(cudaStream_t st, float *dgate, float *dup, const float *gate,
			 const float *up, const float *dy, size_t n);
/* x = cap tanh(x / cap) in place. */
cudaError_t cu_logit_softcap(cudaStream_t st, float *x, size_t n, float cap);
/* y[rows, dim] += bias, or with set = bias (y not read) */
cudaError_t cu_bias_add(cudaStream_t st, float *y, const float *bias, int rows, int dim, int set);
cudaError_t cu_axpy(cudaStream_t st, float *y, float a, const float *x, size_t n);
cudaError_t cu_scale(cudaStream_t st, float *x, float s, size_t n);
cudaError_t cu_add_noise(cudaStream_t st, float *x, size_t n, uint64_t key, float mag);
/* C = beta C for the k == 0 GEMM (beta 0 writes zeros, as BLAS does). */
cudaError_t cu_scale_matrix(cudaStream_t st, float *c, int m, int n, int ldc, float beta);
/* inv_freq: rot_dim / 2 floats in device memory, the host's table
 * (model/rope.h), the same the CPU backend rotates by; cos and sin are
 * each multiplied by scale in fp32, as cpu_rope does.  The first rot_dim
 * numbers of each head of head_dim are rotated, the rest left. */
cudaError_t cu_rope(cudaStream_t st, float *x, const int32_t *pos, const float *inv_freq,
		    int rows, int heads, int head_dim, int rot_dim, float scale, int inverse);

cudaError_t cu_adamw(cudaStream_t st, float *p, const float *g, float *m, float *v, size_t n,
		     struct tk_adamw_k k);

/* Elements per partial sum of cu_sum_squares. */
#define TK_CU_SUMSQ_CHUNK 32768
/* part[c] = sum of x[i]^2 over chunk c (double); ceil(n / chunk) partials. */
cudaError_t cu_sum_squares(cudaStream_t st, double *part, const float *x, size_t n);

/* Largest head_dim the attention kernels take (their tiles live in 48 KiB
 * of shared memory); larger is TK_E_UNSUPPORTED.  scale, window and
 * softcap are struct tk_attn_opts' fields, filled (scale > 0). */
int cu_attention_max_dim(void);
cudaError_t cu_attention_fwd(cudaStream_t st, float *out, float *lse, const float *q,
			     const float *k, const float *v, int B, int T, int H, int KV, int D,
			     float scale, int window, float softcap);
/* scratch: B * H * T floats (the per-row dot(dout, out)). */
cudaError_t cu_attention_bwd(cudaStream_t st, float *dq, float *dk, float *dv,
			     const float *dout, const float *q, const float *k, const float *v,
			     const float *out, const float *lse, int B, int T, int H, int KV,
			     int D, float scale, int window, float softcap, float *scratch);

cudaError_t cu_embedding_fwd(cudaStream_t st, float *y, const float *table, const uint32_t *ids,
			     int n, int dim);
/* scratch: 2 n ints (the next occurrence of each id, first-occurrence flags). */
cudaError_t cu_embedding_bwd(cudaStream_t st, float *dtable, const float *dy,
			     const uint32_t *ids, int n, int dim, int *scratch);

/* Row losses into row_loss[rows] (0 for ignored rows); targets already
 * checked to be < vocab. */
cudaError_t cu_cross_entropy(cudaStream_t st, float *logits, const int32_t *targets, int rows,
			     int vocab, float scale, int grad, double *row_loss, float softcap);

/* ---- decode (kernels/decode.cu) ---- */

/* y[i, r] = x[i] . W[row0 + r] (+ beta y[i, r]) for i < m, r < n, W a
 * 4-bit weight [*, cols] whose buffers are given as slices: data from
 * packed byte pbase = (row0 * cols) / 2 on, absmax (not nested) or qabsmax
 * from block b0 = (row0 * cols) / blocksize on, nested_absmax from nested
 * block nb0 = b0 / 256 on (NULL qabsmax: not nested). */
cudaError_t cu_qmatmul4(cudaStream_t st, float *y, int ldy, float beta, const float *x, int m,
			int n, long long row0, size_t cols, const uint8_t *data, size_t pbase,
			const float *absmax, const uint8_t *qabsmax, const float *nested_absmax,
			size_t b0, size_t nb0, float offset, int fp4, size_t blocksize);
/* The same for an int8 weight: codes and scb from row row0 on. */
cudaError_t cu_qmatmul8(cudaStream_t st, float *y, int ldy, float beta, const float *x, int m,
			int n, size_t cols, const int8_t *codes, const float *scb);
/* Largest head_dim cu_attention_decode takes (cudaErrorInvalidValue past it). */
int cu_attention_decode_max_dim(void);
/* seq and pos device-accessible, already checked (0 <= pos < max_len);
 * the cache holds floats, or bf16 codes when bf16. */
cudaError_t cu_attention_decode(cudaStream_t st, float *out, const float *q, const void *kc,
				const void *vc, int bf16, const int32_t *seq, const int32_t *pos,
				int n, int max_len, int H, int KV, int D, float scale, int window,
				float softcap);
/* idx device-accessible, already checked (>= 0). */
cudaError_t cu_copy_rows(cudaStream_t st, float *dst, const float *src, const int64_t *idx,
			 int n, int dim);
/* cu_copy_rows into bf16 codes (tk_bf16_code). */
cudaError_t cu_store_rows_bf16(cudaStream_t st, uint16_t *dst, const float *src,
			       const int64_t *idx, int n, int dim);

#endif

/* cross-entropy.cu - softmax cross-entropy with ignored rows, in place.
 *
 * A block per row, as cpu_cross_entropy's ce_row: the maximum, the sum of
 * tk_expf_poly(x - max) (stored in the row when grad), then the row scaled
 * by scale / sum and scale taken off the target's entry; the row's loss
 * log(sum) + max - x[target] in double into row_loss (the backend adds the
 * rows in order on the host).  Ignored rows (target < 0) lose 0 and, with
 * grad, become zeros.
 */
#include "ops-cuda.cuh"
#include "reduce.cuh"

#include "base/math-common.h"

#define CE_THREADS 256

__global__ void ce_k(float *logits, const int32_t *targets, int vocab, float scale, int grad,
		     double *row_loss, float cap)
{
	__shared__ float sh[32];
	size_t r = blockIdx.x;
	float *x = logits + r * vocab;
	int tg = targets[r];
	if (tg < 0) { /* the whole block takes this branch */
		if (grad)
			for (int j = threadIdx.x; j < vocab; j += blockDim.x)
				x[j] = 0.0f;
		if (!threadIdx.x)
			row_loss[r] = 0.0;
		return;
	}
	if (cap > 0) { /* final_logit_softcapping, in place (the CPU's ce_row) */
		for (int j = threadIdx.x; j < vocab; j += blockDim.x)
			x[j] = tk_softcap(x[j], cap);
		__syncthreads();
	}
	float xt = x[tg]; /* read by all before the first barrier; written after */
	float mx = -INFINITY;
	for (int j = threadIdx.x; j < vocab; j += blockDim.x)
		mx = fmaxf(mx, x[j]);
	mx = tk_block_max(mx, sh);
	float sum = 0.0f;
	for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
		float e = tk_expf_poly(x[j] - mx);
		if (grad && !(cap > 0))
			x[j] = e;
		sum += e;
	}
	sum = tk_block_sum(sum, sh);
	if (grad && cap > 0) {
		/* the exponentials again: x holds the capped logits the chain
		 * rule's 1 - (x / cap)^2 needs */
		float f = scale / sum, tt = xt / cap;
		for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
			float t = x[j] / cap;
			float v = tk_expf_poly(x[j] - mx) * f * (1.0f - t * t);
			x[j] = j == tg ? __fsub_rn(v, __fmul_rn(scale, 1.0f - tt * tt)) : v;
		}
	} else if (grad) {
		float f = scale / sum;
		/* each thread rescales the entries it wrote */
		for (int j = threadIdx.x; j < vocab; j += blockDim.x)
			x[j] = j == tg ? __fsub_rn(__fmul_rn(x[j], f), scale) : x[j] * f;
	}
	if (!threadIdx.x)
		row_loss[r] = log((double)sum) + (double)mx - (double)xt;
}

cudaError_t cu_cross_entropy(cudaStream_t st, float *logits, const int32_t *targets, int rows,
			     int vocab, float scale, int grad, double *row_loss, float softcap)
{
	ce_k<<<rows, CE_THREADS, 0, st>>>(logits, targets, vocab, scale, grad, row_loss, softcap);
	return cudaGetLastError();
}

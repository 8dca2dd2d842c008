/* adamw8.cu - bitsandbytes' AdamW with 8-bit state on the GPU
 * (kernels/adamw8.cuh).
 *
 * The 8-bit kernel gives each block of 256 state elements (bitsandbytes'
 * quantization block) one thread block of 256 threads, grid-stride over
 * the blocks: each thread dequantizes its element, updates m, v and the
 * parameter, the block takes the new absmax of m and of v (tk_block_max,
 * a maximum: the same in any order) and each thread quantizes its element
 * against them.  The two 256-entry code books are copied to shared memory
 * (the threads' code indices differ, which __constant__ memory would
 * serialize).  The 32-bit kernel is elementwise.  The math is
 * lib/base/adamw8-common.h's, shared with the CPU backend; there every
 * product, sum, quotient and square root is an _rn intrinsic in device
 * code, so nvcc fuses nothing the CPU does not.
 */
#include "adamw8.cuh"
#include "reduce.cuh"

#define A8_THREADS TK_ADAMW8_BLOCK
#define EW_THREADS 256

__global__ void __launch_bounds__(A8_THREADS)
adamw8_k(float *p, const float *g, uint8_t *q1, uint8_t *q2, float *absmax1, float *absmax2,
	 size_t n, size_t rows, size_t cols, struct tk_adamw8_k k)
{
	__shared__ float c1[256], c2[256], sh[32];
	const size_t nb = (n + TK_ADAMW8_BLOCK - 1) / TK_ADAMW8_BLOCK;

	c1[threadIdx.x] = tk_dynamic_code[threadIdx.x];
	c2[threadIdx.x] = tk_udynamic_code[threadIdx.x];
	__syncthreads();
	for (size_t b = blockIdx.x; b < nb; b += gridDim.x) {
		const size_t i = b * TK_ADAMW8_BLOCK + threadIdx.x;
		const int live = i < n;
		const float a1 = absmax1[b], a2 = absmax2[b];
		float m = 0.0f, v = 0.0f;

		if (live) {
			const size_t at = tk_adamw8_at(i, rows, cols);
			m = __fmul_rn(c1[q1[i]], a1);
			v = __fmul_rn(c2[q2[i]], a2);
			tk_adamw8_moments(&k, g[at], &m, &v);
			p[at] = tk_adamw8_param(&k, p[at], m, v);
		}
		/* every thread has read absmax[b] before the first barrier in
		 * tk_block_max, so thread 0 may overwrite it after */
		const float max1 = tk_block_max(live ? fabsf(m) : 0.0f, sh);
		const float max2 = tk_block_max(live ? fabsf(v) : 0.0f, sh);
		if (threadIdx.x == 0) {
			absmax1[b] = max1;
			absmax2[b] = max2;
		}
		if (live) { /* an all-zero block: code 0, as bitsandbytes */
			q1[i] = max1 != 0.0f
					? tk_q8_index(c1, __fmul_rn(m, __fdiv_rn(1.0f, max1)))
					: 0;
			q2[i] = max2 != 0.0f
					? tk_q8_index(c2, __fmul_rn(v, __fdiv_rn(1.0f, max2)))
					: 0;
		}
	}
}

__global__ void adamw8_f32_k(float *p, const float *g, float *m, float *v, size_t n,
			     struct tk_adamw8_k k)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float mi = m[i], vi = v[i];
		tk_adamw8_moments(&k, g[i], &mi, &vi);
		p[i] = tk_adamw8_param32(&k, p[i], mi, vi);
		m[i] = mi;
		v[i] = vi;
	}
}

cudaError_t cu_adamw8(cudaStream_t st, float *p, const float *g, uint8_t *q1, uint8_t *q2,
		      float *absmax1, float *absmax2, size_t n, size_t rows, size_t cols,
		      struct tk_adamw8_k k)
{
	size_t nb = (n + TK_ADAMW8_BLOCK - 1) / TK_ADAMW8_BLOCK;
	unsigned grid = nb > 65535u * 16u ? 65535u * 16u : (unsigned)nb;
	adamw8_k<<<grid ? grid : 1, A8_THREADS, 0, st>>>(p, g, q1, q2, absmax1, absmax2, n, rows,
							  cols, k);
	return cudaGetLastError();
}

cudaError_t cu_adamw8_f32(cudaStream_t st, float *p, const float *g, float *m, float *v,
			  size_t n, struct tk_adamw8_k k)
{
	adamw8_f32_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(p, g, m, v, n, k);
	return cudaGetLastError();
}

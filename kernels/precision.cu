/* precision.cu - fp32 to bf16 / fp16 codes for the mixed-precision GEMMs
 * (precision.cuh).  A grid-stride loop over the packed output. */
#include "precision.cuh"

#include "base/math-common.h"
#include "reduce.cuh"

#define CV_THREADS 256

__global__ void round_codes_k(unsigned short *dst, const float *src, int cols, int ld,
			      size_t n, int bf16)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		size_t r = i / (size_t)cols, j = i % (size_t)cols;
		float x = src[r * (size_t)ld + j];
		dst[i] = bf16 ? tk_bf16_code(x) : tk_f16_code(x);
	}
}

cudaError_t cu_round_codes(cudaStream_t st, unsigned short *dst, const float *src, int rows,
			   int cols, int ld, int bf16)
{
	size_t n = (size_t)rows * (size_t)cols;
	if (!n)
		return cudaSuccess;
	round_codes_k<<<tk_grid(n, CV_THREADS), CV_THREADS, 0, st>>>(dst, src, cols, ld, n, bf16);
	return cudaGetLastError();
}

__global__ void round_tf32_k(float *dst, const float *src, int cols, int ld, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		size_t r = i / (size_t)cols, j = i % (size_t)cols;
		dst[i] = tk_round_tf32(src[r * (size_t)ld + j]);
	}
}

cudaError_t cu_round_tf32(cudaStream_t st, float *dst, const float *src, int rows, int cols,
			  int ld)
{
	size_t n = (size_t)rows * (size_t)cols;
	if (!n)
		return cudaSuccess;
	round_tf32_k<<<tk_grid(n, CV_THREADS), CV_THREADS, 0, st>>>(dst, src, cols, ld, n);
	return cudaGetLastError();
}

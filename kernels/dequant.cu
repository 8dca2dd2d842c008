/* dequant.cu - NF4, FP4 and int8 dequantization on the GPU (the
 * dequant_rows slot; kernels/dequant.cuh).
 *
 * Memory bound: a 4-bit weight reads half a byte (plus its block's
 * statistics, shared by 64 or more elements) and writes 4 bytes.  One
 * thread per packed byte of the slice (two elements, which always share a
 * block: block sizes are even), grid-stride, the 16 code values in shared
 * memory (a thread's code index differs from its neighbours', which
 * __constant__ memory would serialize); the int8 kernel is one
 * thread per element.  Rounding as lib/base/quant.c: the nested absmax is a
 * rounded product then a rounded sum, each value one rounded product.
 */
#include "dequant.cuh"
#include "reduce.cuh"

#include "base/quant-common.h"

extern "C" {
#include "base/quant.h"
}

#define DQ_THREADS 256

__global__ void dequant4_k(float *out, const uint8_t *data, const float *absmax,
			   const uint8_t *qabsmax, const float *nested_absmax, float offset,
			   int fp4, size_t blocksize, size_t e0, size_t e1)
{
	const size_t p0 = e0 >> 1, np = ((e1 + 1) >> 1) - p0;
	const size_t b0 = e0 / blocksize, nb0 = b0 / TK_Q4_NESTED_BLOCKSIZE;
	__shared__ float code[16]; /* divergent reads: not __constant__ */

	if (threadIdx.x < 16)
		code[threadIdx.x] = fp4 ? tk_fp4_code[threadIdx.x] : tk_nf4_code[threadIdx.x];
	__syncthreads();
	for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < np;
	     t += (size_t)gridDim.x * blockDim.x) {
		const size_t e = (p0 + t) << 1; /* first element of this byte */
		const size_t b = e / blocksize;
		const unsigned v = data[t];
		float am;

		if (qabsmax)
			am = __fadd_rn(__fmul_rn(tk_dynamic_code[qabsmax[b - b0]],
						 nested_absmax[b / TK_Q4_NESTED_BLOCKSIZE - nb0]),
				       offset);
		else
			am = absmax[b - b0];
		if (e >= e0)
			out[e - e0] = __fmul_rn(code[v >> 4], am);
		if (e + 1 < e1)
			out[e + 1 - e0] = __fmul_rn(code[v & 15], am);
	}
}

__global__ void dequant8_k(float *out, const int8_t *codes, const float *scb, size_t n,
			   size_t cols)
{
	const float inv127 = (float)(1.0 / 127.0);
	const size_t total = n * cols;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
	     i += (size_t)gridDim.x * blockDim.x) {
		const float s = __fmul_rn(scb[i / cols], inv127);

		out[i] = __fmul_rn((float)codes[i], s);
	}
}

cudaError_t cu_dequant4(cudaStream_t st, float *out, const uint8_t *data, const float *absmax,
			const uint8_t *qabsmax, const float *nested_absmax, float offset,
			int fp4, size_t blocksize, size_t e0, size_t e1)
{
	size_t np = ((e1 + 1) >> 1) - (e0 >> 1);

	dequant4_k<<<tk_grid(np, DQ_THREADS), DQ_THREADS, 0, st>>>(
		out, data, absmax, qabsmax, nested_absmax, offset, fp4, blocksize, e0, e1);
	return cudaGetLastError();
}

cudaError_t cu_dequant8(cudaStream_t st, float *out, const int8_t *codes, const float *scb,
			size_t n, size_t cols)
{
	dequant8_k<<<tk_grid(n * cols, DQ_THREADS), DQ_THREADS, 0, st>>>(out, codes, scb, n,
									   cols);
	return cudaGetLastError();
}

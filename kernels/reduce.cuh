/* reduce.cuh - block-wide sums and maxima for the CUDA kernels.
 *
 * A fixed tree (warp shuffles, then the warps' results in warp order), so a
 * kernel gives the same bits on every run.  blockDim.x must be a multiple
 * of 32 and at most 1024; every thread of the block must call, and gets the
 * result.  sh is 32 elements of shared memory, free for reuse on return.
 */
#ifndef TK_REDUCE_CUH
#define TK_REDUCE_CUH

template <typename T> __device__ __forceinline__ T tk_warp_sum(T v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ float tk_warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

template <typename T> __device__ __forceinline__ T tk_block_sum(T v, T *sh)
{
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = tk_warp_sum(v);
	__syncthreads(); /* sh may still be read from a previous call */
	if (!lane)
		sh[wid] = v;
	__syncthreads();
	v = lane < nw ? sh[lane] : (T)0;
	return tk_warp_sum(v);
}

__device__ __forceinline__ float tk_block_max(float v, float *sh)
{
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = tk_warp_max(v);
	__syncthreads();
	if (!lane)
		sh[wid] = v;
	__syncthreads();
	v = lane < nw ? sh[lane] : -INFINITY;
	return tk_warp_max(v);
}

/* Blocks for a grid-stride loop over n elements with threads per block. */
static inline unsigned tk_grid(size_t n, int threads)
{
	size_t b = (n + (size_t)threads - 1) / (size_t)threads;
	return b > 65535u * 16u ? 65535u * 16u : (b ? (unsigned)b : 1u);
}

#endif

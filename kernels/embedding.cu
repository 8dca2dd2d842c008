/* embedding.cu - embedding lookup and its deterministic backward.
 *
 * The backward adds every dy row into the table row of its id without
 * atomics, in the CPU's order: the first occurrence of each id owns the
 * table row and walks the chain of that id's later occurrences (next[],
 * found by comparing all pairs of ids through shared memory: O(n^2)
 * comparisons, n = B*T), adding dy rows to the table row one after the
 * other in index order, as cpu_embedding_bwd does, so the sums are the
 * CPU's bit for bit.
 */
#include "ops-cuda.cuh"
#include "reduce.cuh"

#define EMB_THREADS 256

__global__ void emb_fwd_k(float *y, const float *table, const uint32_t *ids, int n, int dim)
{
	size_t total = (size_t)n * dim;
	for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
	     t += (size_t)gridDim.x * blockDim.x) {
		size_t i = t / dim, j = t % dim;
		y[t] = table[(size_t)ids[i] * dim + j];
	}
}

/* next[i]: the next index with the same id (-1: none); next[n + i]: 1 when
 * i is the first occurrence of its id. */
__global__ void emb_next_k(int *next, const uint32_t *ids, int n)
{
	__shared__ uint32_t sh[EMB_THREADS];
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	uint32_t my = i < n ? ids[i] : 0;
	int nx = -1, first = 1;
	for (int t0 = 0; t0 < n; t0 += EMB_THREADS) {
		__syncthreads();
		if (t0 + (int)threadIdx.x < n)
			sh[threadIdx.x] = ids[t0 + threadIdx.x];
		__syncthreads();
		int m = n - t0 < EMB_THREADS ? n - t0 : EMB_THREADS;
		for (int jj = 0; jj < m; jj++) {
			int j = t0 + jj;
			if (sh[jj] != my)
				continue;
			if (j < i)
				first = 0;
			else if (j > i && nx < 0)
				nx = j;
		}
	}
	if (i < n) {
		next[i] = nx;
		next[n + i] = first;
	}
}

/* A block per index; only first occurrences work: table row += each dy row
 * of the chain, in index order. */
__global__ void emb_bwd_k(float *dtable, const float *dy, const uint32_t *ids, const int *next,
			  int n, int dim)
{
	int i = blockIdx.x;
	if (!next[n + i])
		return;
	float *t = dtable + (size_t)ids[i] * dim;
	for (int j = threadIdx.x; j < dim; j += blockDim.x) {
		float acc = t[j];
		for (int c = i; c >= 0; c = next[c])
			acc += dy[(size_t)c * dim + j];
		t[j] = acc;
	}
}

cudaError_t cu_embedding_fwd(cudaStream_t st, float *y, const float *table, const uint32_t *ids,
			     int n, int dim)
{
	emb_fwd_k<<<tk_grid((size_t)n * dim, EMB_THREADS), EMB_THREADS, 0, st>>>(y, table, ids, n,
										  dim);
	return cudaGetLastError();
}

cudaError_t cu_embedding_bwd(cudaStream_t st, float *dtable, const float *dy,
			     const uint32_t *ids, int n, int dim, int *scratch)
{
	emb_next_k<<<(n + EMB_THREADS - 1) / EMB_THREADS, EMB_THREADS, 0, st>>>(scratch, ids, n);
	cudaError_t e = cudaGetLastError();
	if (e != cudaSuccess)
		return e;
	emb_bwd_k<<<n, EMB_THREADS, 0, st>>>(dtable, dy, ids, scratch, n, dim);
	return cudaGetLastError();
}

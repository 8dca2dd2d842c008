/* norm.cu - LayerNorm and RMSNorm forward and backward, and the column
 * sums behind their weight gradients and bias_grad.
 *
 * One block per row.  The statistics follow the CPU backend: LayerNorm's
 * mean and variance and RMSNorm's mean square are summed in double, then
 * rounded to float as cpu_layernorm_fwd / cpu_rmsnorm_fwd round them.  The
 * column sums (dw, db) are deterministic without atomics: each block sums
 * TK_CU_COLSUM_ROWS rows of a stripe of columns in row order into a double
 * partial, and a second kernel adds the partials in order.
 */
#include "ops-cuda.cuh"
#include "reduce.cuh"

#define NORM_THREADS 256
#define COL_THREADS 128

__global__ void layernorm_fwd_k(float *y, float *mean, float *rstd, const float *x,
				const float *w, const float *b, int dim, float eps)
{
	__shared__ double sh[32];
	size_t r = blockIdx.x;
	const float *xr = x + r * dim;
	float *yr = y + r * dim;
	double s = 0.0;
	for (int j = threadIdx.x; j < dim; j += blockDim.x)
		s += xr[j];
	s = tk_block_sum(s, sh);
	float mu = (float)(s / dim);
	double ss = 0.0;
	for (int j = threadIdx.x; j < dim; j += blockDim.x) {
		double dx = (double)xr[j] - mu;
		ss += dx * dx;
	}
	ss = tk_block_sum(ss, sh);
	float rs = (float)(1.0 / sqrt(ss / dim + eps));
	for (int j = threadIdx.x; j < dim; j += blockDim.x) {
		float v = (xr[j] - mu) * rs * w[j];
		yr[j] = b ? v + b[j] : v;
	}
	if (!threadIdx.x) {
		if (mean)
			mean[r] = mu;
		if (rstd)
			rstd[r] = rs;
	}
}

__global__ void layernorm_dx_k(float *dx, const float *dy, const float *x, const float *w,
			       const float *mean, const float *rstd, int dim)
{
	__shared__ float sh[32];
	size_t r = blockIdx.x;
	const float *xr = x + r * dim, *dyr = dy + r * dim;
	float *dxr = dx + r * dim;
	float mu = mean[r], rs = rstd[r], sg = 0.0f, sgx = 0.0f;
	for (int j = threadIdx.x; j < dim; j += blockDim.x) {
		float g = dyr[j] * w[j];
		sg += g;
		sgx += g * ((xr[j] - mu) * rs);
	}
	sg = tk_block_sum(sg, sh);
	sgx = tk_block_sum(sgx, sh);
	float a = sg / dim, c = sgx / dim;
	for (int j = threadIdx.x; j < dim; j += blockDim.x) {
		float xh = (xr[j] - mu) * rs;
		dxr[j] = rs * (dyr[j] * w[j] - a - xh * c);
	}
}

__global__ void rmsnorm_fwd_k(float *y, float *rstd, const float *x, const float *w,
			      float w_off, int dim, float eps)
{
	__shared__ double sh[32];
	size_t r = blockIdx.x;
	const float *xr = x + r * dim;
	float *yr = y + r * dim;
	double ss = 0.0;
	for (int j = threadIdx.x; j < dim; j += blockDim.x)
		ss += (double)xr[j] * xr[j];
	ss = tk_block_sum(ss, sh);
	float rs = 1.0f / sqrtf((float)(ss / dim) + eps);
	for (int j = threadIdx.x; j < dim; j += blockDim.x)
		yr[j] = (w_off + w[j]) * (xr[j] * rs);
	if (!threadIdx.x && rstd)
		rstd[r] = rs;
}

__global__ void rmsnorm_dx_k(float *dx, const float *dy, const float *x, const float *w,
			     float w_off, const float *rstd, int dim)
{
	__shared__ float sh[32];
	size_t r = blockIdx.x;
	const float *xr = x + r * dim, *dyr = dy + r * dim;
	float *dxr = dx + r * dim;
	float rs = rstd[r], sgx = 0.0f;
	for (int j = threadIdx.x; j < dim; j += blockDim.x)
		sgx += dyr[j] * (w_off + w[j]) * xr[j];
	sgx = tk_block_sum(sgx, sh);
	float c = rs * rs * rs * sgx / dim;
	for (int j = threadIdx.x; j < dim; j += blockDim.x)
		dxr[j] = rs * dyr[j] * (w_off + w[j]) - xr[j] * c;
}

/* Partials: block (column stripe, row chunk) sums its rows in order.
 * pw[chunk][j] = sum dy (x - mean) rstd (mean NULL: dy x rstd, RMSNorm),
 * pb[chunk][j] = sum dy.  want_w / want_b select which are computed. */
__global__ void colsum_part_k(double *pw, double *pb, const float *dy, const float *x,
			      const float *mean, const float *rstd, int rows, int dim,
			      int want_w, int want_b)
{
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	int chunk = blockIdx.y, r0 = chunk * TK_CU_COLSUM_ROWS;
	int r1 = r0 + TK_CU_COLSUM_ROWS < rows ? r0 + TK_CU_COLSUM_ROWS : rows;
	if (j >= dim)
		return;
	double aw = 0.0, ab = 0.0;
	for (int r = r0; r < r1; r++) {
		float g = dy[(size_t)r * dim + j];
		if (want_b)
			ab += g;
		if (want_w) {
			float mu = mean ? mean[r] : 0.0f;
			aw += g * ((x[(size_t)r * dim + j] - mu) * rstd[r]);
		}
	}
	if (want_w)
		pw[(size_t)chunk * dim + j] = aw;
	if (want_b)
		pb[(size_t)chunk * dim + j] = ab;
}

__global__ void colsum_final_k(float *dw, float *db, const double *pw, const double *pb,
			       int nchunk, int dim)
{
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= dim)
		return;
	double aw = 0.0, ab = 0.0;
	for (int c = 0; c < nchunk; c++) {
		if (dw)
			aw += pw[(size_t)c * dim + j];
		if (db)
			ab += pb[(size_t)c * dim + j];
	}
	if (dw)
		dw[j] += (float)aw;
	if (db)
		db[j] += (float)ab;
}

size_t cu_colsum_scratch(int rows, int dim)
{
	size_t nchunk = ((size_t)rows + TK_CU_COLSUM_ROWS - 1) / TK_CU_COLSUM_ROWS;
	return 2 * nchunk * (size_t)dim;
}

static cudaError_t colsum(cudaStream_t st, float *dw, float *db, const float *dy,
			  const float *x, const float *mean, const float *rstd, int rows,
			  int dim, double *scratch)
{
	int nchunk = (rows + TK_CU_COLSUM_ROWS - 1) / TK_CU_COLSUM_ROWS;
	double *pw = scratch, *pb = scratch + (size_t)nchunk * dim;
	if (nchunk > 65535)
		return cudaErrorInvalidConfiguration;
	dim3 grid((dim + COL_THREADS - 1) / COL_THREADS, nchunk);
	colsum_part_k<<<grid, COL_THREADS, 0, st>>>(pw, pb, dy, x, mean, rstd, rows, dim,
						     dw != NULL, db != NULL);
	colsum_final_k<<<(dim + COL_THREADS - 1) / COL_THREADS, COL_THREADS, 0, st>>>(
		dw, db, pw, pb, nchunk, dim);
	return cudaGetLastError();
}

cudaError_t cu_layernorm_fwd(cudaStream_t st, float *y, float *mean, float *rstd,
			     const float *x, const float *w, const float *b, int rows, int dim,
			     float eps)
{
	layernorm_fwd_k<<<rows, NORM_THREADS, 0, st>>>(y, mean, rstd, x, w, b, dim, eps);
	return cudaGetLastError();
}

cudaError_t cu_layernorm_bwd(cudaStream_t st, float *dx, float *dw, float *db, const float *dy,
			     const float *x, const float *w, const float *mean,
			     const float *rstd, int rows, int dim, double *scratch)
{
	if (dx)
		layernorm_dx_k<<<rows, NORM_THREADS, 0, st>>>(dx, dy, x, w, mean, rstd, dim);
	cudaError_t e = cudaGetLastError();
	if (e != cudaSuccess || (!dw && !db))
		return e;
	return colsum(st, dw, db, dy, x, mean, rstd, rows, dim, scratch);
}

cudaError_t cu_rmsnorm_fwd(cudaStream_t st, float *y, float *rstd, const float *x,
			   const float *w, float w_off, int rows, int dim, float eps)
{
	rmsnorm_fwd_k<<<rows, NORM_THREADS, 0, st>>>(y, rstd, x, w, w_off, dim, eps);
	return cudaGetLastError();
}

cudaError_t cu_rmsnorm_bwd(cudaStream_t st, float *dx, float *dw, const float *dy,
			   const float *x, const float *w, float w_off, const float *rstd,
			   int rows, int dim, double *scratch)
{
	if (dx)
		rmsnorm_dx_k<<<rows, NORM_THREADS, 0, st>>>(dx, dy, x, w, w_off, rstd, dim);
	cudaError_t e = cudaGetLastError();
	if (e != cudaSuccess || !dw)
		return e;
	return colsum(st, dw, NULL, dy, x, NULL, rstd, rows, dim, scratch);
}

cudaError_t cu_bias_grad(cudaStream_t st, float *dbias, const float *dy, int rows, int dim,
			 double *scratch)
{
	return colsum(st, NULL, dbias, dy, NULL, NULL, NULL, rows, dim, scratch);
}

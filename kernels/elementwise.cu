/* elementwise.cu - the elementwise ops, RoPE, AdamW and sum_squares.
 *
 * GELU and SiLU use the formulas of lib/base/math-common.h that the CPU backend
 * uses (tk_gelu_tanh_exp, tk_silu_exp, tk_expf_poly), so the two backends
 * differ only where nvcc fuses a multiply and an add.  Grid-stride loops
 * over size_t indices.
 */
#include "ops-cuda.cuh"
#include "reduce.cuh"

#include "base/math-common.h"
#include "base/rng.h"

#define EW_THREADS 256

__global__ void gelu_fwd_k(float *y, const float *x, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] = tk_gelu_tanh_exp(x[i]);
}

__global__ void gelu_bwd_k(float *dx, const float *x, const float *dy, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		dx[i] = dy[i] * tk_gelu_tanh_exp_grad(x[i]);
}

__global__ void swiglu_fwd_k(float *y, const float *gate, const float *up, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] = tk_silu_exp(gate[i]) * up[i];
}

/* As the CPU: dup = dy silu(g), dgate = dy up s (1 + g (1 - s)).  dgate
 * and dup may alias gate and up: each element is read before written. */
__global__ void swiglu_bwd_k(float *dgate, float *dup, const float *gate, const float *up,
			     const float *dy, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float gt = gate[i], u = up[i], d = dy[i];
		float s = 1.0f / (1.0f + tk_expf_poly(-gt));
		dup[i] = d * (gt * s);
		dgate[i] = d * u * (s * (1.0f + gt * (1.0f - s)));
	}
}

__global__ void geglu_fwd_k(float *y, const float *gate, const float *up, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] = tk_gelu_tanh_exp(gate[i]) * up[i];
}

/* As the CPU: dup = dy gelu(g), dgate = dy up gelu'(g); may work in place
 * as swiglu_bwd_k. */
__global__ void geglu_bwd_k(float *dgate, float *dup, const float *gate, const float *up,
			    const float *dy, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float gt = gate[i], u = up[i], d = dy[i];
		dup[i] = d * tk_gelu_tanh_exp(gt);
		dgate[i] = d * u * tk_gelu_tanh_exp_grad(gt);
	}
}

__global__ void logit_softcap_k(float *x, size_t n, float cap)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		x[i] = tk_softcap(x[i], cap);
}

__global__ void bias_add_k(float *y, const float *bias, size_t n, int dim, int set)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] = set ? bias[i % (size_t)dim] : y[i] + bias[i % (size_t)dim];
}

__global__ void axpy_k(float *y, float a, const float *x, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] += a * x[i];
}

__global__ void add_noise_k(float *x, size_t n, uint64_t key, float mag)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		x[i] += tk_noise_uniform(key, i, mag);
}

__global__ void scale_k(float *x, float s, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		x[i] *= s;
}

__global__ void scale_matrix_k(float *c, int m, int n, int ldc, float beta)
{
	size_t total = (size_t)m * n;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
	     i += (size_t)gridDim.x * blockDim.x) {
		float *p = c + (i / n) * (size_t)ldc + i % n;
		*p = beta == 0.0f ? 0.0f : *p * beta;
	}
}

/* One thread per (row, head, pair i): angle = pos * inv_freq[i] in fp32,
 * as cpu_rope (inv_freq from the host, so the angles are the CPU's); cos
 * and sin times scale, rounded as cpu_rope rounds them. */
__global__ void rope_k(float *x, const int32_t *pos, const float *inv_freq, int rows,
		       int heads, int head_dim, int rot_dim, float scale, float sgn)
{
	int half = rot_dim / 2;
	size_t total = (size_t)rows * heads * half;
	for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
	     t += (size_t)gridDim.x * blockDim.x) {
		int i = (int)(t % half);
		size_t rh = t / half; /* row * heads + head */
		int r = (int)(rh / heads);
		float ang = (float)pos[r] * inv_freq[i];
		float cs = __fmul_rn(cosf(ang), scale), sn = sgn * __fmul_rn(sinf(ang), scale);
		float *x1 = x + rh * head_dim, *x2 = x1 + half;
		float a = x1[i], b = x2[i];
		x1[i] = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn));
		x2[i] = __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn));
	}
}

/* The operations of the CPU's adamw_avx512, in its order and with its
 * roundings: the multiply-adds torch fuses are fmaf, the rest are written
 * with _rn intrinsics so that nvcc fuses nothing else. */
__global__ void adamw_k(float *p, const float *g, float *m, float *v, size_t n,
			struct tk_adamw_k c)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float pi = __fmul_rn(p[i], c.keep), gi = g[i], mi = m[i], vi = v[i];
		mi = fmaf(c.coef, __fsub_rn(gi, mi), c.from_m ? mi : gi);
		vi = fmaf(__fmul_rn(c.w2, gi), gi, __fmul_rn(vi, c.b2));
		float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), c.bc2s), c.eps);
		p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(c.neg_step, mi), den));
		m[i] = mi;
		v[i] = vi;
	}
}

/* One block per chunk of TK_CU_SUMSQ_CHUNK elements, in double. */
__global__ void sumsq_k(double *part, const float *x, size_t n)
{
	__shared__ double sh[32];
	size_t i0 = (size_t)blockIdx.x * TK_CU_SUMSQ_CHUNK;
	size_t i1 = i0 + TK_CU_SUMSQ_CHUNK < n ? i0 + TK_CU_SUMSQ_CHUNK : n;
	double s = 0.0;
	for (size_t i = i0 + threadIdx.x; i < i1; i += blockDim.x)
		s += (double)x[i] * x[i];
	s = tk_block_sum(s, sh);
	if (!threadIdx.x)
		part[blockIdx.x] = s;
}

cudaError_t cu_gelu_fwd(cudaStream_t st, float *y, const float *x, size_t n)
{
	gelu_fwd_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(y, x, n);
	return cudaGetLastError();
}

cudaError_t cu_gelu_bwd(cudaStream_t st, float *dx, const float *x, const float *dy, size_t n)
{
	gelu_bwd_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(dx, x, dy, n);
	return cudaGetLastError();
}

cudaError_t cu_swiglu_fwd(cudaStream_t st, float *y, const float *gate, const float *up,
			  size_t n)
{
	swiglu_fwd_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(y, gate, up, n);
	return cudaGetLastError();
}

cudaError_t cu_swiglu_bwd(cudaStream_t st, float *dgate, float *dup, const float *gate,
			  const float *up, const float *dy, size_t n)
{
	swiglu_bwd_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(dgate, dup, gate, up, dy, n);
	return cudaGetLastError();
}

cudaError_t cu_geglu_fwd(cudaStream_t st, float *y, const float *gate, const float *up,
			 size_t n)
{
	geglu_fwd_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(y, gate, up, n);
	return cudaGetLastError();
}

cudaError_t cu_geglu_bwd(cudaStream_t st, float *dgate, float *dup, const float *gate,
			 const float *up, const float *dy, size_t n)
{
	geglu_bwd_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(dgate, dup, gate, up, dy, n);
	return cudaGetLastError();
}

cudaError_t cu_logit_softcap(cudaStream_t st, float *x, size_t n, float cap)
{
	logit_softcap_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(x, n, cap);
	return cudaGetLastError();
}

cudaError_t cu_bias_add(cudaStream_t st, float *y, const float *bias, int rows, int dim, int set)
{
	size_t n = (size_t)rows * dim;
	bias_add_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(y, bias, n, dim, set);
	return cudaGetLastError();
}

cudaError_t cu_axpy(cudaStream_t st, float *y, float a, const float *x, size_t n)
{
	axpy_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(y, a, x, n);
	return cudaGetLastError();
}

cudaError_t cu_add_noise(cudaStream_t st, float *x, size_t n, uint64_t key, float mag)
{
	add_noise_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(x, n, key, mag);
	return cudaGetLastError();
}

cudaError_t cu_scale(cudaStream_t st, float *x, float s, size_t n)
{
	scale_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(x, s, n);
	return cudaGetLastError();
}

cudaError_t cu_scale_matrix(cudaStream_t st, float *c, int m, int n, int ldc, float beta)
{
	scale_matrix_k<<<tk_grid((size_t)m * n, EW_THREADS), EW_THREADS, 0, st>>>(c, m, n, ldc,
										   beta);
	return cudaGetLastError();
}

cudaError_t cu_rope(cudaStream_t st, float *x, const int32_t *pos, const float *inv_freq,
		    int rows, int heads, int head_dim, int rot_dim, float scale, int inverse)
{
	size_t n = (size_t)rows * heads * (rot_dim / 2);
	rope_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(x, pos, inv_freq, rows, heads,
							       head_dim, rot_dim, scale,
							       inverse ? -1.0f : 1.0f);
	return cudaGetLastError();
}

cudaError_t cu_adamw(cudaStream_t st, float *p, const float *g, float *m, float *v, size_t n,
		     struct tk_adamw_k k)
{
	adamw_k<<<tk_grid(n, EW_THREADS), EW_THREADS, 0, st>>>(p, g, m, v, n, k);
	return cudaGetLastError();
}

cudaError_t cu_sum_squares(cudaStream_t st, double *part, const float *x, size_t n)
{
	size_t nch = (n + TK_CU_SUMSQ_CHUNK - 1) / TK_CU_SUMSQ_CHUNK;
	if (nch > 0x7fffffffu)
		return cudaErrorInvalidConfiguration;
	sumsq_k<<<(unsigned)nch, EW_THREADS, 0, st>>>(part, x, n);
	return cudaGetLastError();
}

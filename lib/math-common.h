/* math-common.h - scalar math shared by the CPU backend and the CUDA kernels.
 *
 * Plain C99 that nvcc also compiles (TK_HD marks host+device functions), so
 * both backends compute GELU, SiLU and RoPE angles with the same formulas.
 */
#ifndef TK_MATH_COMMON_H
#define TK_MATH_COMMON_H

#include <math.h>

#ifdef __CUDACC__
#define TK_HD __host__ __device__ static inline
#else
#define TK_HD static inline
#endif

/* HF "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
TK_HD float tk_gelu_tanh(float x)
{
	const float c = 0.7978845608028654f; /* sqrt(2/pi) */
	return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

/* d gelu_tanh / dx */
TK_HD float tk_gelu_tanh_grad(float x)
{
	const float c = 0.7978845608028654f;
	float u = c * (x + 0.044715f * x * x * x);
	float t = tanhf(u);
	float du = c * (1.0f + 3.0f * 0.044715f * x * x);
	return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}

TK_HD float tk_sigmoid(float x)
{
	return 1.0f / (1.0f + expf(-x));
}

/* SiLU: x * sigmoid(x) */
TK_HD float tk_silu(float x)
{
	return x * tk_sigmoid(x);
}

TK_HD float tk_silu_grad(float x)
{
	float s = tk_sigmoid(x);
	return s * (1.0f + x * (1.0f - s));
}

/* RoPE inverse frequency of pair i of a head of head_dim, as HF computes it:
 * 1 / theta^(2i / head_dim). */
TK_HD float tk_rope_inv_freq(int i, int head_dim, float theta)
{
	return 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
}

#endif

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

/* The bits of a float as an integer and back (no aliasing games). */
TK_HD float tk_float_from_bits(int b)
{
#ifdef __CUDA_ARCH__
	return __int_as_float(b);
#else
	union {
		int i;
		float f;
	} u;
	u.i = b;
	return u.f;
#endif
}

/* The bits of a float as an unsigned integer. */
TK_HD unsigned tk_bits_from_float(float f)
{
#ifdef __CUDA_ARCH__
	return (unsigned)__float_as_int(f);
#else
	union {
		unsigned u;
		float f;
	} u;
	u.f = f;
	return u.u;
#endif
}

/* ---- rounding fp32 to the matmul precisions (enum tk_prec) ----
 *
 * All round to nearest, ties to even, bit for bit as torch converts
 * (x.to(torch.bfloat16), x.half()); the *_code functions give the 16-bit
 * codes cuBLAS reads, the tk_round_* ones the rounded value as a float
 * (exact: every bf16, fp16 and tf32 value is an fp32 value).  Integer
 * arithmetic only, so host and device give the same bits. */

/* bfloat16 code of x; values that round above the largest bf16 become
 * inf.  NaN gives the quiet NaN 0x7fc0 (torch gives a NaN too, but its bits
 * depend on the CPU path: 0xffff with AVX512-BF16). */
TK_HD unsigned short tk_bf16_code(float x)
{
	unsigned b = tk_bits_from_float(x);
	/* a select, not an early return, so that loops over it vectorize */
	unsigned short r = (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
	return (b & 0x7fffffffu) > 0x7f800000u ? (unsigned short)0x7fc0 : r;
}

/* IEEE half code of x: |x| >= 65520 (which rounds above 65504) becomes
 * inf, |x| <= 2^-25 a signed zero, subnormal halves rounded as the rest.
 * NaN gives the quiet NaN 0x7e00 with x's sign (torch with F16C keeps the
 * top of the payload; NaN either way). */
TK_HD unsigned short tk_f16_code(float x)
{
	unsigned b = tk_bits_from_float(x);
	unsigned short sign = (unsigned short)((b >> 16) & 0x8000u);
	b &= 0x7fffffffu;
	if (b > 0x7f800000u)
		return sign | 0x7e00;
	if (b >= 0x477ff000u)
		return sign | 0x7c00;
	if (b >= 0x38800000u) { /* a normal half: 2^-14 and above */
		unsigned r = b + 0xfffu + ((b >> 13) & 1u);
		return sign | (unsigned short)((r - (112u << 23)) >> 13);
	}
	if (b <= 0x33000000u)
		return sign;
	/* subnormal half: man * 2^(exp - 150) in units of 2^-24 */
	unsigned e = b >> 23, man = (b & 0x7fffffu) | 0x800000u;
	unsigned shift = 126u - e;
	unsigned q = man >> shift, rem = man & ((1u << shift) - 1u), half = 1u << (shift - 1u);
	if (rem > half || (rem == half && (q & 1u)))
		q++;
	return sign | (unsigned short)q;
}

/* The float of a bf16 code. */
TK_HD float tk_bf16_value(unsigned short h)
{
	return tk_float_from_bits((int)((unsigned)h << 16));
}

/* The float of a half code (subnormals exact, NaN payload kept). */
TK_HD float tk_f16_value(unsigned short h)
{
	unsigned sign = (unsigned)(h & 0x8000u) << 16;
	unsigned e = (h >> 10) & 0x1fu, man = h & 0x3ffu;
	if (e == 31)
		return tk_float_from_bits((int)(sign | 0x7f800000u | (man ? 0x400000u : 0) |
						(man << 13)));
	if (e)
		return tk_float_from_bits((int)(sign | ((e + 112u) << 23) | (man << 13)));
	/* zero or subnormal: man * 2^-24, exact in fp32 */
	float v = (float)man * 5.9604644775390625e-8f;
	return sign ? -v : v;
}

/* x rounded to bf16 (NaN returned as it is; inf stays inf). */
TK_HD float tk_round_bf16(float x)
{
	return x != x ? x : tk_bf16_value(tk_bf16_code(x));
}

/* x rounded to IEEE half (NaN returned as it is). */
TK_HD float tk_round_f16(float x)
{
	return x != x ? x : tk_f16_value(tk_f16_code(x));
}

/* x rounded to TF32: 10 mantissa bits and fp32's exponent (fp32's range
 * and subnormals): round to nearest even at bit 13, then the low 13 bits
 * cleared (a carry into the exponent is the right rounding, up to inf).
 * NaN and inf unchanged.  This is tk's CPU emulation of --tf32; NVIDIA does
 * not document how tensor cores round fp32 operands to TF32 (they may
 * truncate), so the GPU may differ in the last TF32 bit. */
TK_HD float tk_round_tf32(float x)
{
	unsigned b = tk_bits_from_float(x);
	if ((b & 0x7f800000u) == 0x7f800000u)
		return x;
	b = (b + 0xfffu + ((b >> 13) & 1u)) & ~0x1fffu;
	return tk_float_from_bits((int)b);
}

/* exp(x), branch-free so that loops of it vectorize: x = k ln2 + r with
 * |r| <= ln2/2 (ln2 split in two for an exact product), exp(r) by its
 * Taylor polynomial to degree 7 (truncation below 1e-8), times 2^k built in
 * the exponent bits.  Within 2 ulp of expf for x in [-87.3, 88.3]; 0 below
 * (no subnormals); saturates at exp(88.3) above; NaN stays NaN. */
TK_HD float tk_expf_poly(float x)
{
	const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
	float xc = x > -87.3f ? x : -87.3f; /* NaN becomes -87.3 here: no (int)NaN */
	xc = xc < 88.3f ? xc : 88.3f;
	float t = xc * 1.44269504088896341f + magic;
	float k = t - magic;
	int ki = (int)k;
	float r = xc - k * 0.693145751953125f;
	r = r - k * 1.42860682030941723e-6f;
	float p = 1.0f / 5040.0f;
	p = p * r + 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	float e = p * tk_float_from_bits((int)((unsigned)(ki + 127) << 23));
	return x < -87.3f ? 0.0f : x == x ? e : x;
}

/* Attention logit soft-capping (Gemma-2's attn_logit_softcapping) of a
 * scaled score s: cap * tanh(s / cap), cap > 0.  Its derivative is 1 -
 * (capped / cap)^2, from the capped score the backward recomputes. */
TK_HD float tk_softcap(float s, float cap)
{
	return cap * tanhf(s / cap);
}

/* HF's "gelu_new" (gelu_tanh), 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x +
 * 0.044715 x^3), written as x * sigmoid(2u):
 * the same function (0.5 (1 + tanh u) = sigmoid(2u)) without tanhf, and
 * without the cancellation of 1 + tanh u for negative x. */
TK_HD float tk_gelu_tanh_exp(float x)
{
	const float c2 = 2.0f * 0.7978845608028654f;
	float u2 = c2 * (x + 0.044715f * x * x * x);
	return x / (1.0f + tk_expf_poly(-u2));
}

/* d gelu_tanh / dx from the same form: s + 2 x s (1 - s) du/dx, s =
 * sigmoid(2u). */
TK_HD float tk_gelu_tanh_exp_grad(float x)
{
	const float c = 0.7978845608028654f;
	float u2 = 2.0f * c * (x + 0.044715f * x * x * x);
	float s = 1.0f / (1.0f + tk_expf_poly(-u2));
	float du = c * (1.0f + 3.0f * 0.044715f * x * x);
	return s + 2.0f * x * s * (1.0f - s) * du;
}

/* SiLU with tk_expf_poly (its derivative is fused into the SwiGLU
 * backward of each backend). */
TK_HD float tk_silu_exp(float x)
{
	return x / (1.0f + tk_expf_poly(-x));
}

/* RoPE inverse frequency of pair i of a head of head_dim, as HF computes it:
 * 1 / theta^(2i / head_dim). */
TK_HD float tk_rope_inv_freq(int i, int head_dim, float theta)
{
	return 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
}

/* The fp32 scalars of one AdamW step (torch.optim.AdamW, decoupled weight
 * decay, bias correction), computed on the host as torch rounds them:
 * hyperparameters in double, then each tensor operation in fp32.  Both
 * backends' AdamW kernels take this struct, so they start from the same
 * bits.  The step per element is
 *	p *= keep
 *	m = lerp(m, g, 1 - b1)   (coef, from_m: torch's two lerp forms)
 *	v = v b2 + w2 g g
 *	p += neg_step m / (sqrt(v) / bc2s + eps)  */
struct tk_adamw_k {
	float keep, coef, b2, w2, eps, neg_step, bc2s;
	int from_m;
};

static inline struct tk_adamw_k tk_adamw_setup(double lr, double beta1, double beta2,
					       double eps, double weight_decay, int step)
{
	struct tk_adamw_k k;
	/* torch skips the decay when weight_decay is 0; p * 1.0f is p */
	k.keep = weight_decay != 0.0 ? (float)(1.0 - lr * weight_decay) : 1.0f;
	/* torch's lerp(m, g, w): m + w (g - m) for |w| < 0.5, else
	 * g - (g - m) (1 - w), which is g + (w - 1) (g - m) exactly */
	float w1 = (float)(1.0 - beta1);
	k.from_m = fabsf(w1) < 0.5f;
	k.coef = k.from_m ? w1 : -(1.0f - w1);
	k.b2 = (float)beta2;
	k.w2 = (float)(1.0 - beta2);
	k.eps = (float)eps;
	double bc1 = 1.0 - pow(beta1, step), bc2 = 1.0 - pow(beta2, step);
	k.neg_step = (float)-(lr / bc1);
	k.bc2s = (float)sqrt(bc2);
	return k;
}

#endif

/* adamw8-common.h - bitsandbytes' AdamW with 8-bit state (optim
 * "adamw_8bit"): the per-element math that the CPU backend and the CUDA
 * kernel share, so both take the same operations in the same order.
 *
 * bitsandbytes' Optimizer2State("adam") keeps a parameter of at least
 * 4096 elements (min_8bit_size) as two 8-bit states in blocks of 256
 * (TK_ADAMW8_BLOCK): state1 (exp_avg) codes of the signed dynamic map
 * (tk_dynamic_code) and state2 (exp_avg_sq) codes of the unsigned one
 * (tk_udynamic_code), each block with its fp32 absmax.  One step of its
 * CPU kernel (_optimizer_update_8bit_blockwise_cpu) is, per element, in
 * torch's fp32 ops:
 *	m = code1[q1] * absmax1;  v = code2[q2] * absmax2
 *	m = m b1 + (1 - b1) g;  v = v b2 + (1 - b2) g g      (fused, as torch)
 *	p *= 1 - lr wd   (when wd > 0)
 *	p += (-lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * then m and v are quantized again blockwise (quant-common.h's
 * tk_q8_index against the block's new absmax max |m|, max v; an all-zero
 * block stores absmax 0 and code 0).  Smaller parameters keep fp32 state
 * and take its 32-bit kernel (_optimizer_update_32bit_cpu), a different
 * formula from torch.optim.AdamW's:
 *	m, v as above;  p *= 1 - lr wd   (when wd > 0)
 *	p += (-lr sqrt(1 - b2^t) / (1 - b1^t)) (m / (sqrt(v) + eps sqrt(1 - b2^t)))
 * Hyperparameters are Python floats (double) until torch rounds each
 * scalar to fp32 at its tensor op; tk_adamw8_setup does that rounding.
 */
#ifndef TK_ADAMW8_COMMON_H
#define TK_ADAMW8_COMMON_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "base/quant-common.h"

#ifdef __CUDACC__
#define TK_A8HD __host__ __device__ static inline
#else
#define TK_A8HD static inline
#endif

/* Each operation rounded on its own: nvcc would fuse a product into a
 * following sum (--fmad), so the device code spells the roundings out;
 * the C side is built as ISO C11, where GCC contracts nothing. */
#ifdef __CUDA_ARCH__
#define TK_A8_MUL(a, b) __fmul_rn((a), (b))
#define TK_A8_ADD(a, b) __fadd_rn((a), (b))
#define TK_A8_DIV(a, b) __fdiv_rn((a), (b))
#define TK_A8_SQRT(a) __fsqrt_rn(a)
#else
#define TK_A8_MUL(a, b) ((a) * (b))
#define TK_A8_ADD(a, b) ((a) + (b))
#define TK_A8_DIV(a, b) ((a) / (b))
#define TK_A8_SQRT(a) sqrtf(a)
#endif

/* bitsandbytes' block of the 8-bit optimizer states (fixed in its code). */
#define TK_ADAMW8_BLOCK 256

/* Parameters with fewer elements keep 32-bit state (min_8bit_size). */
#define TK_ADAMW8_MIN_SIZE 4096

/* Whether bitsandbytes, as transformers' Trainer sets it up, keeps 8-bit
 * state for a parameter of n elements named name (a Hugging Face tensor
 * name or a PEFT key): n >= TK_ADAMW8_MIN_SIZE and not an embedding, whose
 * nn.Embedding the Trainer overrides to optim_bits 32 (GPT-2's wte and
 * wpe, the Llama family's embed_tokens; a tied lm_head is wte itself). */
static inline int tk_adamw8_eight(const char *name, size_t n)
{
	static const char *const emb[] = { "wte.weight", "wpe.weight", "embed_tokens.weight" };
	size_t len = strlen(name);
	if (n < TK_ADAMW8_MIN_SIZE)
		return 0;
	for (int i = 0; i < 3; i++) {
		size_t k = strlen(emb[i]);
		if (len >= k && !strcmp(name + len - k, emb[i]) &&
		    (len == k || name[len - k - 1] == '.'))
			return 0;
	}
	return 1;
}

/* Bytes of one parameter's state, as tk-train lays it out: 8-bit, n
 * codes twice and an fp32 absmax per block twice, each rounded up to 64
 * bytes; fp32, two arrays of n floats, rounded likewise. */
static inline size_t tk_adamw8_state_bytes(size_t n, int eight)
{
	size_t nb = (n + TK_ADAMW8_BLOCK - 1) / TK_ADAMW8_BLOCK;
#define TK_A8_UP64(x) (((x) + 63) / 64 * 64)
	return eight ? 2 * TK_A8_UP64(n) + 2 * TK_A8_UP64(nb * sizeof(float))
		     : 2 * TK_A8_UP64(n * sizeof(float));
#undef TK_A8_UP64
}

/* The fp32 scalars of one step (tk_adamw8_setup). */
struct tk_adamw8_k {
	float b1, w1, b2, w2; /* beta1, 1 - beta1, beta2, 1 - beta2 */
	float keep;           /* 1 - lr wd, 1 without decay */
	float eps;            /* 8-bit: eps */
	float c2;             /* 8-bit: sqrt(1 - beta2^t) */
	float neg_step;       /* 8-bit: -lr / (1 - beta1^t) */
	float eps_c2;         /* 32-bit: eps sqrt(1 - beta2^t) */
	float step32;         /* 32-bit: -lr sqrt(1 - beta2^t) / (1 - beta1^t) */
};

/* The scalars of step `step` (from 1), computed in double as Python does
 * and rounded to fp32 where torch takes them. */
static inline struct tk_adamw8_k tk_adamw8_setup(double lr, double beta1, double beta2,
						 double eps, double weight_decay, int step)
{
	struct tk_adamw8_k k;
	double c1 = 1.0 - pow(beta1, step), c2 = sqrt(1.0 - pow(beta2, step));

	k.b1 = (float)beta1;
	k.w1 = (float)(1.0 - beta1);
	k.b2 = (float)beta2;
	k.w2 = (float)(1.0 - beta2);
	/* bitsandbytes skips the decay unless weight_decay > 0; p * 1.0f is p */
	k.keep = weight_decay > 0.0 ? (float)(1.0 - lr * weight_decay) : 1.0f;
	k.eps = (float)eps;
	k.c2 = (float)c2;
	k.neg_step = (float)(-lr / c1);
	k.eps_c2 = (float)(eps * c2);
	k.step32 = (float)(-lr * c2 / c1);
	return k;
}

/* Where element i of a parameter's state (the checkpoint order bitsandbytes
 * blocks) is in p and g: i itself, or for a tensor the arena holds
 * transposed (rows, cols: the checkpoint shape; GPT-2's Conv1D, stored
 * [cols, rows]) its transposed place. */
TK_A8HD size_t tk_adamw8_at(size_t i, size_t rows, size_t cols)
{
	return rows ? (i % cols) * rows + i / cols : i;
}

/* The moments' update shared by both paths: torch's mul_ then add_(alpha)
 * (vec::fmadd) and mul_ then addcmul_ (fused by the compiler), as
 * cpu_adamw's. */
TK_A8HD void tk_adamw8_moments(const struct tk_adamw8_k *k, float g, float *m, float *v)
{
	*m = fmaf(k->w1, g, TK_A8_MUL(*m, k->b1));
	*v = fmaf(TK_A8_MUL(k->w2, g), g, TK_A8_MUL(*v, k->b2));
}

/* The parameter's update from the new m and v, 8-bit path. */
TK_A8HD float tk_adamw8_param(const struct tk_adamw8_k *k, float p, float m, float v)
{
	float den = TK_A8_ADD(TK_A8_DIV(TK_A8_SQRT(v), k->c2), k->eps);
	p = TK_A8_MUL(p, k->keep);
	return TK_A8_ADD(p, TK_A8_DIV(TK_A8_MUL(k->neg_step, m), den));
}

/* The parameter's update from the new m and v, 32-bit path: p.add_(update,
 * alpha) is one fused multiply-add. */
TK_A8HD float tk_adamw8_param32(const struct tk_adamw8_k *k, float p, float m, float v)
{
	float upd = TK_A8_DIV(m, TK_A8_ADD(TK_A8_SQRT(v), k->eps_c2));
	p = TK_A8_MUL(p, k->keep);
	return fmaf(upd, k->step32, p);
}

#endif

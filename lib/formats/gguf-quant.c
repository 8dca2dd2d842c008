/* gguf-quant.c - ggml tensor types: sizes, names and dequantization.
 *
 * Each dequantizer follows the gguf Python package (gguf/quants.py) step by
 * step in fp32, so the results are the same bits: scales are fp16 widened
 * to fp32, products are rounded to fp32 before the next operation (this
 * file is compiled as ISO C, where GCC does not contract a * b + c into a
 * fused multiply-add).
 */
#include <string.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"

struct type_info {
	const char *name;
	int block, size;
};

/* ggml's type traits (ggml.c type_traits / gguf constants GGML_QUANT_SIZES). */
static const struct type_info types[TK_GGML_TYPE_COUNT] = {
	[0] = { "f32", 1, 4 },       [1] = { "f16", 1, 2 },
	[2] = { "q4_0", 32, 18 },    [3] = { "q4_1", 32, 20 },
	[6] = { "q5_0", 32, 22 },    [7] = { "q5_1", 32, 24 },
	[8] = { "q8_0", 32, 34 },    [9] = { "q8_1", 32, 36 },
	[10] = { "q2_k", 256, 84 },  [11] = { "q3_k", 256, 110 },
	[12] = { "q4_k", 256, 144 }, [13] = { "q5_k", 256, 176 },
	[14] = { "q6_k", 256, 210 }, [15] = { "q8_k", 256, 292 },
	[16] = { "iq2_xxs", 256, 66 }, [17] = { "iq2_xs", 256, 74 },
	[18] = { "iq3_xxs", 256, 98 }, [19] = { "iq1_s", 256, 50 },
	[20] = { "iq4_nl", 32, 18 }, [21] = { "iq3_s", 256, 110 },
	[22] = { "iq2_s", 256, 82 }, [23] = { "iq4_xs", 256, 136 },
	[24] = { "i8", 1, 1 },       [25] = { "i16", 1, 2 },
	[26] = { "i32", 1, 4 },      [27] = { "i64", 1, 8 },
	[28] = { "f64", 1, 8 },      [29] = { "iq1_m", 256, 56 },
	[30] = { "bf16", 1, 2 },     [34] = { "tq1_0", 256, 54 },
	[35] = { "tq2_0", 256, 66 }, [39] = { "mxfp4", 32, 17 },
};

const char *tk_ggml_type_name(int type)
{
	if (type < 0 || type >= TK_GGML_TYPE_COUNT || !types[type].name)
		return "unknown";
	return types[type].name;
}

int tk_ggml_block_size(int type)
{
	return type < 0 || type >= TK_GGML_TYPE_COUNT ? 0 : types[type].block;
}

int tk_ggml_type_size(int type)
{
	return type < 0 || type >= TK_GGML_TYPE_COUNT ? 0 : types[type].size;
}

int tk_ggml_can_dequantize(int type)
{
	switch (type) {
	case TK_GGML_F32: case TK_GGML_F16: case TK_GGML_BF16: case TK_GGML_Q8_0:
	case TK_GGML_Q4_0: case TK_GGML_Q4_1: case TK_GGML_Q5_0: case TK_GGML_Q5_1:
	case TK_GGML_Q4_K: case TK_GGML_Q5_K: case TK_GGML_Q6_K:
		return 1;
	}
	return 0;
}

static float h2f(const uint8_t *p)
{
	return tk_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static void deq_q4_0(const uint8_t *b, float *y)
{
	float d = h2f(b);
	for (int j = 0; j < 16; j++) {
		y[j] = d * (float)((b[2 + j] & 0x0F) - 8);
		y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
	}
}

static void deq_q4_1(const uint8_t *b, float *y)
{
	float d = h2f(b), m = h2f(b + 2);
	for (int j = 0; j < 16; j++) {
		float lo = d * (float)(b[4 + j] & 0x0F), hi = d * (float)(b[4 + j] >> 4);
		y[j] = lo + m;
		y[j + 16] = hi + m;
	}
}

static void deq_q5_0(const uint8_t *b, float *y)
{
	float d = h2f(b);
	uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 |
		      (uint32_t)b[5] << 24;
	for (int j = 0; j < 16; j++) {
		int lo = (b[6 + j] & 0x0F) | (int)((qh >> j) & 1) << 4;
		int hi = (b[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
		y[j] = d * (float)(lo - 16);
		y[j + 16] = d * (float)(hi - 16);
	}
}

static void deq_q5_1(const uint8_t *b, float *y)
{
	float d = h2f(b), m = h2f(b + 2);
	uint32_t qh = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 |
		      (uint32_t)b[7] << 24;
	for (int j = 0; j < 16; j++) {
		int lo = (b[8 + j] & 0x0F) | (int)((qh >> j) & 1) << 4;
		int hi = (b[8 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
		float a = d * (float)lo, c = d * (float)hi;
		y[j] = a + m;
		y[j + 16] = c + m;
	}
}

static void deq_q8_0(const uint8_t *b, float *y)
{
	float d = h2f(b);
	for (int j = 0; j < 32; j++)
		y[j] = (float)(int8_t)b[2 + j] * d;
}

/* The 6-bit scales and mins of Q4_K and Q5_K (12 bytes). */
static void scale_min_k4(const uint8_t *s, uint8_t sc[8], uint8_t mn[8])
{
	for (int j = 0; j < 4; j++) {
		sc[j] = s[j] & 0x3F;
		mn[j] = s[4 + j] & 0x3F;
		sc[4 + j] = (uint8_t)((s[8 + j] & 0x0F) | ((s[j] >> 2) & 0x30));
		mn[4 + j] = (uint8_t)((s[8 + j] >> 4) | ((s[4 + j] >> 2) & 0x30));
	}
}

static void deq_q4_k(const uint8_t *b, float *y)
{
	float d = h2f(b), dmin = h2f(b + 2);
	uint8_t sc[8], mn[8];
	const uint8_t *qs = b + 16;
	scale_min_k4(b + 4, sc, mn);
	for (int s = 0; s < 8; s++) {
		float ds = d * (float)sc[s], dm = dmin * (float)mn[s];
		const uint8_t *q = qs + 32 * (s / 2);
		int shift = 4 * (s % 2);
		for (int l = 0; l < 32; l++) {
			float v = ds * (float)((q[l] >> shift) & 0x0F);
			y[32 * s + l] = v - dm;
		}
	}
}

static void deq_q5_k(const uint8_t *b, float *y)
{
	float d = h2f(b), dmin = h2f(b + 2);
	uint8_t sc[8], mn[8];
	const uint8_t *qh = b + 16, *qs = b + 48;
	scale_min_k4(b + 4, sc, mn);
	for (int s = 0; s < 8; s++) {
		float ds = d * (float)sc[s], dm = dmin * (float)mn[s];
		const uint8_t *q = qs + 32 * (s / 2);
		int shift = 4 * (s % 2);
		for (int l = 0; l < 32; l++) {
			int v = ((q[l] >> shift) & 0x0F) | ((qh[l] >> s) & 1) << 4;
			float x = ds * (float)v;
			y[32 * s + l] = x - dm;
		}
	}
}

static void deq_q6_k(const uint8_t *b, float *y)
{
	const uint8_t *ql = b, *qh = b + 128;
	const int8_t *sc = (const int8_t *)(b + 192);
	float d = h2f(b + 208), ds[16];
	for (int i = 0; i < 16; i++)
		ds[i] = d * (float)sc[i];
	for (int r = 0; r < 8; r++) {
		const uint8_t *lo = ql + 64 * (r / 4) + 32 * (r % 2);
		const uint8_t *hi = qh + 32 * (r / 4);
		int lshift = 4 * ((r % 4) / 2), hshift = 2 * (r % 4);
		for (int l = 0; l < 32; l++) {
			int q = ((lo[l] >> lshift) & 0x0F) | ((hi[l] >> hshift) & 3) << 4;
			int e = 32 * r + l;
			y[e] = ds[e / 16] * (float)(q - 32);
		}
	}
}

int tk_ggml_dequantize(int type, const void *src, float *dst, uint64_t n)
{
	const uint8_t *p = src;
	void (*fn)(const uint8_t *, float *) = NULL;
	switch (type) {
	case TK_GGML_F32:
		memcpy(dst, src, n * 4);
		return 0;
	case TK_GGML_F16:
		for (uint64_t i = 0; i < n; i++)
			dst[i] = h2f(p + 2 * i);
		return 0;
	case TK_GGML_BF16:
		for (uint64_t i = 0; i < n; i++)
			dst[i] = tk_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
		return 0;
	case TK_GGML_Q4_0: fn = deq_q4_0; break;
	case TK_GGML_Q4_1: fn = deq_q4_1; break;
	case TK_GGML_Q5_0: fn = deq_q5_0; break;
	case TK_GGML_Q5_1: fn = deq_q5_1; break;
	case TK_GGML_Q8_0: fn = deq_q8_0; break;
	case TK_GGML_Q4_K: fn = deq_q4_k; break;
	case TK_GGML_Q5_K: fn = deq_q5_k; break;
	case TK_GGML_Q6_K: fn = deq_q6_k; break;
	default:
		return TK_E_UNSUPPORTED;
	}
	uint64_t bs = (uint64_t)types[type].block, sz = (uint64_t)types[type].size;
	if (n % bs)
		return TK_E_INVAL;
	for (uint64_t i = 0; i < n / bs; i++)
		fn(p + i * sz, dst + i * bs);
	return 0;
}

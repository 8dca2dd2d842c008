/* decode.cu - the decode step's kernels: the fused 4-bit / int8 GEMV
 * (qmatmul), attention of a few new rows over the KV cache
 * (attention_decode), and the scatter of new keys and values into the
 * cache (copy_rows); lib/compute/backend-cpu.c computes the same ops on the CPU.
 *
 * qmatmul: one warp per output row (a row of W), QMM_WARPS warps per
 * block.  The lanes walk the row's packed bytes four at a time (one 32-bit
 * load when aligned: a warp reads 128 contiguous bytes per step), look the
 * nibbles up in the 16 code values held in shared memory (neighbouring
 * lanes read different entries, which __constant__ memory would
 * serialize), multiply by the block's absmax as lib/base/quant.c does (the
 * nested absmax a rounded product then a rounded sum; every product
 * __fmul_rn, never fused) and accumulate x . w for up to QMM_M rows of x at
 * once; a warp-shuffle sum gives each output.  The weight is read once per
 * QMM_M rows of x.
 *
 * attention_decode: one block per (new row, query head), ATT_D_WARPS warps;
 * warp w takes keys j0 + w, j0 + w + ATT_D_WARPS, ... of the window, each
 * lane holding head dims lane, lane + 32, ... of the query and of its
 * running output; the softmax is online per warp (running maximum and
 * sum), the warps' partial results are merged in warp order through shared
 * memory.  head_dim at most 256.
 *
 * Unverified: compiled, never run on a GPU in this project;
 * tests/gpu/test-cuda-decode.c compares each op with the CPU backend.
 */
#include <math.h>

#include "ops-cuda.cuh"
#include "reduce.cuh"

#include "base/quant-common.h"

extern "C" {
#include "base/quant.h"
}

#define QMM_WARPS 8
#define QMM_M 8
#define ATT_D_WARPS 4

/* ---- qmatmul ---- */

/* Adds x[i, c] * w to acc[i] for the m (<= QMM_M) rows of x. */
__device__ __forceinline__ void qmm_acc(float *acc, const float *x, size_t cols, int m,
					size_t c, float w)
{
#pragma unroll
	for (int i = 0; i < QMM_M; i++)
		if (i < m)
			acc[i] = fmaf(x[(size_t)i * cols + c], w, acc[i]);
}

/* Rows [row0, row0 + n) of a 4-bit weight: data is the packed bytes from
 * byte pbase on, absmax / qabsmax the statistics from block b0 on,
 * nested_absmax from nested block nb0 on. */
__global__ void qmm4_k(float *y, int ldy, float beta, const float *x, int m, int n,
		       long long row0, size_t cols, const uint8_t *data, size_t pbase,
		       const float *absmax, const uint8_t *qabsmax, const float *nested_absmax,
		       size_t b0, size_t nb0, float offset, int fp4, size_t blocksize)
{
	__shared__ float code[16];
	const int lane = threadIdx.x & 31;
	const int r = blockIdx.x * QMM_WARPS + (threadIdx.x >> 5);

	if (threadIdx.x < 16)
		code[threadIdx.x] = fp4 ? tk_fp4_code[threadIdx.x] : tk_nf4_code[threadIdx.x];
	__syncthreads();
	if (r >= n)
		return;
	const size_t e0 = (size_t)(row0 + r) * cols, e1 = e0 + cols;
	const size_t p0 = e0 >> 1, p1 = (e1 + 1) >> 1; /* bytes holding the row */

	for (int i0 = 0; i0 < m; i0 += QMM_M) {
		const int mm = m - i0 < QMM_M ? m - i0 : QMM_M;
		const float *xi = x + (size_t)i0 * cols;
		float acc[QMM_M];
#pragma unroll
		for (int i = 0; i < QMM_M; i++)
			acc[i] = 0.0f;
		for (size_t p = p0 + 4 * (size_t)lane; p < p1; p += 4 * 32) {
			const uint8_t *src = data + (p - pbase);
			unsigned bytes[4];
			if (p + 4 <= p1 && !((uintptr_t)src & 3)) {
				unsigned v = *(const unsigned *)src;
#pragma unroll
				for (int j = 0; j < 4; j++)
					bytes[j] = (v >> (8 * j)) & 0xff;
			} else {
#pragma unroll
				for (int j = 0; j < 4; j++)
					bytes[j] = p + j < p1 ? src[j] : 0;
			}
#pragma unroll
			for (int j = 0; j < 4; j++) {
				const size_t e = (p + j) << 1; /* first element of the byte */
				if (p + j >= p1)
					break;
				const size_t b = e / blocksize; /* both elements: even sizes */
				float am;
				if (qabsmax)
					am = __fadd_rn(
						__fmul_rn(tk_dynamic_code[qabsmax[b - b0]],
							  nested_absmax[b / TK_Q4_NESTED_BLOCKSIZE -
									nb0]),
						offset);
				else
					am = absmax[b - b0];
				if (e >= e0)
					qmm_acc(acc, xi, cols, mm, e - e0,
						__fmul_rn(code[bytes[j] >> 4], am));
				if (e + 1 < e1)
					qmm_acc(acc, xi, cols, mm, e + 1 - e0,
						__fmul_rn(code[bytes[j] & 15], am));
			}
		}
#pragma unroll
		for (int i = 0; i < QMM_M; i++) {
			float s = tk_warp_sum(acc[i]);
			if (lane == 0 && i < mm) {
				float *o = y + (size_t)(i0 + i) * ldy + r;
				*o = beta == 0.0f ? s : s + beta * *o;
			}
		}
	}
}

/* Rows [row0, row0 + n) of an int8 weight: codes from row row0 on, scb the
 * rows' scales. */
__global__ void qmm8_k(float *y, int ldy, float beta, const float *x, int m, int n, size_t cols,
		       const int8_t *codes, const float *scb)
{
	const int lane = threadIdx.x & 31;
	const int r = blockIdx.x * QMM_WARPS + (threadIdx.x >> 5);

	if (r >= n)
		return;
	const int8_t *row = codes + (size_t)r * cols;
	const float s = __fmul_rn(scb[r], (float)(1.0 / 127.0));

	for (int i0 = 0; i0 < m; i0 += QMM_M) {
		const int mm = m - i0 < QMM_M ? m - i0 : QMM_M;
		const float *xi = x + (size_t)i0 * cols;
		float acc[QMM_M];
#pragma unroll
		for (int i = 0; i < QMM_M; i++)
			acc[i] = 0.0f;
		for (size_t c = 4 * (size_t)lane; c < cols; c += 4 * 32) {
			int v[4];
			if (c + 4 <= cols && !((uintptr_t)(row + c) & 3)) {
				char4 q4 = *(const char4 *)(row + c);
				v[0] = q4.x;
				v[1] = q4.y;
				v[2] = q4.z;
				v[3] = q4.w;
			} else {
#pragma unroll
				for (int j = 0; j < 4; j++)
					v[j] = c + j < cols ? row[c + j] : 0;
			}
#pragma unroll
			for (int j = 0; j < 4; j++)
				if (c + j < cols)
					qmm_acc(acc, xi, cols, mm, c + j, __fmul_rn((float)v[j], s));
		}
#pragma unroll
		for (int i = 0; i < QMM_M; i++) {
			float t = tk_warp_sum(acc[i]);
			if (lane == 0 && i < mm) {
				float *o = y + (size_t)(i0 + i) * ldy + r;
				*o = beta == 0.0f ? t : t + beta * *o;
			}
		}
	}
}

cudaError_t cu_qmatmul4(cudaStream_t st, float *y, int ldy, float beta, const float *x, int m,
			int n, long long row0, size_t cols, const uint8_t *data, size_t pbase,
			const float *absmax, const uint8_t *qabsmax, const float *nested_absmax,
			size_t b0, size_t nb0, float offset, int fp4, size_t blocksize)
{
	unsigned blocks = (unsigned)((n + QMM_WARPS - 1) / QMM_WARPS);

	qmm4_k<<<blocks, QMM_WARPS * 32, 0, st>>>(y, ldy, beta, x, m, n, row0, cols, data, pbase,
						   absmax, qabsmax, nested_absmax, b0, nb0,
						   offset, fp4, blocksize);
	return cudaGetLastError();
}

cudaError_t cu_qmatmul8(cudaStream_t st, float *y, int ldy, float beta, const float *x, int m,
			int n, size_t cols, const int8_t *codes, const float *scb)
{
	unsigned blocks = (unsigned)((n + QMM_WARPS - 1) / QMM_WARPS);

	qmm8_k<<<blocks, QMM_WARPS * 32, 0, st>>>(y, ldy, beta, x, m, n, cols, codes, scb);
	return cudaGetLastError();
}

/* ---- attention_decode ---- */

/* A cache element as a float: a float, or a bf16 code widened (exact). */
__device__ __forceinline__ float cache_value(float x)
{
	return x;
}

__device__ __forceinline__ float cache_value(uint16_t h)
{
	return tk_bf16_value(h);
}

/* C: the cache's element, float or uint16_t (bf16 codes). */
template <int ND, typename C>
__global__ void att_decode_k(float *out, const float *q, const C *kc, const C *vc,
			     const int32_t *seq, const int32_t *pos, int max_len, int H, int KV,
			     int D, int window, float scale, float cap)
{
	__shared__ float wm[ATT_D_WARPS], wl[ATT_D_WARPS];
	__shared__ float wo[ATT_D_WARPS][ND * 32];
	const int i = blockIdx.x / H, h = blockIdx.x % H, g = h / (H / KV);
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	const int T = pos[i] + 1, j0 = window > 0 && T > window ? T - window : 0;
	const size_t K = (size_t)KV * D;
	const size_t base = (size_t)seq[i] * max_len * K + (size_t)g * D;
	const float *qi = q + ((size_t)i * H + h) * D;
	float qr[ND], o[ND], mx = -INFINITY, l = 0.0f;

#pragma unroll
	for (int t = 0; t < ND; t++) {
		int e = lane + 32 * t;
		qr[t] = e < D ? qi[e] : 0.0f;
		o[t] = 0.0f;
	}
	for (int j = j0 + w; j < T; j += ATT_D_WARPS) {
		const C *k = kc + base + (size_t)j * K, *v = vc + base + (size_t)j * K;
		float d = 0.0f;
#pragma unroll
		for (int t = 0; t < ND; t++) {
			int e = lane + 32 * t;
			if (e < D)
				d = fmaf(qr[t], cache_value(k[e]), d);
		}
		const float s0 = tk_warp_sum(d) * scale;
		const float s = cap > 0.0f ? tk_softcap(s0, cap) : s0;
		const float mn = fmaxf(mx, s), corr = expf(mx - mn), p = expf(s - mn);
		l = l * corr + p;
#pragma unroll
		for (int t = 0; t < ND; t++) {
			int e = lane + 32 * t;
			o[t] = o[t] * corr + (e < D ? p * cache_value(v[e]) : 0.0f);
		}
		mx = mn;
	}
	if (lane == 0) {
		wm[w] = mx;
		wl[w] = l;
	}
#pragma unroll
	for (int t = 0; t < ND; t++)
		wo[w][lane + 32 * t] = o[t];
	__syncthreads();
	/* merge the warps in order: every thread one or more output dims */
	float M = -INFINITY, L = 0.0f;
	for (int u = 0; u < ATT_D_WARPS; u++)
		M = fmaxf(M, wm[u]);
	for (int u = 0; u < ATT_D_WARPS; u++)
		L += wl[u] * (wm[u] == -INFINITY ? 0.0f : expf(wm[u] - M));
	for (int e = threadIdx.x; e < D; e += blockDim.x) {
		float a = 0.0f;
		for (int u = 0; u < ATT_D_WARPS; u++)
			if (wm[u] != -INFINITY)
				a += wo[u][e] * expf(wm[u] - M);
		out[((size_t)i * H + h) * D + e] = a / L;
	}
}

int cu_attention_decode_max_dim(void)
{
	return 256;
}

template <typename C>
static cudaError_t att_decode(cudaStream_t st, float *out, const float *q, const C *kc,
			      const C *vc, const int32_t *seq, const int32_t *pos, int n,
			      int max_len, int H, int KV, int D, float scale, int window,
			      float softcap)
{
	const unsigned blocks = (unsigned)n * (unsigned)H;
	const int th = ATT_D_WARPS * 32;

	if (D <= 32)
		att_decode_k<1, C><<<blocks, th, 0, st>>>(out, q, kc, vc, seq, pos, max_len, H, KV,
							   D, window, scale, softcap);
	else if (D <= 64)
		att_decode_k<2, C><<<blocks, th, 0, st>>>(out, q, kc, vc, seq, pos, max_len, H, KV,
							   D, window, scale, softcap);
	else if (D <= 128)
		att_decode_k<4, C><<<blocks, th, 0, st>>>(out, q, kc, vc, seq, pos, max_len, H, KV,
							   D, window, scale, softcap);
	else if (D <= 256)
		att_decode_k<8, C><<<blocks, th, 0, st>>>(out, q, kc, vc, seq, pos, max_len, H, KV,
							   D, window, scale, softcap);
	else
		return cudaErrorInvalidValue;
	return cudaGetLastError();
}

cudaError_t cu_attention_decode(cudaStream_t st, float *out, const float *q, const void *kc,
				const void *vc, int bf16, const int32_t *seq, const int32_t *pos,
				int n, int max_len, int H, int KV, int D, float scale, int window,
				float softcap)
{
	if (bf16)
		return att_decode(st, out, q, (const uint16_t *)kc, (const uint16_t *)vc, seq, pos,
				  n, max_len, H, KV, D, scale, window, softcap);
	return att_decode(st, out, q, (const float *)kc, (const float *)vc, seq, pos, n, max_len,
			  H, KV, D, scale, window, softcap);
}

/* ---- copy_rows ---- */

__global__ void copy_rows_k(float *dst, const float *src, const int64_t *idx, int n, int dim)
{
	const size_t total = (size_t)n * dim;

	for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
	     t += (size_t)gridDim.x * blockDim.x) {
		const size_t i = t / dim, e = t % dim;
		dst[(size_t)idx[i] * dim + e] = src[t];
	}
}

cudaError_t cu_copy_rows(cudaStream_t st, float *dst, const float *src, const int64_t *idx,
			 int n, int dim)
{
	copy_rows_k<<<tk_grid((size_t)n * dim, 256), 256, 0, st>>>(dst, src, idx, n, dim);
	return cudaGetLastError();
}

/* copy_rows into a bf16 cache: tk_bf16_code, as the CPU's store_rows_bf16 */
__global__ void store_rows_bf16_k(uint16_t *dst, const float *src, const int64_t *idx, int n,
				  int dim)
{
	const size_t total = (size_t)n * dim;

	for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
	     t += (size_t)gridDim.x * blockDim.x) {
		const size_t i = t / dim, e = t % dim;
		dst[(size_t)idx[i] * dim + e] = tk_bf16_code(src[t]);
	}
}

cudaError_t cu_store_rows_bf16(cudaStream_t st, uint16_t *dst, const float *src,
			       const int64_t *idx, int n, int dim)
{
	store_rows_bf16_k<<<tk_grid((size_t)n * dim, 256), 256, 0, st>>>(dst, src, idx, n, dim);
	return cudaGetLastError();
}

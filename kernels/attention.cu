/* attention.cu - causal attention with grouped-query heads, forward and
 * backward, as cpu_attention_fwd / cpu_attention_bwd compute it.
 *
 * A straightforward tiled kernel, written to be right rather than fast:
 * one block per tile of TS query rows of one (batch, head); keys in tiles
 * of TS; the tiles, the running output and the scores in shared memory
 * (rows padded to D + 1 floats against bank conflicts); the softmax online
 * (running maximum and sum per row), its log-sum-exp saved for the
 * backward pass.  TS is the largest of 32, 16, 8, 4 whose tiles fit in
 * 48 KiB, chosen per kernel from head_dim.
 *
 * Under a sliding window (struct tk_attn_opts' window W) query i sees keys
 * i - W < j <= i and the key tiles wholly outside that are skipped (the
 * forward and dq loop from the tile of key q0 - W + 1, dk/dv stop at the
 * tile of query k0 + ts + W - 2); with soft-capping (cap) each score s =
 * scale q.k becomes c = cap tanh(s / cap) (tk_softcap) before the softmax.
 *
 * Backward, with P = exp(c - lse), dP = dout.v, Dsum = dout.out,
 * dS = P (dP - Dsum) (1 - (c / cap)^2 when capped) scale: dq = dS K in one kernel (a block per query
 * tile), dk = dS^T Q and dv = P^T dout in another (a block per key tile of
 * a kv head, looping over the query heads of its group and the query tiles
 * in order): each output row has one owner, so there are no atomics and
 * the sums come out the same on every run.  P and dS are computed twice.
 */
#include "ops-cuda.cuh"
#include "reduce.cuh"

#define ATT_THREADS 128
#define ATT_SMEM_MAX (48 * 1024)
#define ATT_MAX_DIM 256

/* Shared floats: nbuf tiles of TS rows of D + 1, nsq TS x TS, nvec rows of TS. */
static size_t att_floats(int ts, int D, int nbuf, int nsq, int nvec)
{
	return (size_t)nbuf * ts * (D + 1) + (size_t)nsq * ts * ts + (size_t)nvec * ts;
}

static int att_tile(int D, int nbuf, int nsq, int nvec)
{
	for (int ts = 32; ts >= 4; ts /= 2)
		if (att_floats(ts, D, nbuf, nsq, nvec) * sizeof(float) <= ATT_SMEM_MAX)
			return ts;
	return 0;
}

int cu_attention_max_dim(void)
{
	return ATT_MAX_DIM;
}

/* dst[i][d] (rows of D + 1) = row t0 + i of src at head hd (zeros past n rows). */
__device__ __forceinline__ void att_load(float *dst, const float *src, int b, int t0, int n,
					 int T, int heads, int hd, int D, int ts)
{
	for (int idx = threadIdx.x; idx < ts * D; idx += blockDim.x) {
		int i = idx / D, d = idx % D;
		dst[i * (D + 1) + d] =
			i < n ? src[(((size_t)b * T + t0 + i) * heads + hd) * D + d] : 0.0f;
	}
}

/* Whether query i sees key j (causal, within the window when win > 0). */
__device__ __forceinline__ bool att_sees(int i, int j, int win)
{
	return j <= i && (win <= 0 || j > i - win);
}

/* The first key tile (of ts) that query rows from q0 on need. */
__device__ __forceinline__ int att_kstart(int q0, int win, int ts)
{
	return win > 0 && q0 - win + 1 > 0 ? (q0 - win + 1) / ts * ts : 0;
}

/* The scaled (and capped, when cap > 0) score of q.k. */
__device__ __forceinline__ float att_score(float dot, float scale, float cap)
{
	float s = scale * dot;
	return cap > 0.0f ? tk_softcap(s, cap) : s;
}

__device__ __forceinline__ float att_dot(const float *a, const float *b, int D)
{
	float s = 0.0f;
	for (int d = 0; d < D; d++)
		s += a[d] * b[d];
	return s;
}

__global__ void att_fwd_k(float *out, float *lse, const float *q, const float *k,
			  const float *v, int T, int H, int KV, int D, int ts, float scale, int win,
			  float cap)
{
	extern __shared__ float sm[];
	int ld = D + 1;
	float *Qs = sm, *KVs = Qs + ts * ld, *Os = KVs + ts * ld, *S = Os + ts * ld;
	float *mrow = S + ts * ts, *lrow = mrow + ts, *arow = lrow + ts;
	int q0 = blockIdx.x * ts, h = blockIdx.y, b = blockIdx.z, kh = h / (H / KV);
	int nq = T - q0 < ts ? T - q0 : ts, kend = q0 + nq;
	att_load(Qs, q, b, q0, nq, T, H, h, D, ts);
	for (int idx = threadIdx.x; idx < ts * ld; idx += blockDim.x)
		Os[idx] = 0.0f;
	if (threadIdx.x < ts) {
		mrow[threadIdx.x] = -INFINITY;
		lrow[threadIdx.x] = 0.0f;
	}
	__syncthreads();
	for (int k0 = att_kstart(q0, win, ts); k0 < kend; k0 += ts) {
		int nk = kend - k0 < ts ? kend - k0 : ts;
		att_load(KVs, k, b, k0, nk, T, KV, kh, D, ts);
		__syncthreads();
		for (int idx = threadIdx.x; idx < ts * ts; idx += blockDim.x) {
			int i = idx / ts, j = idx % ts;
			S[idx] = i < nq && j < nk && att_sees(q0 + i, k0 + j, win)
					 ? att_score(att_dot(Qs + i * ld, KVs + j * ld, D), scale, cap)
					 : -INFINITY;
		}
		__syncthreads();
		if (threadIdx.x < ts) {
			int i = threadIdx.x;
			float *si = S + i * ts;
			if (i < nq) {
				/* under a window a row may see none of a tile's keys:
				 * mx stays -inf and the tile adds nothing */
				float mx = mrow[i];
				for (int j = 0; j < nk; j++)
					mx = fmaxf(mx, si[j]);
				float sum = 0.0f;
				for (int j = 0; j < ts; j++) {
					float p = j < nk && si[j] != -INFINITY ? expf(si[j] - mx)
									     : 0.0f;
					si[j] = p;
					sum += p;
				}
				/* 0 until the row has seen a key */
				float alpha = mrow[i] == -INFINITY ? 0.0f : expf(mrow[i] - mx);
				lrow[i] = lrow[i] * alpha + sum;
				mrow[i] = mx;
				arow[i] = alpha;
			} else {
				for (int j = 0; j < ts; j++)
					si[j] = 0.0f;
				arow[i] = 0.0f;
			}
		}
		__syncthreads();
		att_load(KVs, v, b, k0, nk, T, KV, kh, D, ts);
		__syncthreads();
		for (int idx = threadIdx.x; idx < ts * D; idx += blockDim.x) {
			int i = idx / D, d = idx % D;
			const float *si = S + i * ts;
			float acc = Os[i * ld + d] * arow[i];
			for (int j = 0; j < nk; j++)
				acc += si[j] * KVs[j * ld + d];
			Os[i * ld + d] = acc;
		}
		__syncthreads();
	}
	for (int idx = threadIdx.x; idx < nq * D; idx += blockDim.x) {
		int i = idx / D, d = idx % D;
		out[(((size_t)b * T + q0 + i) * H + h) * D + d] = Os[i * ld + d] / lrow[i];
	}
	if (threadIdx.x < nq)
		lse[((size_t)b * H + h) * T + q0 + threadIdx.x] =
			mrow[threadIdx.x] + logf(lrow[threadIdx.x]);
}

/* dsum[b][h][t] = dout . out of that row: a warp per row, grid-stride. */
__global__ void att_dsum_k(float *dsum, const float *dout, const float *out, int T, int H,
			   int D, size_t nrows)
{
	int lane = threadIdx.x & 31;
	size_t nwarps = (size_t)gridDim.x * blockDim.x / 32;
	/* row is the same across a warp, so whole warps loop and leave together */
	for (size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; row < nrows;
	     row += nwarps) {
		/* row = (b T + t) H + h of q's layout; dsum is [b][h][t] */
		const float *a = dout + row * D, *o = out + row * D;
		float s = 0.0f;
		for (int d = lane; d < D; d += 32)
			s += a[d] * o[d];
		s = tk_warp_sum(s);
		if (!lane) {
			size_t h = row % H, bt = row / H, t = bt % T, b = bt / T;
			dsum[(b * H + h) * T + t] = s;
		}
	}
}

/* Score (i, j) of a tile pair for the backward: sets *p and returns dS. */
__device__ __forceinline__ float att_ds(const float *qi, const float *doi, const float *kj,
					const float *vj, float l, float dsum, int D, float scale,
					float cap, float *p)
{
	float c = att_score(att_dot(qi, kj, D), scale, cap);
	float pp = expf(c - l);
	float dp = att_dot(doi, vj, D);
	*p = pp;
	if (cap > 0.0f) {
		float u = c / cap;
		return pp * (dp - dsum) * (1.0f - u * u) * scale;
	}
	return pp * (dp - dsum) * scale;
}

__global__ void att_dq_k(float *dq, const float *dout, const float *q, const float *k,
			 const float *v, const float *lse, const float *dsum, int T, int H,
			 int KV, int D, int ts, float scale, int win, float cap)
{
	extern __shared__ float sm[];
	int ld = D + 1;
	float *Qs = sm, *dOs = Qs + ts * ld, *Ks = dOs + ts * ld, *Vs = Ks + ts * ld;
	float *dQs = Vs + ts * ld, *DS = dQs + ts * ld, *lr = DS + ts * ts, *dr = lr + ts;
	int q0 = blockIdx.x * ts, h = blockIdx.y, b = blockIdx.z, kh = h / (H / KV);
	int nq = T - q0 < ts ? T - q0 : ts, kend = q0 + nq;
	att_load(Qs, q, b, q0, nq, T, H, h, D, ts);
	att_load(dOs, dout, b, q0, nq, T, H, h, D, ts);
	for (int idx = threadIdx.x; idx < ts * ld; idx += blockDim.x)
		dQs[idx] = 0.0f;
	if (threadIdx.x < ts) {
		size_t r = ((size_t)b * H + h) * T + q0 + threadIdx.x;
		lr[threadIdx.x] = threadIdx.x < nq ? lse[r] : 0.0f;
		dr[threadIdx.x] = threadIdx.x < nq ? dsum[r] : 0.0f;
	}
	__syncthreads();
	for (int k0 = att_kstart(q0, win, ts); k0 < kend; k0 += ts) {
		int nk = kend - k0 < ts ? kend - k0 : ts;
		att_load(Ks, k, b, k0, nk, T, KV, kh, D, ts);
		att_load(Vs, v, b, k0, nk, T, KV, kh, D, ts);
		__syncthreads();
		for (int idx = threadIdx.x; idx < ts * ts; idx += blockDim.x) {
			int i = idx / ts, j = idx % ts;
			float p, ds = 0.0f;
			if (i < nq && j < nk && att_sees(q0 + i, k0 + j, win))
				ds = att_ds(Qs + i * ld, dOs + i * ld, Ks + j * ld, Vs + j * ld,
					    lr[i], dr[i], D, scale, cap, &p);
			DS[idx] = ds;
		}
		__syncthreads();
		for (int idx = threadIdx.x; idx < ts * D; idx += blockDim.x) {
			int i = idx / D, d = idx % D;
			float acc = dQs[i * ld + d];
			for (int j = 0; j < nk; j++)
				acc += DS[i * ts + j] * Ks[j * ld + d];
			dQs[i * ld + d] = acc;
		}
		__syncthreads();
	}
	for (int idx = threadIdx.x; idx < nq * D; idx += blockDim.x) {
		int i = idx / D, d = idx % D;
		dq[(((size_t)b * T + q0 + i) * H + h) * D + d] = dQs[i * ld + d];
	}
}

__global__ void att_dkv_k(float *dk, float *dv, const float *dout, const float *q,
			  const float *k, const float *v, const float *lse, const float *dsum,
			  int T, int H, int KV, int D, int ts, float scale, int win, float cap)
{
	extern __shared__ float sm[];
	int ld = D + 1, grp = H / KV;
	float *Ks = sm, *Vs = Ks + ts * ld, *dKs = Vs + ts * ld, *dVs = dKs + ts * ld;
	float *Qs = dVs + ts * ld, *dOs = Qs + ts * ld, *P = dOs + ts * ld, *DS = P + ts * ts;
	float *lr = DS + ts * ts, *dr = lr + ts;
	int k0 = blockIdx.x * ts, kh = blockIdx.y, b = blockIdx.z;
	int nk = T - k0 < ts ? T - k0 : ts;
	/* queries past k0 + nk - 1 + win - 1 see none of these keys */
	int qend = win > 0 && k0 + nk - 1 + win < T ? k0 + nk - 1 + win : T;
	att_load(Ks, k, b, k0, nk, T, KV, kh, D, ts);
	att_load(Vs, v, b, k0, nk, T, KV, kh, D, ts);
	for (int idx = threadIdx.x; idx < ts * ld; idx += blockDim.x)
		dKs[idx] = dVs[idx] = 0.0f;
	for (int g = 0; g < grp; g++) {
		int h = kh * grp + g;
		/* query rows before k0 see none of these keys */
		for (int q0 = k0; q0 < qend; q0 += ts) {
			int nq = T - q0 < ts ? T - q0 : ts;
			__syncthreads(); /* the previous tile's Q, dO, P, dS are used up */
			att_load(Qs, q, b, q0, nq, T, H, h, D, ts);
			att_load(dOs, dout, b, q0, nq, T, H, h, D, ts);
			if (threadIdx.x < ts) {
				size_t r = ((size_t)b * H + h) * T + q0 + threadIdx.x;
				lr[threadIdx.x] = threadIdx.x < nq ? lse[r] : 0.0f;
				dr[threadIdx.x] = threadIdx.x < nq ? dsum[r] : 0.0f;
			}
			__syncthreads();
			for (int idx = threadIdx.x; idx < ts * ts; idx += blockDim.x) {
				int i = idx / ts, j = idx % ts;
				float p = 0.0f, ds = 0.0f;
				if (i < nq && j < nk && att_sees(q0 + i, k0 + j, win))
					ds = att_ds(Qs + i * ld, dOs + i * ld, Ks + j * ld,
						    Vs + j * ld, lr[i], dr[i], D, scale, cap, &p);
				P[idx] = p;
				DS[idx] = ds;
			}
			__syncthreads();
			for (int idx = threadIdx.x; idx < ts * D; idx += blockDim.x) {
				int j = idx / D, d = idx % D;
				float av = dVs[j * ld + d], ak = dKs[j * ld + d];
				for (int i = 0; i < nq; i++) {
					av += P[i * ts + j] * dOs[i * ld + d];
					ak += DS[i * ts + j] * Qs[i * ld + d];
				}
				dVs[j * ld + d] = av;
				dKs[j * ld + d] = ak;
			}
		}
	}
	__syncthreads();
	for (int idx = threadIdx.x; idx < nk * D; idx += blockDim.x) {
		int j = idx / D, d = idx % D;
		size_t o = (((size_t)b * T + k0 + j) * KV + kh) * D + d;
		dk[o] = dKs[j * ld + d];
		dv[o] = dVs[j * ld + d];
	}
}

#define FWD_BUFS 3, 1, 3
#define DQ_BUFS 5, 1, 2
#define DKV_BUFS 6, 2, 2

cudaError_t cu_attention_fwd(cudaStream_t st, float *out, float *lse, const float *q,
			     const float *k, const float *v, int B, int T, int H, int KV, int D,
			     float scale, int window, float softcap)
{
	int ts = att_tile(D, FWD_BUFS);
	if (D > ATT_MAX_DIM || !ts || B > 65535 || H > 65535)
		return cudaErrorInvalidValue;
	dim3 grid((T + ts - 1) / ts, H, B);
	size_t smem = att_floats(ts, D, FWD_BUFS) * sizeof(float);
	att_fwd_k<<<grid, ATT_THREADS, smem, st>>>(out, lse, q, k, v, T, H, KV, D, ts, scale,
						   window, softcap);
	return cudaGetLastError();
}

cudaError_t cu_attention_bwd(cudaStream_t st, float *dq, float *dk, float *dv,
			     const float *dout, const float *q, const float *k, const float *v,
			     const float *out, const float *lse, int B, int T, int H, int KV,
			     int D, float scale, int window, float softcap, float *scratch)
{
	int tq = att_tile(D, DQ_BUFS), tkv = att_tile(D, DKV_BUFS);
	if (D > ATT_MAX_DIM || !tq || !tkv || B > 65535 || H > 65535)
		return cudaErrorInvalidValue;
	size_t nrows = (size_t)B * T * H;
	att_dsum_k<<<tk_grid(nrows * 32, ATT_THREADS), ATT_THREADS, 0, st>>>(scratch, dout, out, T,
									     H, D, nrows);
	cudaError_t e = cudaGetLastError();
	if (e != cudaSuccess)
		return e;
	dim3 gq((T + tq - 1) / tq, H, B);
	att_dq_k<<<gq, ATT_THREADS, att_floats(tq, D, DQ_BUFS) * sizeof(float), st>>>(
		dq, dout, q, k, v, lse, scratch, T, H, KV, D, tq, scale, window, softcap);
	if ((e = cudaGetLastError()) != cudaSuccess)
		return e;
	dim3 gkv((T + tkv - 1) / tkv, KV, B);
	att_dkv_k<<<gkv, ATT_THREADS, att_floats(tkv, D, DKV_BUFS) * sizeof(float), st>>>(
		dk, dv, dout, q, k, v, lse, scratch, T, H, KV, D, tkv, scale, window, softcap);
	return cudaGetLastError();
}

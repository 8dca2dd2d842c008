/* model-linear.c - the decoder's linear layers: fp32 or quantized base
 * weights, biases, LoRA adapters, forward and backward.
 *
 * A quantized weight is dequantized tk_qtile_rows rows at a time into
 * one tile buffer (on the backend's device when it can: tk_dequant_rows),
 * and each tile is one GEMM: the whole matrix never exists
 * in fp32.  A forward pass of at most TK_QMM_ROWS rows (a decode step)
 * instead reads the codes directly in the backend's fused qmatmul when it
 * has one: no tile is written, and the weight is read once.  An adapter adds scale * (drop(x) A^T) B^T; u = drop(x) A^T
 * [rows, r] is kept per adapter for the backward pass.  Dropout masks come
 * from a hash of (seed, step, adapter, element), so the backward pass (and
 * a checkpointed recomputation) rebuilds the same mask.
 */
#include <stdlib.h>
#include <string.h>

#include "model/model-int.h"
#include "model/lora-int.h"

struct tk_model_tensor *tk_model_tensor_at(const struct tk_model *m, long voff)
{
	int lo = 0, hi = m->n_tensors - 1;

	if (voff < 0)
		return NULL;
	while (lo < hi) { /* the last tensor starting at or before voff */
		int mid = (lo + hi + 1) / 2;
		if (m->tensors[mid].voff <= (size_t)voff)
			lo = mid;
		else
			hi = mid - 1;
	}
	return &m->tensors[lo];
}

float *tk_model_at(const struct tk_model *m, float *arena, long voff)
{
	const struct tk_model_tensor *t;

	if (voff < 0 || !arena)
		return NULL;
	if (!m->n_quantized)
		return arena + voff;
	t = tk_model_tensor_at(m, voff);
	return t->q ? NULL : arena + t->off + ((size_t)voff - t->voff);
}

float *tk_model_grad_at(const struct tk_model *m, long voff)
{
	const struct tk_model_tensor *t = tk_model_tensor_at(m, voff);

	return t && t->trainable ? tk_model_at(m, m->grads, voff) : NULL;
}

/* Rows per tile for a quantized matrix with `in` columns. */
static int tile_rows(int in)
{
	return tk_qtile_rows(in);
}

/* Makes the tile hold tile_rows(in) rows of in floats. */
static int need_tile(struct tk_model *m, int in)
{
	size_t n = tk_qtile_floats(in);
	if (m->run->qtile_cap < n) {
		if (m->run->qtile)
			tk_backend_free_mem(m->be, m->run->qtile);
		m->run->qtile_cap = 0;
		m->run->qtile = tk_backend_alloc(m->be, n * sizeof(float));
		if (!m->run->qtile)
			return TK_E_NOMEM;
		m->run->qtile_cap = n;
	}
	return 0;
}

/* Rows up to which a quantized forward uses the backend's qmatmul.
 * Measured on the CPU backend, 2 threads of an AMD EPYC with AVX-512, NF4
 * with double quantization, best of 40: a 1536 x 576 weight took 60 us
 * fused against 175 us in tiles for 1 row, 167 against 302 for 8, 341
 * against 363 for 16 and 640 against 499 for 32; 5632 x 2048: 779 against
 * 2317 us (1 row), 4719 against 7313 (16).  8 keeps a margin below the
 * crossing.  With the AVX2 loops (TK_CPU_ISA=avx2, 1 thread, the tiles
 * still AVX-512): 1536 x 576, 248 against 634 us for 1 row, 422 against
 * 659 for 8; the portable loops lose to the tiles (597 against 364). */
#define TK_QMM_ROWS 8

/* y[rows, out] (row stride out) = x W^T (beta 0) or += (beta 1) for a
 * quantized slice. */
static int qmatmul_fwd(struct tk_model *m, const struct tk_lin *L, const struct tk_qweight *q,
		       float *y, float beta, const float *x, int rows)
{
	int nt = tile_rows(L->in), t0;

	if (rows <= TK_QMM_ROWS) {
		int rc = tk_qmatmul(m->be, q, L->row0, L->out, rows, x, y, L->out, beta);
		if (rc != TK_E_UNSUPPORTED)
			return rc;
	}
	CHECK(need_tile(m, L->in));
	for (t0 = 0; t0 < L->out; t0 += nt) {
		int n = L->out - t0 < nt ? L->out - t0 : nt;
		CHECK(tk_dequant_rows(m->be, q, L->row0 + t0, n, m->run->qtile, NULL));
		CHECK(tk_matmul(m->be, 0, 1, rows, n, L->in, 1.0f, x, L->in, m->run->qtile, L->in,
				beta, y + t0, L->out));
	}
	return 0;
}

/* dx[rows, in] = dy W (beta 0) or += (beta 1) for a quantized slice. */
static int qmatmul_bwd(struct tk_model *m, const struct tk_lin *L, const struct tk_qweight *q,
		       float *dx, float beta, const float *dy, int rows)
{
	int nt = tile_rows(L->in), t0;

	CHECK(need_tile(m, L->in));
	for (t0 = 0; t0 < L->out; t0 += nt) {
		int n = L->out - t0 < nt ? L->out - t0 : nt;
		CHECK(tk_dequant_rows(m->be, q, L->row0 + t0, n, m->run->qtile, NULL));
		CHECK(tk_matmul(m->be, 0, 0, rows, L->in, n, 1.0f, dy + t0, L->out, m->run->qtile,
				L->in, t0 ? 1.0f : beta, dx, L->in));
	}
	return 0;
}

static int base_fwd(struct tk_model *m, const struct tk_lin *L, float *y, float beta,
		    const float *x, int rows)
{
	const struct tk_model_tensor *tw = &m->tensors[L->tw];

	if (tw->q)
		return qmatmul_fwd(m, L, tw->q, y, beta, x, rows);
	return tk_matmul(m->be, 0, 1, rows, L->out, L->in, 1.0f, x, L->in,
			 tk_model_at(m, m->params, L->w), L->in, beta, y, L->out);
}

int tk_lin_base_fwd(struct tk_model *m, const struct tk_lin *L, float *y, const float *x,
		    int rows)
{
	return base_fwd(m, L, y, 0.0f, x, rows);
}

int tk_lin_base_bwd(struct tk_model *m, const struct tk_lin *L, float *dx, float beta,
		    const float *dy, int rows)
{
	const struct tk_model_tensor *tw = &m->tensors[L->tw];

	if (tw->q)
		return qmatmul_bwd(m, L, tw->q, dx, beta, dy, rows);
	return tk_matmul(m->be, 0, 0, rows, L->in, L->out, 1.0f, dy, L->out,
			 tk_model_at(m, m->params, L->w), L->in, beta, dx, L->in);
}

/* Whether slot L's base matmul comes last, adding (beta 1) to what the
 * bias and the adapter wrote: for more rows than a decode step's.  At beta
 * 0 OpenBLAS first zeroes C in a pass of its own, and a bias or adapter
 * added afterwards is one more pass over y (or dx) each; written first,
 * the bias is one write, and the adapter's rank-r product, without a bias
 * before it, one write too (the CPU backend's small-k loops at beta 0).
 * DoRA needs the base's result alone. */
static int base_last(const struct tk_model *m, const struct tk_lin *L, int rows)
{
	return rows > TK_QMM_ROWS && !(L->ad >= 0 && m->lora->cfg.use_dora);
}

int tk_lin_fwd(struct tk_model *m, int l, int s, float *y, const float *x, int rows,
	       float *u_scratch)
{
	const struct tk_lin *L = &m->run->lin[l][s];
	const float *bias = L->b >= 0 ? tk_model_at(m, m->params, L->b) : NULL;
	float beta = 0.0f;

	if (base_last(m, L, rows)) {
		if (bias) {
			CHECK(tk_bias_set(m->be, y, bias, rows, L->out));
			beta = 1.0f;
		}
		if (L->ad >= 0) {
			CHECK(tk_lora_lin_fwd(m, L, l, y, x, rows, u_scratch, beta));
			beta = 1.0f;
		}
		return base_fwd(m, L, y, beta, x, rows);
	}
	CHECK(base_fwd(m, L, y, 0.0f, x, rows));
	if (bias)
		CHECK(tk_bias_add(m->be, y, bias, rows, L->out));
	if (L->ad >= 0)
		CHECK(tk_lora_lin_fwd(m, L, l, y, x, rows, u_scratch, 1.0f));
	return 0;
}

int tk_lin_fwd_group(struct tk_model *m, int l, const int *sl, float *const *y, int count,
		     const float *x, int rows, float *u_scratch)
{
	struct tk_gemv_item it[TK_GEMV_GROUP_MAX] = { 0 };
	int rc = count > TK_GEMV_GROUP_MAX || rows > TK_QMM_ROWS ? TK_E_UNSUPPORTED : 0;

	for (int j = 0; j < count && !rc; j++) {
		const struct tk_lin *L = &m->run->lin[l][sl[j]];
		const struct tk_model_tensor *tw = &m->tensors[L->tw];

		it[j] = (struct tk_gemv_item){ tw->q ? NULL : tk_model_at(m, m->params, L->w),
					       tw->q, L->row0, L->out, y[j] };
		if (L->in != m->run->lin[l][sl[0]].in)
			rc = TK_E_UNSUPPORTED;
	}
	if (!rc)
		rc = tk_matmul_group(m->be, rows, m->run->lin[l][sl[0]].in, x, it, count);
	if (rc == TK_E_UNSUPPORTED) {
		for (int j = 0; j < count; j++)
			CHECK(tk_lin_fwd(m, l, sl[j], y[j], x, rows, u_scratch));
		return 0;
	}
	CHECK(rc);
	for (int j = 0; j < count; j++) {
		const struct tk_lin *L = &m->run->lin[l][sl[j]];
		if (L->b >= 0)
			CHECK(tk_bias_add(m->be, y[j], tk_model_at(m, m->params, L->b), rows,
					  L->out));
		if (L->ad >= 0)
			CHECK(tk_lora_lin_fwd(m, L, l, y[j], x, rows, u_scratch, 1.0f));
	}
	return 0;
}

int tk_lin_bwd(struct tk_model *m, int l, int s, float *dx, float dx_beta, const float *dy,
	       const float *x, int rows)
{
	const struct tk_lin *L = &m->run->lin[l][s];
	const struct tk_model_tensor *tw = &m->tensors[L->tw];
	float *gw = tw->q ? NULL : tk_model_grad_at(m, L->w);
	float *gb = tk_model_grad_at(m, L->b);

	if (gw)
		CHECK(tk_matmul(m->be, 1, 0, L->out, L->in, rows, 1.0f, dy, L->out, x, L->in, 1.0f,
				gw, L->in));
	if (gb)
		CHECK(tk_bias_grad(m->be, gb, dy, rows, L->out));
	if (L->ad >= 0 && base_last(m, L, rows)) {
		CHECK(tk_lora_lin_bwd(m, L, l, dx, dx_beta, dy, x, rows));
		return tk_lin_base_bwd(m, L, dx, 1.0f, dy, rows);
	}
	CHECK(tk_lin_base_bwd(m, L, dx, dx_beta, dy, rows));
	if (L->ad >= 0)
		CHECK(tk_lora_lin_bwd(m, L, l, dx, 1.0f, dy, x, rows));
	return 0;
}

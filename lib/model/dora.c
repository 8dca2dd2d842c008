/* dora.c - DoRA on the adapted linear layers (see "DoRA" in lora.h), as
 * peft's DoraLinearLayer computes it:
 *
 *     n      = ||W + scale * B A|| per output row (detached)
 *     g      = m / n
 *     y      = W x + bias + (g - 1) * (W x') + (g * (x' A^T B^T)) * scale
 *
 * x' the adapter's input (dropout(x) when training with dropout, else x,
 * where W x' is the base output less its bias, as peft takes it).  The
 * backward pass, with n a constant:
 *
 *     dm    += sum_rows dy * (W x' + scale * x' A^T B^T) / n
 *     dB    += scale * (dy g)^T u          u = x' A^T
 *     du     = scale * (dy g) B
 *     dA    += du^T x'
 *     dx    += mask(dy (g - 1) W + du A)   (the base's dy W is the caller's)
 *
 * The norms of the last forward are kept for the backward pass (the
 * parameters do not change in between); inference computes them once per
 * adapter and keeps them until a forward that is not inference's.  The
 * element-wise parts are host loops: DoRA runs on the CPU backend only
 * (tk_lora_attach refuses another). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/lora-int.h"

struct tk_dora_run {
	float *norm;         /* [sum of the adapters' out]: the last norms */
	size_t *noff;        /* [n_ad]: adapter i's norms at norm + noff[i] */
	unsigned char *have; /* [n_ad]: inference's norms are current */
	float *tile;         /* [tile_cap]: rows of W + scale B A */
	size_t tile_cap;
	float *s1, *s2;      /* [rows, max out] each */
	size_t s_cap;        /* floats in each */
	float *g;            /* [max out]: m / n of one slot */
	double *acc;         /* [2 * max out]: dm's sums */
	int max_out, max_in;
};

void tk_dora_free(struct tk_model *m)
{
	struct tk_dora_run *r = m->lora && m->lora->run ? m->lora->run->dora : NULL;

	if (!r)
		return;
	tk_backend_free_mem(m->be, r->norm);
	tk_backend_free_mem(m->be, r->tile);
	tk_backend_free_mem(m->be, r->s1);
	tk_backend_free_mem(m->be, r->s2);
	free(r->noff);
	free(r->have);
	free(r->g);
	free(r->acc);
	free(r);
	m->lora->run->dora = NULL;
}

/* The run's DoRA state, made on first use; NULL: no memory. */
static struct tk_dora_run *dora_run(struct tk_model *m)
{
	struct tk_lora *l = m->lora;
	struct tk_dora_run *r = l->run->dora;
	size_t n = 0;

	if (r)
		return r;
	if (!(r = calloc(1, sizeof(*r))))
		return NULL;
	l->run->dora = r;
	for (int i = 0; i < l->n_ad; i++) {
		if (l->ad[i].out > r->max_out)
			r->max_out = l->ad[i].out;
		if (l->ad[i].in > r->max_in)
			r->max_in = l->ad[i].in;
		n += (size_t)l->ad[i].out;
	}
	r->tile_cap = (size_t)r->max_in > TK_QTILE ? (size_t)r->max_in : TK_QTILE;
	r->norm = tk_backend_alloc(m->be, (n ? n : 1) * sizeof(float));
	r->tile = tk_backend_alloc(m->be, r->tile_cap * sizeof(float));
	r->noff = calloc((size_t)l->n_ad + 1, sizeof(*r->noff));
	r->have = calloc((size_t)l->n_ad + 1, 1);
	r->g = calloc((size_t)r->max_out + 1, sizeof(*r->g));
	r->acc = calloc(2 * (size_t)r->max_out + 1, sizeof(*r->acc));
	if (!r->norm || !r->tile || !r->noff || !r->have || !r->g || !r->acc) {
		tk_dora_free(m);
		return NULL;
	}
	n = 0;
	for (int i = 0; i < l->n_ad; i++) {
		r->noff[i] = n;
		n += (size_t)l->ad[i].out;
	}
	return r;
}

/* s1 and s2 with room for rows [rows, max out]; 0 or TK_E_NOMEM. */
static int need_rows(struct tk_model *m, struct tk_dora_run *r, int rows)
{
	size_t need = (size_t)rows * (size_t)r->max_out;

	if (need <= r->s_cap)
		return 0;
	tk_backend_free_mem(m->be, r->s1);
	tk_backend_free_mem(m->be, r->s2);
	r->s1 = tk_backend_alloc(m->be, need * sizeof(float));
	r->s2 = tk_backend_alloc(m->be, need * sizeof(float));
	r->s_cap = r->s1 && r->s2 ? need : 0;
	return r->s_cap ? 0 : TK_E_NOMEM;
}

/* norm[j] = ||W[r0 + j] + scale * B[r0 + j] A|| for j < n: rows of W (as
 * the arena or dequantized) a tile at a time, B A added by one GEMM, the
 * squares summed in double. */
static int row_norms(struct tk_model *m, struct tk_dora_run *dr, const struct tk_lora_adapter *a,
		     int r0, int n, float *norm)
{
	const struct tk_lora *l = m->lora;
	int r = l->cfg.r, in = a->in;
	int nt = (int)(dr->tile_cap / (size_t)in);

	for (int t0 = 0; t0 < n; t0 += nt) {
		int k = n - t0 < nt ? n - t0 : nt;
		float *t = dr->tile;
		if (a->base->q)
			CHECK(tk_dequant_rows(m->be, a->base->q, r0 + t0, k, t, NULL));
		else
			memcpy(t, m->params + a->base->off + (size_t)(r0 + t0) * (size_t)in,
			       (size_t)k * (size_t)in * sizeof(float));
		CHECK(tk_matmul(m->be, 0, 0, k, in, r, l->scale,
				l->params + a->b_off + (size_t)(r0 + t0) * (size_t)r, r,
				l->params + a->a_off, in, 1.0f, t, in));
		#pragma omp parallel for schedule(static)
		for (int j = 0; j < k; j++) {
			const float *w = t + (size_t)j * (size_t)in;
			double s = 0;
			for (int c = 0; c < in; c++)
				s += (double)w[c] * w[c];
			norm[t0 + j] = (float)sqrt(s);
		}
	}
	return 0;
}

int tk_dora_init(struct tk_model *m, struct tk_diag *d)
{
	struct tk_lora *l = m->lora;
	struct tk_dora_run *dr = dora_run(m);

	if (!dr)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory for DoRA");
	for (int i = 0; i < l->n_ad; i++) {
		const struct tk_lora_adapter *a = &l->ad[i];
		int err = row_norms(m, dr, a, 0, a->out, l->params + a->m_off);
		if (err)
			return tk_diag_set(d, err, NULL, -1, "DoRA magnitude of %s: %s", a->module,
					   tk_strerror(err));
	}
	return 0;
}

/* g[j] = m[j] / n[j] of slot L, the norms computed (or inference's kept
 * ones); *norm_out points at the slot's norms. */
static int slot_scale(struct tk_model *m, struct tk_dora_run *dr, const struct tk_lin *L,
		      int infer, const float **norm_out)
{
	const struct tk_lora *l = m->lora;
	const struct tk_lora_adapter *a = &l->ad[L->ad];
	float *norm = dr->norm + dr->noff[L->ad];
	const float *mag = l->params + a->m_off + L->row0;

	if (infer) {
		if (!dr->have[L->ad])
			CHECK(row_norms(m, dr, a, 0, a->out, norm));
		dr->have[L->ad] = 1;
	} else {
		CHECK(row_norms(m, dr, a, L->row0, L->out, norm + L->row0));
		dr->have[L->ad] = 0;
	}
	norm += L->row0;
	for (int j = 0; j < L->out; j++)
		dr->g[j] = mag[j] / norm[j];
	*norm_out = norm;
	return 0;
}

int tk_dora_lin_fwd(struct tk_model *m, const struct tk_lin *L, float *y, const float *x,
		    int rows, const float *u, int infer)
{
	struct tk_lora *l = m->lora;
	const struct tk_lora_adapter *a = &l->ad[L->ad];
	struct tk_dora_run *dr = dora_run(m);
	int r = l->cfg.r, out = L->out, drop = !infer && l->training && l->cfg.dropout > 0;
	const float *norm, *bias = L->b >= 0 ? tk_model_at(m, m->params, L->b) : NULL;
	float s = l->scale, *g;

	if (!dr)
		return TK_E_NOMEM;
	CHECK(need_rows(m, dr, rows));
	CHECK(slot_scale(m, dr, L, infer, &norm));
	g = dr->g;
	/* s2 = lora_result = u B^T (unscaled, as lora_B(lora_A(x))) */
	CHECK(tk_matmul(m->be, 0, 1, rows, out, r, 1.0f, u, r,
			l->params + a->b_off + (size_t)L->row0 * (size_t)r, r, 0.0f, dr->s2, out));
	if (drop) { /* base_result = W dropout(x), recomputed as peft does */
		tk_lora_dropout(l, L->ad, x, l->run->xd, (size_t)rows * (size_t)a->in);
		CHECK(tk_lin_base_fwd(m, L, dr->s1, l->run->xd, rows));
	}
	#pragma omp parallel for schedule(static)
	for (int i = 0; i < rows; i++) {
		float *yi = y + (size_t)i * (size_t)out;
		const float *li = dr->s2 + (size_t)i * (size_t)out;
		const float *bi = dr->s1 + (size_t)i * (size_t)out;
		for (int j = 0; j < out; j++) {
			float base = drop ? bi[j] : bias ? yi[j] - bias[j] : yi[j];
			yi[j] = yi[j] + ((g[j] - 1.0f) * base + g[j] * li[j] * s);
		}
	}
	return 0;
}

int tk_dora_lin_bwd(struct tk_model *m, const struct tk_lin *L, float *dx, const float *dy,
		    const float *x, int rows)
{
	struct tk_lora *l = m->lora;
	const struct tk_lora_adapter *a = &l->ad[L->ad];
	struct tk_lora_run *rn = l->run;
	struct tk_dora_run *dr = dora_run(m);
	int r = l->cfg.r, out = L->out, in = a->in, drop = l->training && l->cfg.dropout > 0;
	size_t boff = a->b_off + (size_t)L->row0 * (size_t)r, n = (size_t)rows * (size_t)in;
	const float *u = rn->u + (size_t)L->ad * (size_t)rows * (size_t)r, *xin = x, *norm;
	const float *mag = l->params + a->m_off + L->row0;
	float *gm = l->grads + a->m_off + L->row0, s = l->scale, *g;
	double *a1, *a2;

	if (!dr)
		return TK_E_NOMEM;
	CHECK(need_rows(m, dr, rows));
	norm = dr->norm + dr->noff[L->ad] + L->row0; /* the forward's */
	g = dr->g;
	for (int j = 0; j < out; j++)
		g[j] = mag[j] / norm[j];
	if (drop) {
		tk_lora_dropout(l, L->ad, x, rn->xd, n);
		xin = rn->xd;
	}
	/* s1 = W x', s2 = u B^T: what m scales */
	CHECK(tk_lin_base_fwd(m, L, dr->s1, xin, rows));
	CHECK(tk_matmul(m->be, 0, 1, rows, out, r, 1.0f, u, r, l->params + boff, r, 0.0f, dr->s2,
			out));
	a1 = dr->acc;
	a2 = dr->acc + out;
	memset(dr->acc, 0, 2 * (size_t)out * sizeof(double));
	for (int i = 0; i < rows; i++) {
		const float *di = dy + (size_t)i * (size_t)out;
		const float *b1 = dr->s1 + (size_t)i * (size_t)out, *b2 = dr->s2 + (size_t)i * (size_t)out;
		for (int j = 0; j < out; j++) {
			a1[j] += (double)di[j] * b1[j];
			a2[j] += (double)di[j] * b2[j];
		}
	}
	for (int j = 0; j < out; j++)
		gm[j] += (float)((a1[j] + s * a2[j]) / norm[j]);
	/* s1 = dy (g - 1), s2 = dy g */
	#pragma omp parallel for schedule(static)
	for (int i = 0; i < rows; i++) {
		const float *di = dy + (size_t)i * (size_t)out;
		float *b1 = dr->s1 + (size_t)i * (size_t)out, *b2 = dr->s2 + (size_t)i * (size_t)out;
		for (int j = 0; j < out; j++) {
			b1[j] = di[j] * (g[j] - 1.0f);
			b2[j] = di[j] * g[j];
		}
	}
	/* dB += scale s2^T u;  du = scale s2 B;  dA += du^T x' */
	CHECK(tk_matmul(m->be, 1, 0, out, r, rows, s, dr->s2, out, u, r, 1.0f, l->grads + boff, r));
	CHECK(tk_matmul(m->be, 0, 0, rows, r, out, s, dr->s2, out, l->params + boff, r, 0.0f,
			rn->du, r));
	CHECK(tk_matmul(m->be, 1, 0, r, in, rows, 1.0f, rn->du, r, xin, in, 1.0f,
			l->grads + a->a_off, in));
	if (!drop) {
		CHECK(tk_lin_base_bwd(m, L, dx, 1.0f, dr->s1, rows));
		return tk_matmul(m->be, 0, 0, rows, in, r, 1.0f, rn->du, r, l->params + a->a_off, in,
				 1.0f, dx, in);
	}
	/* both terms reached x through the mask */
	CHECK(tk_lin_base_bwd(m, L, rn->tmp, 0.0f, dr->s1, rows));
	CHECK(tk_matmul(m->be, 0, 0, rows, in, r, 1.0f, rn->du, r, l->params + a->a_off, in, 1.0f,
			rn->tmp, in));
	tk_lora_dropout(l, L->ad, rn->tmp, rn->tmp, n);
	return tk_axpy(m->be, dx, 1.0f, rn->tmp, n);
}

int tk_dora_merge(struct tk_model *m, const struct tk_lora_adapter *a, float *W)
{
	const struct tk_lora *l = m->lora;
	const float *mag = l->params + a->m_off;
	int in = a->in;

	CHECK(tk_matmul(m->be, 0, 0, a->out, in, l->cfg.r, l->scale, l->params + a->b_off,
			l->cfg.r, l->params + a->a_off, in, 1.0f, W, in));
	#pragma omp parallel for schedule(static)
	for (int j = 0; j < a->out; j++) {
		float *w = W + (size_t)j * (size_t)in, f;
		double s = 0;
		for (int c = 0; c < in; c++)
			s += (double)w[c] * w[c];
		f = mag[j] / (float)sqrt(s);
		for (int c = 0; c < in; c++)
			w[c] = f * w[c];
	}
	return 0;
}

/* model-infer.c - the decoder's inference forward with a KV cache.
 *
 * The ops and the order of the training forward (model-run.c) for the new
 * rows only: norms, projections, RoPE at the cached offset, the MLP; the
 * keys and values of every layer are kept for max_len positions, and the
 * new queries attend to all cached positions up to their own.  Attention
 * runs here, in host memory (see generate.h).  Only the last row goes
 * through the final norm and the lm head.
 *
 * Shapes: n new rows, C hidden, Q = n_head*head_dim, K = n_kv_head*head_dim,
 * F intermediate, V vocab.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "model-int.h"

#define P(off) (m->params + (off))
#define OPT(off) ((off) >= 0 ? m->params + (off) : NULL)

#define CHECK(x)                  \
	do {                      \
		int err_ = (x);   \
		if (err_)         \
			return err_; \
	} while (0)

struct tk_infer {
	struct tk_model *m;
	int max_len, len;
	float *kc, *vc;                   /* [n_layer][max_len, K] */
	float *x, *ln, *q, *k, *v, *att, *mid, *h1, *h2, *act; /* rows: max_len */
	float *scores;                    /* [max_len] attention weights */
	float *lnf, *mean, *rstd;         /* final norm of one row; stats [max_len] */
	uint32_t *ids, *pos_ids;          /* [max_len] */
	int32_t *pos;                     /* [max_len] */
};

int tk_infer_new(struct tk_infer **out, struct tk_model *m, int max_len, struct tk_diag *d)
{
	const struct tk_model_config *c = &m->cfg;
	struct tk_model_run *r = m->run;
	struct tk_infer *s;
	size_t L = (size_t)max_len, C = (size_t)c->hidden, F = (size_t)c->intermediate;
	size_t Q = (size_t)r->q_dim, K = (size_t)r->kv_dim;
	size_t big = Q > C ? Q : C;

	*out = NULL;
	if (max_len < 1 || (c->pos == TK_POS_LEARNED && max_len > c->max_pos))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "a context of %d positions does not fit the model (1..%d)",
				   max_len, c->max_pos);
	if (c->sliding_window > 0 && max_len > c->sliding_window)
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "a context of %d positions is longer than the model's sliding "
				   "window %d (tk implements full causal attention only)",
				   max_len, c->sliding_window);
	s = calloc(1, sizeof(*s));
	if (!s)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	s->m = m;
	s->max_len = max_len;
	s->kc = tk_mallocn((size_t)c->n_layer * L, K * sizeof(float));
	s->vc = tk_mallocn((size_t)c->n_layer * L, K * sizeof(float));
	s->x = tk_mallocn(L, C * sizeof(float));
	s->ln = tk_mallocn(L, C * sizeof(float));
	s->q = tk_mallocn(L, Q * sizeof(float));
	s->k = tk_mallocn(L, K * sizeof(float));
	s->v = tk_mallocn(L, K * sizeof(float));
	s->att = tk_mallocn(L, Q * sizeof(float));
	s->mid = tk_mallocn(L, big * sizeof(float));
	s->h1 = tk_mallocn(L, F * sizeof(float));
	s->h2 = tk_mallocn(L, F * sizeof(float));
	s->act = tk_mallocn(L, F * sizeof(float));
	s->scores = tk_mallocn(L, sizeof(float));
	s->lnf = tk_mallocn(C, sizeof(float));
	s->mean = tk_mallocn(L, sizeof(float));
	s->rstd = tk_mallocn(L, sizeof(float));
	s->ids = tk_mallocn(L, sizeof(uint32_t));
	s->pos_ids = tk_mallocn(L, sizeof(uint32_t));
	s->pos = tk_mallocn(L, sizeof(int32_t));
	if (!s->kc || !s->vc || !s->x || !s->ln || !s->q || !s->k || !s->v || !s->att ||
	    !s->mid || !s->h1 || !s->h2 || !s->act || !s->scores || !s->lnf || !s->mean ||
	    !s->rstd || !s->ids || !s->pos_ids || !s->pos) {
		tk_infer_free(s);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1,
				   "out of memory for a KV cache of %d positions", max_len);
	}
	*out = s;
	return 0;
}

void tk_infer_free(struct tk_infer *s)
{
	if (!s)
		return;
	free(s->kc);
	free(s->vc);
	free(s->x);
	free(s->ln);
	free(s->q);
	free(s->k);
	free(s->v);
	free(s->att);
	free(s->mid);
	free(s->h1);
	free(s->h2);
	free(s->act);
	free(s->scores);
	free(s->lnf);
	free(s->mean);
	free(s->rstd);
	free(s->ids);
	free(s->pos_ids);
	free(s->pos);
	free(s);
}

void tk_infer_reset(struct tk_infer *s)
{
	s->len = 0;
}

int tk_infer_len(const struct tk_infer *s)
{
	return s->len;
}

int tk_infer_max_len(const struct tk_infer *s)
{
	return s->max_len;
}

int tk_infer_vocab(const struct tk_infer *s)
{
	return s->m->cfg.vocab_size;
}

static int norm(struct tk_infer *s, float *y, const float *x, long w, long b, int rows)
{
	struct tk_model *m = s->m;
	const struct tk_model_config *c = &m->cfg;

	if (c->norm == TK_NORM_LAYER)
		return tk_layernorm_fwd(m->be, y, s->mean, s->rstd, x, P(w), OPT(b), rows,
					c->hidden, c->norm_eps);
	return tk_rmsnorm_fwd(m->be, y, s->rstd, x, P(w), rows, c->hidden, c->norm_eps);
}

static int linear(struct tk_model *m, float *y, const float *x, long w, long b, int rows, int in,
		  int out)
{
	CHECK(tk_matmul(m->be, 0, 1, rows, out, in, 1.0f, x, in, P(w), in, 0.0f, y, out));
	if (b >= 0)
		CHECK(tk_bias_add(m->be, y, P(b), rows, out));
	return 0;
}

/* att[n, Q] for the n new rows of layer l (queries s->q), over the cache
 * kc/vc that already holds their keys and values.  Row i sits at position
 * s->len + i and sees positions 0 .. s->len + i. */
static void attend(struct tk_infer *s, const float *kc, const float *vc, int n)
{
	const struct tk_model_config *c = &s->m->cfg;
	int H = c->n_head, D = c->head_dim, G = c->n_head / c->n_kv_head;
	int Q = H * D, K = c->n_kv_head * D;
	float scale = 1.0f / sqrtf((float)D);

	for (int i = 0; i < n; i++) {
		int T = s->len + i + 1;
		for (int h = 0; h < H; h++) {
			const float *q = s->q + (size_t)i * Q + (size_t)h * D;
			float *o = s->att + (size_t)i * Q + (size_t)h * D;
			int g = h / G;
			float mx = -INFINITY, sum = 0.0f;

			for (int j = 0; j < T; j++) {
				const float *k = kc + (size_t)j * K + (size_t)g * D;
				float dot = 0.0f;
				for (int e = 0; e < D; e++)
					dot += q[e] * k[e];
				s->scores[j] = dot * scale;
				if (s->scores[j] > mx)
					mx = s->scores[j];
			}
			for (int j = 0; j < T; j++) {
				s->scores[j] = expf(s->scores[j] - mx);
				sum += s->scores[j];
			}
			memset(o, 0, (size_t)D * sizeof(float));
			for (int j = 0; j < T; j++) {
				const float *v = vc + (size_t)j * K + (size_t)g * D;
				float p = s->scores[j] / sum;
				for (int e = 0; e < D; e++)
					o[e] += p * v[e];
			}
		}
	}
}

static int layer(struct tk_infer *s, int l, int n)
{
	struct tk_model *m = s->m;
	const struct tk_model_config *c = &m->cfg;
	const struct tk_layer_off *o = &m->run->lo[l];
	int C = c->hidden, F = c->intermediate, Q = m->run->q_dim, K = m->run->kv_dim;
	float *kc = s->kc + (size_t)l * s->max_len * K, *vc = s->vc + (size_t)l * s->max_len * K;
	float *knew = kc + (size_t)s->len * K, *vnew = vc + (size_t)s->len * K;

	CHECK(norm(s, s->ln, s->x, o->ln1_w, o->ln1_b, n));
	CHECK(linear(m, s->q, s->ln, o->q_w, o->q_b, n, C, Q));
	CHECK(linear(m, knew, s->ln, o->k_w, o->k_b, n, C, K));
	CHECK(linear(m, vnew, s->ln, o->v_w, o->v_b, n, C, K));
	if (c->pos == TK_POS_ROPE) {
		CHECK(tk_rope(m->be, s->q, s->pos, n, c->n_head, c->head_dim, c->rope_theta, 0));
		CHECK(tk_rope(m->be, knew, s->pos, n, c->n_kv_head, c->head_dim, c->rope_theta,
			      0));
	}
	attend(s, kc, vc, n);
	CHECK(linear(m, s->mid, s->att, o->o_w, o->o_b, n, Q, C));
	CHECK(tk_axpy(m->be, s->mid, 1.0f, s->x, (size_t)n * C));
	CHECK(norm(s, s->ln, s->mid, o->ln2_w, o->ln2_b, n));
	CHECK(linear(m, s->h1, s->ln, o->fc_w, o->fc_b, n, C, F));
	if (c->mlp == TK_MLP_SWIGLU) {
		CHECK(linear(m, s->h2, s->ln, o->up_w, o->up_b, n, C, F));
		CHECK(tk_swiglu_fwd(m->be, s->act, s->h1, s->h2, (size_t)n * F));
	} else {
		CHECK(tk_gelu_fwd(m->be, s->act, s->h1, (size_t)n * F));
	}
	CHECK(linear(m, s->x, s->act, o->dn_w, o->dn_b, n, F, C));
	return tk_axpy(m->be, s->x, 1.0f, s->mid, (size_t)n * C);
}

int tk_infer_feed(struct tk_infer *s, const uint32_t *ids, int n, float *logits,
		  struct tk_diag *d)
{
	struct tk_model *m = s->m;
	const struct tk_model_config *c = &m->cfg;
	struct tk_model_run *r = m->run;
	int C = c->hidden, err = 0;

	if (n < 1 || n > s->max_len - s->len)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "%d more tokens do not fit a context of %d with %d used", n,
				   s->max_len, s->len);
	for (int i = 0; i < n; i++) {
		if (ids[i] >= (uint32_t)c->vocab_size)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "token id %u is not below the model's vocab_size %d",
					   ids[i], c->vocab_size);
		s->ids[i] = ids[i];
		s->pos_ids[i] = (uint32_t)(s->len + i);
		s->pos[i] = s->len + i;
	}
	err = tk_embedding_fwd(m->be, s->x, P(r->emb), s->ids, n, C);
	if (!err && r->pos >= 0) {
		err = tk_embedding_fwd(m->be, s->mid, P(r->pos), s->pos_ids, n, C);
		if (!err)
			err = tk_axpy(m->be, s->x, 1.0f, s->mid, (size_t)n * C);
	}
	for (int l = 0; l < c->n_layer && !err; l++)
		err = layer(s, l, n);
	if (!err)
		err = norm(s, s->lnf, s->x + (size_t)(n - 1) * C, r->lnf_w, r->lnf_b, 1);
	if (!err)
		err = tk_matmul(m->be, 0, 1, 1, c->vocab_size, C, 1.0f, s->lnf, C, P(r->head), C,
				0.0f, logits, c->vocab_size);
	if (err)
		return d && d->msg[0] ? err : tk_diag_set(d, err, NULL, -1,
							 "inference pass failed: %s",
							 tk_strerror(err));
	s->len += n;
	return 0;
}

/* model-run.c - the decoder's forward and backward passes.
 *
 * One code path for every configuration: the norm, the positions, the MLP
 * and the biases are chosen by the config, and every op goes through the
 * backend table.  Layer l reads the residual stream res[l] and writes
 * res[l+1], keeping its own activations (struct tk_layer_act), so a layer
 * can later be recomputed from res[l] alone (gradient checkpointing).
 *
 * Shapes: N = B*T rows, C hidden, Q = n_head*head_dim, K = n_kv_head*head_dim,
 * F intermediate, V vocab.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "model/lora-int.h"
#include "model/model-int.h"

#define P(off) tk_model_at(m, m->params, (off))
#define G(off) tk_model_grad_at(m, (off))

/* Activations */

static size_t up16(size_t n)
{
	return (n + 15) / 16 * 16;
}

/* Lays out the activation buffers for N rows in mem, or with mem NULL only
 * counts their bytes (r is written only when mem is set).  Without ckpt
 * every layer has its own struct tk_layer_act; with ckpt there is one set,
 * which every layer's entry in r->la points at: the forward overwrites it
 * layer after layer and the backward recomputes it from res[l]. */
static size_t carve(const struct tk_model_config *c, int q_dim, int kv_dim, int ckpt, size_t N,
		    char *mem, struct tk_model_run *r)
{
	size_t C = (size_t)c->hidden, Q = (size_t)q_dim, K = (size_t)kv_dim;
	size_t F = (size_t)c->intermediate, H = (size_t)c->n_head, V = (size_t)c->vocab_size;
	size_t off = 0;
	int l, sets = ckpt ? 1 : c->n_layer, swiglu = c->mlp != TK_MLP_GELU;
	struct tk_layer_act a;

#define TAKE(ptr, nfl)                                               \
	do {                                                         \
		if (mem)                                             \
			(ptr) = (void *)(mem + off * sizeof(float)); \
		off += up16(nfl);                                    \
	} while (0)
	TAKE(r->res, (size_t)(c->n_layer + 1) * N * C);
	for (l = 0; l < sets; l++) {
		memset(&a, 0, sizeof(a));
		TAKE(a.ln1, N * C);
		TAKE(a.ln1_mean, N);
		TAKE(a.ln1_rstd, N);
		TAKE(a.q, N * Q);
		TAKE(a.k, N * K);
		TAKE(a.v, N * K);
		if (c->qk_norm) {
			TAKE(a.qp, N * Q);
			TAKE(a.kp, N * K);
			TAKE(a.qr, N * H);
			TAKE(a.kr, N * (size_t)c->n_kv_head);
		}
		TAKE(a.att, N * Q);
		TAKE(a.lse, N * H);
		TAKE(a.mid, N * C);
		if (c->sandwich_norm) {
			TAKE(a.ao, N * C);
			TAKE(a.pa_rstd, N);
			TAKE(a.fo, N * C);
			TAKE(a.pf_rstd, N);
		}
		TAKE(a.ln2, N * C);
		TAKE(a.ln2_mean, N);
		TAKE(a.ln2_rstd, N);
		TAKE(a.h1, N * F);
		if (swiglu)
			TAKE(a.h2, N * F);
		TAKE(a.act, N * F);
		if (mem)
			r->la[l] = a;
	}
	for (l = sets; mem && l < c->n_layer; l++)
		r->la[l] = r->la[0];
	TAKE(r->lnf, N * C);
	TAKE(r->lnf_mean, N);
	TAKE(r->lnf_rstd, N);
	TAKE(r->dlnf, N * C);
	TAKE(r->dres, N * C);
	TAKE(r->dtmp, 2 * N * C); /* two [N, C] halves */
	TAKE(r->dq, N * Q);
	TAKE(r->dk, N * K);
	TAKE(r->dv, N * K);
	TAKE(r->datt, N * Q);
	TAKE(r->dh1, N * F);
	if (swiglu)
		TAKE(r->dh2, N * F);
	TAKE(r->dact, N * F);
	TAKE(r->chunk, (size_t)tk_model_chunk_rows(V, N) * V);
	TAKE(r->pos_ids, N);
	TAKE(r->ids, N);
#undef TAKE
	return off * sizeof(float);
}

static int reserve(struct tk_model *m, int B, int T, struct tk_diag *d)
{
	struct tk_model_run *r = m->run;
	size_t N = (size_t)B * (size_t)T, bytes;
	void *mem;

	if (!r->la && !(r->la = calloc((size_t)m->cfg.n_layer, sizeof(*r->la))))
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory for activations");
	bytes = carve(&m->cfg, r->q_dim, r->kv_dim, r->ckpt, N, NULL, NULL);
	if (bytes > r->cap_bytes || r->mem_ckpt != r->ckpt) {
		/* a mode change gives the memory of the other mode back */
		if (r->mem)
			tk_backend_free_mem(m->be, r->mem);
		r->mem = NULL;
		r->cap_bytes = 0;
		mem = tk_backend_alloc(m->be, bytes);
		if (!mem)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1,
					   "out of memory for the activations of %d x %d tokens "
					   "(%zu MiB)%s", B, T, bytes >> 20,
					   r->ckpt ? "" : "; gradient checkpointing needs less");
		r->mem = mem;
		r->cap_bytes = bytes;
		r->mem_ckpt = r->ckpt;
	}
	carve(&m->cfg, r->q_dim, r->kv_dim, r->ckpt, N, r->mem, r);
	return 0;
}

void tk_model_set_checkpointing(struct tk_model *m, int on)
{
	m->run->ckpt = !!on;
}

size_t tk_model_run_bytes(const struct tk_model *m, int B, int T)
{
	const struct tk_model_run *r = m->run;

	if (B <= 0 || T <= 0)
		return 0;
	return carve(&m->cfg, r->q_dim, r->kv_dim, r->ckpt, (size_t)B * (size_t)T, NULL, NULL);
}

size_t tk_model_act_bytes(const struct tk_model *m, int B, int T, int ckpt)
{
	const struct tk_model_run *r = m->run;

	if (B <= 0 || T <= 0)
		return 0;
	return carve(&m->cfg, r->q_dim, r->kv_dim, !!ckpt, (size_t)B * (size_t)T, NULL, NULL);
}

static int any_base_trainable(const struct tk_model *m)
{
	for (int i = 0; i < m->n_tensors; i++)
		if (m->tensors[i].trainable)
			return 1;
	return 0;
}

int tk_model_zero_grad_alloc(struct tk_model *m, struct tk_diag *d)
{
	if (!m->grads && any_base_trainable(m)) {
		m->grads = tk_backend_alloc(m->be, m->n_params * sizeof(float));
		if (!m->grads)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1,
					   "out of memory for the gradients (%zu MiB)",
					   m->n_params * sizeof(float) >> 20);
		memset(m->grads, 0, m->n_params * sizeof(float));
		tk_model_params_changed(m);
	}
	if (m->lora && !m->lora->grads) {
		int err = tk_lora_grads(m, d);
		if (err)
			return err;
		tk_model_params_changed(m);
	}
	return 0;
}

int tk_model_zero_grad(struct tk_model *m, struct tk_diag *d)
{
	int err = tk_model_zero_grad_alloc(m, d);

	if (err)
		return err;
	if (m->grads)
		memset(m->grads, 0, m->n_params * sizeof(float));
	if (m->lora)
		memset(m->lora->grads, 0, (m->lora->n_params ? m->lora->n_params : 1) *
		       sizeof(float));
	return 0;
}

/* Building blocks */

static int norm_fwd(struct tk_model *m, float *y, float *mean, float *rstd, const float *x,
		    long w, long b, int rows)
{
	const struct tk_model_config *c = &m->cfg;

	if (c->norm == TK_NORM_LAYER)
		return tk_layernorm_fwd(m->be, y, mean, rstd, x, P(w), P(b), rows, c->hidden,
					c->norm_eps);
	return tk_rmsnorm_fwd(m->be, y, rstd, x, P(w), c->norm_offset, rows, c->hidden,
			      c->norm_eps);
}

/* dx is set; the weight and bias gradients accumulate. */
static int norm_bwd(struct tk_model *m, float *dx, const float *dy, const float *x,
		    const float *mean, const float *rstd, long w, long b, int rows)
{
	const struct tk_model_config *c = &m->cfg;

	if (c->norm == TK_NORM_LAYER)
		return tk_layernorm_bwd(m->be, dx, G(w), G(b), dy, x, P(w), mean, rstd, rows,
					c->hidden);
	return tk_rmsnorm_bwd(m->be, dx, G(w), dy, x, P(w), c->norm_offset, rstd, rows,
			      c->hidden);
}

#define LIN_FWD(slot, y, x) tk_lin_fwd(m, l, (slot), (y), (x), N, NULL)
#define LIN_BWD(slot, dx, beta, dy, x) tk_lin_bwd(m, l, (slot), (dx), (beta), (dy), (x), N)

/* One layer: res[l] -> res[l+1].  With recompute (gradient checkpointing's
 * backward) it stops once the activations the backward reads are back,
 * before the down projection that would write res[l+1]. */
static int layer_fwd(struct tk_model *m, int l, int recompute)
{
	const struct tk_model_config *c = &m->cfg;
	struct tk_model_run *r = m->run;
	const struct tk_layer_off *o = &r->lo[l];
	struct tk_layer_act *a = &r->la[l];
	int B = r->B, T = r->T, N = B * T, C = c->hidden, F = c->intermediate;
	const float *x = r->res + (size_t)l * N * C;
	float *y = r->res + (size_t)(l + 1) * N * C;
	const int32_t *pos = (const int32_t *)r->pos_ids;
	float rs;
	const float *rope = tk_layer_rope(m, l, r->rope_inv, r->rope_scale, &rs);

	CHECK(norm_fwd(m, a->ln1, a->ln1_mean, a->ln1_rstd, x, o->ln1_w, o->ln1_b, N));
	if (c->qk_norm) {
		/* Qwen3: RMSNorm over each head (rows of head_dim), then RoPE */
		CHECK(LIN_FWD(TK_LIN_Q, a->qp, a->ln1));
		CHECK(LIN_FWD(TK_LIN_K, a->kp, a->ln1));
		CHECK(tk_rmsnorm_fwd(m->be, a->q, a->qr, a->qp, P(o->qn_w), c->norm_offset,
				     N * c->n_head, c->head_dim, c->norm_eps));
		CHECK(tk_rmsnorm_fwd(m->be, a->k, a->kr, a->kp, P(o->kn_w), c->norm_offset,
				     N * c->n_kv_head, c->head_dim, c->norm_eps));
	} else {
		CHECK(LIN_FWD(TK_LIN_Q, a->q, a->ln1));
		CHECK(LIN_FWD(TK_LIN_K, a->k, a->ln1));
	}
	CHECK(LIN_FWD(TK_LIN_V, a->v, a->ln1));
	if (c->pos == TK_POS_ROPE && !c->no_rope[l]) {
		CHECK(tk_rope(m->be, a->q, pos, N, c->n_head, c->head_dim, c->rotary_dim, rope,
			      rs, 0));
		CHECK(tk_rope(m->be, a->k, pos, N, c->n_kv_head, c->head_dim, c->rotary_dim, rope,
			      rs, 0));
	}
	const struct tk_attn_opts ao = tk_layer_attn(c, l);
	CHECK(tk_attention_fwd(m->be, a->att, a->lse, a->q, a->k, a->v, B, T, c->n_head,
			       c->n_kv_head, c->head_dim, &ao));
	if (c->sandwich_norm) {
		/* Gemma: the attention's output normed before the residual add */
		CHECK(LIN_FWD(TK_LIN_O, a->ao, a->att));
		CHECK(norm_fwd(m, a->mid, NULL, a->pa_rstd, a->ao, o->pa_w, -1, N));
	} else {
		CHECK(LIN_FWD(TK_LIN_O, a->mid, a->att));
	}
	CHECK(tk_axpy(m->be, a->mid, 1.0f, x, (size_t)N * C));
	CHECK(norm_fwd(m, a->ln2, a->ln2_mean, a->ln2_rstd, a->mid, o->ln2_w, o->ln2_b, N));
	CHECK(LIN_FWD(TK_LIN_FC, a->h1, a->ln2));
	if (c->mlp == TK_MLP_SWIGLU) {
		CHECK(LIN_FWD(TK_LIN_UP, a->h2, a->ln2));
		CHECK(tk_swiglu_fwd(m->be, a->act, a->h1, a->h2, (size_t)N * F));
	} else if (c->mlp == TK_MLP_GEGLU) {
		CHECK(LIN_FWD(TK_LIN_UP, a->h2, a->ln2));
		CHECK(tk_geglu_fwd(m->be, a->act, a->h1, a->h2, (size_t)N * F));
	} else {
		CHECK(tk_gelu_fwd(m->be, a->act, a->h1, (size_t)N * F));
	}
	if (c->sandwich_norm) {
		/* the backward reads the MLP's output and its norm's rstd too;
		 * a recomputation writes res[l+1] again with the same bits */
		CHECK(LIN_FWD(TK_LIN_DN, a->fo, a->act));
		CHECK(norm_fwd(m, y, NULL, a->pf_rstd, a->fo, o->pf_w, -1, N));
		return recompute ? 0 : tk_axpy(m->be, y, 1.0f, a->mid, (size_t)N * C);
	}
	if (recompute)
		return 0;
	CHECK(LIN_FWD(TK_LIN_DN, y, a->act));
	return tk_axpy(m->be, y, 1.0f, a->mid, (size_t)N * C);
}

/* r->dres: d loss / d res[l+1] on entry, d loss / d res[l] on return. */
static int layer_bwd(struct tk_model *m, int l)
{
	const struct tk_model_config *c = &m->cfg;
	struct tk_model_run *r = m->run;
	const struct tk_layer_off *o = &r->lo[l];
	const struct tk_layer_act *a = &r->la[l];
	int B = r->B, T = r->T, N = B * T, C = c->hidden, F = c->intermediate;
	const float *x = r->res + (size_t)l * N * C;
	float *dln = r->dtmp, *dx = r->dtmp + (size_t)N * C;
	const int32_t *pos = (const int32_t *)r->pos_ids;
	const float *dy = r->dres;
	float rs;
	const float *rope = tk_layer_rope(m, l, r->rope_inv, r->rope_scale, &rs);

	/* MLP (Gemma: through post_feedforward_layernorm first, into dx) */
	if (c->sandwich_norm) {
		CHECK(norm_bwd(m, dx, r->dres, a->fo, NULL, a->pf_rstd, o->pf_w, -1, N));
		dy = dx;
	}
	CHECK(LIN_BWD(TK_LIN_DN, r->dact, 0.0f, dy, a->act));
	if (c->mlp != TK_MLP_GELU) {
		if (c->mlp == TK_MLP_SWIGLU)
			CHECK(tk_swiglu_bwd(m->be, r->dh1, r->dh2, a->h1, a->h2, r->dact,
					    (size_t)N * F));
		else
			CHECK(tk_geglu_bwd(m->be, r->dh1, r->dh2, a->h1, a->h2, r->dact,
					   (size_t)N * F));
		CHECK(LIN_BWD(TK_LIN_FC, dln, 0.0f, r->dh1, a->ln2));
		CHECK(LIN_BWD(TK_LIN_UP, dln, 1.0f, r->dh2, a->ln2));
	} else {
		CHECK(tk_gelu_bwd(m->be, r->dh1, a->h1, r->dact, (size_t)N * F));
		CHECK(LIN_BWD(TK_LIN_FC, dln, 0.0f, r->dh1, a->ln2));
	}
	CHECK(norm_bwd(m, dx, dln, a->mid, a->ln2_mean, a->ln2_rstd, o->ln2_w, o->ln2_b, N));
	CHECK(tk_axpy(m->be, r->dres, 1.0f, dx, (size_t)N * C));

	/* attention (Gemma: through post_attention_layernorm first) */
	dy = r->dres;
	if (c->sandwich_norm) {
		CHECK(norm_bwd(m, dx, r->dres, a->ao, NULL, a->pa_rstd, o->pa_w, -1, N));
		dy = dx;
	}
	CHECK(LIN_BWD(TK_LIN_O, r->datt, 0.0f, dy, a->att));
	const struct tk_attn_opts ao = tk_layer_attn(c, l);
	CHECK(tk_attention_bwd(m->be, r->dq, r->dk, r->dv, r->datt, a->q, a->k, a->v, a->att,
			       a->lse, B, T, c->n_head, c->n_kv_head, c->head_dim, &ao));
	if (c->pos == TK_POS_ROPE && !c->no_rope[l]) {
		CHECK(tk_rope(m->be, r->dq, pos, N, c->n_head, c->head_dim, c->rotary_dim, rope,
			      rs, 1));
		CHECK(tk_rope(m->be, r->dk, pos, N, c->n_kv_head, c->head_dim, c->rotary_dim,
			      rope, rs, 1));
	}
	if (c->qk_norm) {
		/* through the per-head norms, into datt (free now; Q >= K):
		 * d loss / d q_proj output, then the same for k_proj */
		CHECK(tk_rmsnorm_bwd(m->be, r->datt, G(o->qn_w), r->dq, a->qp, P(o->qn_w),
				     c->norm_offset, a->qr, N * c->n_head, c->head_dim));
		CHECK(LIN_BWD(TK_LIN_Q, dln, 0.0f, r->datt, a->ln1));
		CHECK(tk_rmsnorm_bwd(m->be, r->datt, G(o->kn_w), r->dk, a->kp, P(o->kn_w),
				     c->norm_offset, a->kr, N * c->n_kv_head, c->head_dim));
		CHECK(LIN_BWD(TK_LIN_K, dln, 1.0f, r->datt, a->ln1));
	} else {
		CHECK(LIN_BWD(TK_LIN_Q, dln, 0.0f, r->dq, a->ln1));
		CHECK(LIN_BWD(TK_LIN_K, dln, 1.0f, r->dk, a->ln1));
	}
	CHECK(LIN_BWD(TK_LIN_V, dln, 1.0f, r->dv, a->ln1));
	CHECK(norm_bwd(m, dx, dln, x, a->ln1_mean, a->ln1_rstd, o->ln1_w, o->ln1_b, N));
	return tk_axpy(m->be, r->dres, 1.0f, dx, (size_t)N * C);
}

/* The lm head and the loss, tk_model_chunk_rows rows at a time. */
static int head_chunks(struct tk_model *m, const int32_t *targets, int want_grad, float scale,
		       double *sum)
{
	struct tk_model_run *r = m->run;
	int N = r->B * r->T, C = m->cfg.hidden, V = m->cfg.vocab_size, r0;
	int R = tk_model_chunk_rows(V, (size_t)N);

	for (r0 = 0; r0 < N; r0 += R) {
		int n = N - r0 < R ? N - r0 : R;
		const float *x = r->lnf + (size_t)r0 * C;

		CHECK(tk_matmul(m->be, 0, 1, n, V, C, 1.0f, x, C, P(r->head), C, 0.0f, r->chunk,
				V));
		CHECK(tk_cross_entropy(m->be, r->chunk, targets + r0, n, V, scale, want_grad,
				       sum, m->cfg.final_softcap));
		if (!want_grad)
			continue;
		/* chunk now holds d loss / d logits */
		if (G(r->head))
			CHECK(tk_matmul(m->be, 1, 0, V, C, n, 1.0f, r->chunk, V, x, C, 1.0f,
					G(r->head), C));
		CHECK(tk_matmul(m->be, 0, 0, n, C, V, 1.0f, r->chunk, V, P(r->head), C, 0.0f,
				r->dlnf + (size_t)r0 * C, C));
	}
	return 0;
}

/* The head's weight is read by every chunk, twice with the gradient, and
 * changes only at the optimizer's step: held (tk_hold), a backend that
 * converts matmul operands (--bf16 on the CPU) converts it once. */
static int head_fwd(struct tk_model *m, const int32_t *targets, int want_grad, float scale,
		    double *sum)
{
	struct tk_model_run *r = m->run;
	tk_hold(m->be, P(r->head), m->cfg.vocab_size, m->cfg.hidden, m->cfg.hidden);
	int rc = head_chunks(m, targets, want_grad, scale, sum);
	tk_unhold(m->be, P(r->head));
	return rc;
}

int tk_model_forward(struct tk_model *m, const uint32_t *ids, const int32_t *targets, int B,
		     int T, int want_grad, double grad_div, struct tk_model_loss *loss,
		     struct tk_diag *d)
{
	const struct tk_model_config *c = &m->cfg;
	struct tk_model_run *r = m->run;
	int N, C = c->hidden, l, i, err;
	long count = 0;
	double sum = 0.0, div;

	r->have_fwd = r->have_grad = 0;
	if (B <= 0 || T <= 0 || (size_t)B * (size_t)T > (size_t)INT32_MAX / (size_t)(C > 1 ? C : 1))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "bad batch shape %d x %d", B, T);
	if (c->pos == TK_POS_LEARNED && T > c->max_pos)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "sequence length %d is longer than the model's %d positions",
				   T, c->max_pos);
	if ((want_grad || loss) && !targets)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "a loss needs targets");
	N = B * T;
	for (i = 0; i < N; i++) {
		if (ids[i] >= (uint32_t)c->vocab_size)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "token id %u (sequence %d, position %d) is not below "
					   "the model's vocab_size %d", ids[i], i / T, i % T,
					   c->vocab_size);
		if (targets && targets[i] >= c->vocab_size)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "label %d (sequence %d, position %d) is not below "
					   "the model's vocab_size %d", targets[i], i / T, i % T,
					   c->vocab_size);
		if (targets && targets[i] >= 0)
			count++;
	}
	err = reserve(m, B, T, d);
	if (err)
		return err;
	if (want_grad && (err = tk_model_zero_grad_alloc(m, d)))
		return err;
	if (m->lora) {
		if ((err = tk_lora_reserve(m, N, d)))
			return err;
		m->lora->training = want_grad;
		m->lora->step += !!want_grad;
	}
	r->B = B;
	r->T = T;
	for (i = 0; i < N; i++) {
		r->pos_ids[i] = (uint32_t)(i % T);
		r->ids[i] = ids[i];
	}
	if (c->pos == TK_POS_ROPE) {
		/* positions 0..T-1: transformers' seq_len is T */
		const float *inv = tk_rope_update(&r->rope, c, T);
		memcpy(r->rope_inv, inv, (size_t)(c->rotary_dim / 2) * sizeof(float));
		r->rope_scale = r->rope.scale;
		if (c->rope_local_theta > 0)
			tk_rope_local_table(c, r->rope_local);
	}

	err = tk_embedding_fwd(m->be, r->res, P(r->emb), r->ids, N, C);
	/* Gemma-3's embedding module scales (NEFTune's noise comes after),
	 * Gemma-2's model scales what the module gave (noise and all) */
	if (!err && c->embed_scale > 0 && c->arch != TK_ARCH_GEMMA2)
		err = tk_scale(m->be, r->res, c->embed_scale, (size_t)N * C);
	if (!err && want_grad && m->neftune_alpha > 0) {
		float mag = m->neftune_alpha / sqrtf((float)T * (float)C);
		uint64_t key = tk_mix64(tk_mix64(m->noise_seed ^ 0x6e6566ULL) ^ m->noise_step);
		err = tk_add_noise(m->be, r->res, (size_t)N * C, key, mag);
	}
	if (!err && c->embed_scale > 0 && c->arch == TK_ARCH_GEMMA2)
		err = tk_scale(m->be, r->res, c->embed_scale, (size_t)N * C);
	if (!err && r->pos >= 0) {
		err = tk_embedding_fwd(m->be, r->dtmp, P(r->pos), r->pos_ids, N, C);
		if (!err)
			err = tk_axpy(m->be, r->res, 1.0f, r->dtmp, (size_t)N * C);
	}
	for (l = 0; l < c->n_layer && !err; l++)
		err = layer_fwd(m, l, 0);
	if (!err)
		err = norm_fwd(m, r->lnf, r->lnf_mean, r->lnf_rstd,
			       r->res + (size_t)c->n_layer * N * C, r->lnf_w, r->lnf_b, N);
	if (!err && targets) {
		div = grad_div > 0 ? grad_div : (double)count;
		err = head_fwd(m, targets, want_grad, div > 0 ? (float)(1.0 / div) : 0.0f, &sum);
	}
	if (err)
		return d && d->msg[0] ? err : tk_diag_set(d, err, NULL, -1, "forward pass failed: %s",
							 tk_strerror(err));
	if (loss) {
		loss->sum = sum;
		loss->count = count;
		loss->loss = count ? (float)(sum / (double)count) : NAN;
	}
	r->have_fwd = 1;
	r->have_grad = want_grad;
	return 0;
}

/* The Llama family's nn.Embedding has padding_idx = pad_token_id: torch
 * passes no gradient to that row from the lookup (a tied lm head still
 * adds its own).  Zeroes the rows of dres whose token is the pad id, run
 * by run, before the embedding's backward. */
static int drop_pad_rows(struct tk_model *m, int N, int C)
{
	const struct tk_model_run *r = m->run;
	int64_t pad = m->cfg.pad_id;

	if (m->cfg.arch == TK_ARCH_GPT2 || pad < 0 || pad >= m->cfg.vocab_size)
		return 0;
	for (int i = 0; i < N;) {
		int j = i;
		while (j < N && r->ids[j] == (uint32_t)pad)
			j++;
		if (j > i)
			CHECK(tk_scale(m->be, r->dres + (size_t)i * C, 0.0f, (size_t)(j - i) * C));
		i = j > i ? j : i + 1;
	}
	return 0;
}

int tk_model_backward(struct tk_model *m, struct tk_diag *d)
{
	const struct tk_model_config *c = &m->cfg;
	struct tk_model_run *r = m->run;
	int N, C = c->hidden, l, err;

	if (!r->have_grad)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "backward pass without a forward pass that kept gradients");
	r->have_grad = 0;
	N = r->B * r->T;
	err = norm_bwd(m, r->dres, r->dlnf, r->res + (size_t)c->n_layer * N * C, r->lnf_mean,
		       r->lnf_rstd, r->lnf_w, r->lnf_b, N);
	for (l = c->n_layer - 1; l >= 0 && !err; l--) {
		/* checkpointing (the mode of the forward, which carved the
		 * buffers): layer l's activations were overwritten by the layers
		 * after it; the same ops on the same res[l] bring back the same
		 * bits */
		if (r->mem_ckpt && (err = layer_fwd(m, l, 1)))
			break;
		err = layer_bwd(m, l);
	}
	if (!err && G(r->pos))
		err = tk_embedding_bwd(m->be, G(r->pos), r->dres, r->pos_ids, N, C);
	if (!err && G(r->emb) && c->embed_scale > 0)
		err = tk_scale(m->be, r->dres, c->embed_scale, (size_t)N * C);
	if (!err && G(r->emb) && !(err = drop_pad_rows(m, N, C)))
		err = tk_embedding_bwd(m->be, G(r->emb), r->dres, r->ids, N, C);
	if (err)
		return d && d->msg[0] ? err : tk_diag_set(d, err, NULL, -1, "backward pass failed: %s",
							 tk_strerror(err));
	return 0;
}

int tk_model_logits(struct tk_model *m, int row0, int nrows, float *out, struct tk_diag *d)
{
	struct tk_model_run *r = m->run;
	int C = m->cfg.hidden;

	if (!r->have_fwd)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "no forward pass to take logits from");
	if (row0 < 0 || nrows < 0 || row0 + nrows > r->B * r->T)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "rows %d..%d are outside the batch",
				   row0, row0 + nrows);
	if (!nrows)
		return 0;
	int err = tk_matmul(m->be, 0, 1, nrows, m->cfg.vocab_size, C, 1.0f,
			    r->lnf + (size_t)row0 * C, C, P(r->head), C, 0.0f, out,
			    m->cfg.vocab_size);
	if (!err && m->cfg.final_softcap > 0)
		err = tk_logit_softcap(m->be, out, (size_t)nrows * m->cfg.vocab_size,
				       m->cfg.final_softcap);
	return err;
}

/* model.c - the decoder's parameters: the tensor table, initialisation,
 * loading from and saving to Hugging Face model directories.
 *
 * The forward and backward passes are in model-run.c.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/adamw8-common.h"
#include "base/afile.h"
#include "base/path.h"
#include "compute/qweight-dev.h"
#include "formats/bnb.h"
#include "model/lora-int.h"
#include "model/model-int.h"
#include "formats/safetensors.h"

#define ALIGN_FLOATS 16 /* each tensor starts on a 64-byte boundary */

/* Tensor table */

struct table {
	struct tk_model_tensor *t;
	int n, cap;
	size_t off;
	int oom;
};

static long add_tensor(struct table *tb, int conv1d, int decay, int64_t d0, int64_t d1,
		       const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Appends a tensor of shape [d0] (d1 == 0) or [d0, d1] (as on disk) and
 * returns its offset, or -1 when out of memory. */
static long add_tensor(struct table *tb, int conv1d, int decay, int64_t d0, int64_t d1,
		       const char *fmt, ...)
{
	struct tk_model_tensor *t;
	va_list ap;

	if (tb->n == tb->cap) {
		int cap = tb->cap ? 2 * tb->cap : 64;
		void *p = tk_reallocn(tb->t, (size_t)cap, sizeof(*tb->t));
		if (!p) {
			tb->oom = 1;
			return -1;
		}
		tb->t = p;
		tb->cap = cap;
	}
	t = &tb->t[tb->n++];
	memset(t, 0, sizeof(*t));
	va_start(ap, fmt);
	vsnprintf(t->name, sizeof(t->name), fmt, ap);
	va_end(ap);
	t->ndim = d1 ? 2 : 1;
	t->shape[0] = d0;
	t->shape[1] = d1;
	t->n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
	t->conv1d = conv1d;
	t->decay = decay;
	t->off = tb->off;
	t->voff = tb->off;
	t->trainable = 1;
	tb->off += (t->n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
	return (long)t->off;
}

static int check_config(const struct tk_model_config *c, struct tk_diag *d)
{
	if (c->vocab_size <= 0 || c->hidden <= 0 || c->n_layer <= 0 || c->n_head <= 0 ||
	    c->n_kv_head <= 0 || c->head_dim <= 0 || c->intermediate <= 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "model configuration has a size that is not positive");
	if (c->n_head % c->n_kv_head)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "num_attention_heads (%d) is not a multiple of "
				   "num_key_value_heads (%d)", c->n_head, c->n_kv_head);
	if (c->pos == TK_POS_LEARNED && c->max_pos <= 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "learned positions need n_positions > 0");
	if (c->pos == TK_POS_ROPE && c->head_dim % 2)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "rotary positions need an even head_dim, not %d", c->head_dim);
	if (c->arch == TK_ARCH_GPT2 && (c->n_kv_head != c->n_head ||
					c->head_dim * c->n_head != c->hidden))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "gpt2 needs n_embd = n_head * head_dim without grouped heads");
	if (c->scale_attn_by_inverse_layer_idx)
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "scale_attn_by_inverse_layer_idx is not supported");
	return 0;
}

/* GPT-2 names (Conv1D [in, out] weights, fused c_attn), in the order of
 * named_parameters(). */
static int layout_gpt2(struct table *tb, struct tk_model_run *r, const struct tk_model_config *c,
		       const char *pre)
{
	int64_t C = c->hidden, F = c->intermediate, V = c->vocab_size;
	int l;

	r->emb = add_tensor(tb, 0, 1, V, C, "%swte.weight", pre);
	r->pos = add_tensor(tb, 0, 1, c->max_pos, C, "%swpe.weight", pre);
	for (l = 0; l < c->n_layer; l++) {
		struct tk_layer_off *o = &r->lo[l];
		long qkv, qkvb;

		o->ln1_w = add_tensor(tb, 0, 0, C, 0, "%sh.%d.ln_1.weight", pre, l);
		o->ln1_b = add_tensor(tb, 0, 0, C, 0, "%sh.%d.ln_1.bias", pre, l);
		qkv = add_tensor(tb, 1, 1, C, 3 * C, "%sh.%d.attn.c_attn.weight", pre, l);
		qkvb = add_tensor(tb, 0, 0, 3 * C, 0, "%sh.%d.attn.c_attn.bias", pre, l);
		o->q_w = qkv;
		o->k_w = qkv < 0 ? -1 : qkv + (long)(C * C);
		o->v_w = qkv < 0 ? -1 : qkv + (long)(2 * C * C);
		o->q_b = qkvb;
		o->k_b = qkvb < 0 ? -1 : qkvb + (long)C;
		o->v_b = qkvb < 0 ? -1 : qkvb + (long)(2 * C);
		o->o_w = add_tensor(tb, 1, 1, C, C, "%sh.%d.attn.c_proj.weight", pre, l);
		o->o_b = add_tensor(tb, 0, 0, C, 0, "%sh.%d.attn.c_proj.bias", pre, l);
		o->ln2_w = add_tensor(tb, 0, 0, C, 0, "%sh.%d.ln_2.weight", pre, l);
		o->ln2_b = add_tensor(tb, 0, 0, C, 0, "%sh.%d.ln_2.bias", pre, l);
		o->fc_w = add_tensor(tb, 1, 1, C, F, "%sh.%d.mlp.c_fc.weight", pre, l);
		o->fc_b = add_tensor(tb, 0, 0, F, 0, "%sh.%d.mlp.c_fc.bias", pre, l);
		o->up_w = o->up_b = -1;
		o->qn_w = o->kn_w = o->pa_w = o->pf_w = -1;
		o->dn_w = add_tensor(tb, 1, 1, F, C, "%sh.%d.mlp.c_proj.weight", pre, l);
		o->dn_b = add_tensor(tb, 0, 0, C, 0, "%sh.%d.mlp.c_proj.bias", pre, l);
	}
	r->lnf_w = add_tensor(tb, 0, 0, C, 0, "%sln_f.weight", pre);
	r->lnf_b = add_tensor(tb, 0, 0, C, 0, "%sln_f.bias", pre);
	r->head = c->tie_embeddings ? r->emb : add_tensor(tb, 0, 1, V, C, "lm_head.weight");
	return 0;
}

/* Llama-family names (nn.Linear [out, in] weights), in the order of
 * named_parameters(). */
static int layout_llama(struct table *tb, struct tk_model_run *r, const struct tk_model_config *c)
{
	int64_t C = c->hidden, F = c->intermediate, V = c->vocab_size;
	int64_t Q = r->q_dim, K = r->kv_dim;
	int nb = c->norm == TK_NORM_LAYER; /* LayerNorm has a bias */
	int l;

	r->emb = add_tensor(tb, 0, 1, V, C, "model.embed_tokens.weight");
	r->pos = -1;
	for (l = 0; l < c->n_layer; l++) {
		struct tk_layer_off *o = &r->lo[l];
		const char *a = "model.layers.%d.self_attn.", *m = "model.layers.%d.mlp.";
		char fmt[96];

#define T2(out, in, sub, nm) \
	(snprintf(fmt, sizeof(fmt), "%s%s.weight", sub, nm), \
	 add_tensor(tb, 0, 1, out, in, fmt, l))
#define T1(n, sub, nm) \
	(snprintf(fmt, sizeof(fmt), "%s%s.bias", sub, nm), add_tensor(tb, 0, 0, n, 0, fmt, l))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		if (c->fused) {
			/* Phi-3: o_proj, then qkv_proj [Q + 2K, C] whose rows are
			 * q, k, v; gate_up_proj [2F, C]: gate, then up; no biases */
			long qkv, gu;
			o->o_w = T2(C, Q, a, "o_proj");
			qkv = T2(Q + 2 * K, C, a, "qkv_proj");
			gu = T2(2 * F, C, m, "gate_up_proj");
			o->dn_w = T2(C, F, m, "down_proj");
			o->q_w = qkv;
			o->k_w = qkv < 0 ? -1 : qkv + (long)(Q * C);
			o->v_w = qkv < 0 ? -1 : qkv + (long)((Q + K) * C);
			o->fc_w = gu;
			o->up_w = gu < 0 ? -1 : gu + (long)(F * C);
			o->q_b = o->k_b = o->v_b = o->o_b = o->fc_b = o->up_b = o->dn_b = -1;
			o->qn_w = o->kn_w = -1;
			goto norms;
		}
		o->q_w = T2(Q, C, a, "q_proj");
		o->q_b = c->attn_bias ? T1(Q, a, "q_proj") : -1;
		o->k_w = T2(K, C, a, "k_proj");
		o->k_b = c->attn_bias ? T1(K, a, "k_proj") : -1;
		o->v_w = T2(K, C, a, "v_proj");
		o->v_b = c->attn_bias ? T1(K, a, "v_proj") : -1;
		o->o_w = T2(C, Q, a, "o_proj");
		o->o_b = c->attn_out_bias ? T1(C, a, "o_proj") : -1;
		/* Qwen3's per-head norms (no weight decay: Trainer's "_norm") */
		o->qn_w = o->kn_w = -1;
		if (c->qk_norm) {
			o->qn_w = add_tensor(tb, 0, 0, c->head_dim, 0,
					     "model.layers.%d.self_attn.q_norm.weight", l);
			o->kn_w = add_tensor(tb, 0, 0, c->head_dim, 0,
					     "model.layers.%d.self_attn.k_norm.weight", l);
		}
		o->fc_w = T2(F, C, m, "gate_proj");
		o->fc_b = c->mlp_bias ? T1(F, m, "gate_proj") : -1;
		o->up_w = T2(F, C, m, "up_proj");
		o->up_b = c->mlp_bias ? T1(F, m, "up_proj") : -1;
		o->dn_w = T2(C, F, m, "down_proj");
		o->dn_b = c->mlp_bias ? T1(C, m, "down_proj") : -1;
norms:
#pragma GCC diagnostic pop
#undef T1
#undef T2
		o->ln1_w = add_tensor(tb, 0, 0, C, 0, "model.layers.%d.input_layernorm.weight", l);
		o->ln1_b = nb ? add_tensor(tb, 0, 0, C, 0, "model.layers.%d.input_layernorm.bias",
					   l) : -1;
		o->pa_w = o->pf_w = -1;
		if (c->sandwich_norm) {
			/* Gemma: the norm before the MLP is pre_feedforward_layernorm */
			o->pa_w = add_tensor(tb, 0, 0, C, 0,
					     "model.layers.%d.post_attention_layernorm.weight", l);
			o->ln2_w = add_tensor(tb, 0, 0, C, 0,
					      "model.layers.%d.pre_feedforward_layernorm.weight", l);
			o->ln2_b = -1;
			o->pf_w = add_tensor(tb, 0, 0, C, 0,
					     "model.layers.%d.post_feedforward_layernorm.weight", l);
			continue;
		}
		o->ln2_w = add_tensor(tb, 0, 0, C, 0,
				      "model.layers.%d.post_attention_layernorm.weight", l);
		o->ln2_b = nb ? add_tensor(tb, 0, 0, C, 0,
					   "model.layers.%d.post_attention_layernorm.bias", l) : -1;
	}
	r->lnf_w = add_tensor(tb, 0, 0, C, 0, "model.norm.weight");
	r->lnf_b = nb ? add_tensor(tb, 0, 0, C, 0, "model.norm.bias") : -1;
	r->head = c->tie_embeddings ? r->emb : add_tensor(tb, 0, 1, V, C, "lm_head.weight");
	return 0;
}

/* The index of the tensor holding virtual offset voff, -1 for none. */
static int tensor_index(const struct tk_model *m, long voff)
{
	const struct tk_model_tensor *t = tk_model_tensor_at(m, voff);
	return t ? (int)(t - m->tensors) : -1;
}

/* Fills r->lin from r->lo. */
static void make_slots(struct tk_model *m)
{
	struct tk_model_run *r = m->run;
	const struct tk_model_config *c = &m->cfg;
	int C = c->hidden, F = c->intermediate, Q = r->q_dim, K = r->kv_dim;

	for (int l = 0; l < c->n_layer; l++) {
		const struct tk_layer_off *o = &r->lo[l];
		const long w[TK_LIN_N] = { o->q_w, o->k_w, o->v_w, o->o_w, o->fc_w, o->up_w, o->dn_w };
		const long b[TK_LIN_N] = { o->q_b, o->k_b, o->v_b, o->o_b, o->fc_b, o->up_b, o->dn_b };
		const int in[TK_LIN_N] = { C, C, C, Q, C, C, F };
		const int out[TK_LIN_N] = { Q, K, K, C, F, F, C };

		for (int s = 0; s < TK_LIN_N; s++) {
			struct tk_lin *L = &r->lin[l][s];
			L->w = w[s];
			L->b = b[s];
			L->tw = tensor_index(m, w[s]);
			L->tb = tensor_index(m, b[s]);
			L->in = in[s];
			L->out = out[s];
			L->row0 = L->tw < 0 ? 0 :
				  (int)(((size_t)w[s] - m->tensors[L->tw].voff) / (size_t)in[s]);
			L->ad = -1;
		}
	}
}

/* Builds the table and the layout and, with alloc, allocates the parameter
 * arena (zeroed).  gpt2_prefix: "transformer." or "" (GPT-2 only). */
static int model_make(struct tk_model *m, const struct tk_model_config *c, struct tk_backend *be,
		      const char *gpt2_prefix, int alloc, struct tk_diag *d)
{
	struct table tb = { 0 };
	struct tk_model_run *r;
	int err;

	memset(m, 0, sizeof(*m));
	err = check_config(c, d);
	if (err)
		return err;
	m->cfg = *c;
	m->be = be;
	r = calloc(1, sizeof(*r));
	if (!r)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	m->run = r;
	r->lo = tk_mallocn((size_t)c->n_layer, sizeof(*r->lo));
	if (!r->lo)
		goto nomem;
	r->q_dim = c->n_head * c->head_dim;
	r->kv_dim = c->n_kv_head * c->head_dim;
	if (c->arch == TK_ARCH_GPT2)
		layout_gpt2(&tb, r, c, gpt2_prefix);
	else
		layout_llama(&tb, r, c);
	m->tensors = tb.t;
	m->n_tensors = tb.n;
	if (tb.oom)
		goto nomem;
	if (!(r->lin = tk_mallocn((size_t)c->n_layer, sizeof(*r->lin))))
		goto nomem;
	make_slots(m);
	m->n_params = tb.off;
	if (!alloc)
		return 0;
	m->params = tk_backend_alloc(be, m->n_params * sizeof(float));
	if (!m->params)
		goto nomem;
	memset(m->params, 0, m->n_params * sizeof(float));
	return 0;
nomem:
	tk_model_free(m);
	return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory for the model");
}

void tk_model_free(struct tk_model *m)
{
	struct tk_model_run *r = m->run;

	tk_lora_free(m);
	if (r) {
		if (r->mem)
			tk_backend_free_mem(m->be, r->mem);
		if (r->qtile)
			tk_backend_free_mem(m->be, r->qtile);
		free(r->la);
		free(r->lo);
		free(r->lin);
		free(r->tp);
		free(r->tp_names);
		free(r);
	}
	for (int i = 0; i < m->n_tensors; i++)
		if (m->tensors[i].q) {
			tk_qweight_free(m->tensors[i].q);
			free(m->tensors[i].q);
		}
	if (m->params)
		tk_backend_free_mem(m->be, m->params);
	if (m->grads)
		tk_backend_free_mem(m->be, m->grads);
	free(m->tensors);
	memset(m, 0, sizeof(*m));
}

const struct tk_model_tensor *tk_model_find(const struct tk_model *m, const char *name)
{
	int i;

	for (i = 0; i < m->n_tensors; i++)
		if (!strcmp(m->tensors[i].name, name))
			return &m->tensors[i];
	return NULL;
}

/* dst [cols, rows] = the transpose of src [rows, cols]. */
static void transpose(float *dst, const float *src, size_t rows, size_t cols)
{
	for (size_t i = 0; i < rows; i++)
		for (size_t j = 0; j < cols; j++)
			dst[j * rows + i] = src[i * cols + j];
}

void tk_model_export(const struct tk_model *m, const struct tk_model_tensor *t,
		     const float *arena, float *dst)
{
	const float *src = arena + t->off;

	if (!t->conv1d)
		memcpy(dst, src, t->n * sizeof(float));
	else /* arena [out, in] -> disk [in, out] */
		transpose(dst, src, (size_t)t->shape[1], (size_t)t->shape[0]);
}

void tk_model_import(const struct tk_model *m, const struct tk_model_tensor *t,
		     const float *src, float *arena)
{
	float *dst = arena + t->off;

	if (!t->conv1d)
		memcpy(dst, src, t->n * sizeof(float));
	else /* disk [in, out] -> arena [out, in] */
		transpose(dst, src, (size_t)t->shape[0], (size_t)t->shape[1]);
}

void tk_model_shift_labels(const int32_t *labels, int B, int T, int32_t *targets)
{
	int b, t;

	for (b = 0; b < B; b++) {
		for (t = 0; t + 1 < T; t++)
			targets[(size_t)b * T + t] = labels[(size_t)b * T + t + 1];
		if (T > 0)
			targets[(size_t)b * T + T - 1] = -100;
	}
}

/* Initialisation */

struct rng {
	struct tk_rng r;
	int have;
	double spare;
};

/* Uniform in (0, 1). */
static double rng_open01(struct rng *g)
{
	return ((double)(tk_rng_next(&g->r) >> 11) + 0.5) / 9007199254740992.0;
}

/* Standard normal (Box-Muller, both values used). */
static double rng_normal(struct rng *g)
{
	double u, v, rad;

	if (g->have) {
		g->have = 0;
		return g->spare;
	}
	u = rng_open01(g);
	v = rng_open01(g);
	rad = sqrt(-2.0 * log(u));
	g->spare = rad * sin(2.0 * M_PI * v);
	g->have = 1;
	return rad * cos(2.0 * M_PI * v);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

/* Draws the fp32 tensors of m (all but the quantized ones) from g. */
static void init_tensors(struct tk_model *m, struct rng *g)
{
	const struct tk_model_config *c = &m->cfg;
	double std = c->initializer_range > 0 ? c->initializer_range : 0.02;

	/* tensors in table order, elements in the order of the disk layout */
	for (int i = 0; i < m->n_tensors; i++) {
		const struct tk_model_tensor *t = &m->tensors[i];
		float *p = m->params + t->off;
		size_t j, rows = (size_t)t->shape[0], cols = t->ndim == 2 ? (size_t)t->shape[1] : 1;
		double s = std;

		if (t->q)
			continue;
		if (t->ndim == 1) { /* biases 0, norm weights 1 (Gemma's 1 + w: 0) */
			float v = ends_with(t->name, ".bias") ? 0.0f : 1.0f - c->norm_offset;
			for (j = 0; j < t->n; j++)
				p[j] = v;
			continue;
		}
		if (c->arch == TK_ARCH_GPT2 && ends_with(t->name, "c_proj.weight"))
			s = std / sqrt(2.0 * c->n_layer);
		for (j = 0; j < t->n; j++) {
			float v = (float)(s * rng_normal(g));
			size_t r = j / cols, col = j % cols;
			/* disk [rows, cols]; a Conv1D's arena is [cols, rows] */
			p[t->conv1d ? col * rows + r : j] = v;
		}
	}
	if (c->arch != TK_ARCH_GPT2 && c->pad_id >= 0 && c->pad_id < c->vocab_size)
		memset(tk_model_at(m, m->params, m->run->emb) + (size_t)c->pad_id * c->hidden, 0,
		       (size_t)c->hidden * sizeof(float));
}

int tk_model_init(struct tk_model *m, const struct tk_model_config *c, uint64_t seed,
		  struct tk_backend *be, struct tk_diag *d)
{
	struct rng g = { { { 0 } }, 0, 0 };
	int err;

	err = model_make(m, c, be, "transformer.", 1, d);
	if (err)
		return err;
	tk_rng_seed(&g.r, seed);
	init_tensors(m, &g);
	return 0;
}

/* Moves every quantized weight into the backend's memory, where its
 * dequant_rows reads it (nothing on the CPU backend). */
static int qweights_to_backend(struct tk_model *m, struct tk_diag *d)
{
	int err = 0;

	for (int i = 0; i < m->n_tensors && !err; i++)
		if (m->tensors[i].q)
			err = tk_qweight_to_backend(m->tensors[i].q, m->be, d);
	return err;
}

/* Lays the arena out without the quantized tensors and allocates it. */
static int alloc_compact(struct tk_model *m, const char *path, struct tk_diag *d)
{
	size_t off = 0;

	for (int i = 0; i < m->n_tensors; i++) {
		struct tk_model_tensor *t = &m->tensors[i];
		t->off = t->q ? 0 : off;
		if (!t->q)
			off += (t->n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
	}
	m->n_params = off;
	m->params = tk_backend_alloc(m->be, (off ? off : 1) * sizeof(float));
	if (!m->params)
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory for the model");
	memset(m->params, 0, (off ? off : 1) * sizeof(float));
	return 0;
}

int tk_model_init_quantized(struct tk_model *m, const struct tk_model_config *c,
			    enum tk_q4_type type, int nested, uint64_t seed,
			    struct tk_backend *be, struct tk_diag *d)
{
	struct rng g = { { { 0 } }, 0, 0 };
	double std = c->initializer_range > 0 ? c->initializer_range : 0.02;
	float *tmp = NULL;
	size_t cap = 0;
	int err = model_make(m, c, be, "transformer.", 0, d), k = 0;

	if (err)
		return err;
	for (int l = 0; l < c->n_layer && !err; l++)
		for (int s = 0; s < TK_LIN_N && !err; s++) {
			const struct tk_lin *L = &m->run->lin[l][s];
			struct tk_model_tensor *t;
			int64_t rows;
			if (L->tw < 0 || L->row0)
				continue;
			t = &m->tensors[L->tw];
			rows = (int64_t)(t->n / (size_t)L->in);
			if ((err = tk_grow(&tmp, &cap, t->n, sizeof(float)))) {
				err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
				break;
			}
			/* uniform in [-a, a], a = std * sqrt(3), from a generator per
			 * chunk of 64K values, so that threads draw the same numbers */
			float a = (float)(std * sqrt(3.0));
			long long nch = (long long)((t->n + 65535) / 65536);
			#pragma omp parallel for schedule(static)
			for (long long ch = 0; ch < nch; ch++) {
				struct tk_rng r;
				size_t lo = (size_t)ch * 65536, hi = lo + 65536 < t->n ? lo + 65536 : t->n;
				tk_rng_seed(&r, seed ^ ((uint64_t)(k + 1) << 40) ^ (uint64_t)ch);
				for (size_t j = lo; j < hi; j++)
					tmp[j] = a * (float)(2.0 * tk_rng_double(&r) - 1.0);
			}
			if (!(t->q = calloc(1, sizeof(*t->q)))) {
				err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
				break;
			}
			err = tk_qweight_quantize4(t->q, tmp, rows, L->in,
						   type == TK_Q4_FP4 ? TK_QK_FP4 : TK_QK_NF4, 64,
						   nested, 1, d);
			if (err) {
				free(t->q);
				t->q = NULL;
				break;
			}
			t->trainable = 0;
			m->n_quantized++;
			k++;
		}
	free(tmp);
	if (!err)
		err = alloc_compact(m, NULL, d);
	if (!err)
		err = qweights_to_backend(m, d);
	if (err) {
		tk_model_free(m);
		return err;
	}
	tk_rng_seed(&g.r, seed);
	init_tensors(m, &g);
	return 0;
}

/* Loading */

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
	size_t len = 0;
	int i;

	len += (size_t)snprintf(buf, n, "[");
	for (i = 0; i < ndim && len < n; i++)
		len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "",
					(long long)shape[i]);
	if (len < n)
		snprintf(buf + len, n - len, "]");
}

/* The file's tensor for t, checked: its shape, a float dtype. */
static int find_tensor(const struct tk_model *m, const tk_safetensors_t *st,
		       const struct tk_model_tensor *t, const char *dir,
		       const struct tk_tensor_info **out, struct tk_diag *d)
{
	const struct tk_tensor_info *ti = tk_safetensors_find(st, t->name);

	/* a tied checkpoint that kept the shared tensor under the head's name
	 * only: from_pretrained ties the embedding to the head then */
	if (!ti && m->cfg.tie_embeddings && t == tk_model_embedding(m))
		ti = tk_safetensors_find(st, "lm_head.weight");
	char want[64], got[64];
	int i, same = 1;

	if (!ti)
		return tk_diag_set(d, TK_E_FORMAT, dir, -1, "missing tensor %s", t->name);
	if (ti->ndim != t->ndim)
		same = 0;
	for (i = 0; same && i < t->ndim; i++)
		if (ti->shape[i] != t->shape[i])
			same = 0;
	if (!same) {
		shape_str(want, sizeof(want), t->ndim, t->shape);
		shape_str(got, sizeof(got), ti->ndim, ti->shape);
		return tk_diag_set(d, TK_E_FORMAT, ti->file ? ti->file : dir, -1,
				   "tensor %s has shape %s, expected %s", t->name, got, want);
	}
	if (ti->dtype != TK_DT_F32 && ti->dtype != TK_DT_F16 && ti->dtype != TK_DT_BF16)
		return tk_diag_set(d, TK_E_UNSUPPORTED, ti->file ? ti->file : dir, -1,
				   "tensor %s has dtype %s, expected F32, F16 or BF16", t->name,
				   tk_dtype_name(ti->dtype));
	*out = ti;
	return 0;
}

static int load_tensor(struct tk_model *m, const tk_safetensors_t *st, const struct tk_model_tensor *t,
		       float *tmp, const char *dir, struct tk_diag *d)
{
	const struct tk_tensor_info *ti;
	int err = find_tensor(m, st, t, dir, &ti, d);

	if (err)
		return err;
	if (!t->conv1d)
		return tk_safetensors_to_f32(ti, m->params + t->off, d);
	err = tk_safetensors_to_f32(ti, tmp, d);
	if (!err)
		tk_model_import(m, t, tmp, m->params);
	return err;
}

/* Reads the quantized linear weights of a bitsandbytes checkpoint (those
 * stored as U8 or I8) into t->q and lays the arena out without them. */
static int load_quantized(struct tk_model *m, const tk_safetensors_t *st, const char *dir,
			  struct tk_diag *d)
{
	struct tk_model_run *r = m->run;
	int err;

	for (int l = 0; l < m->cfg.n_layer; l++)
		for (int s = 0; s < TK_LIN_N; s++) {
			const struct tk_lin *L = &r->lin[l][s];
			struct tk_model_tensor *t;
			const struct tk_tensor_info *ti;
			if (L->tw < 0 || L->row0)
				continue;
			t = &m->tensors[L->tw];
			ti = tk_safetensors_find(st, t->name);
			if (!ti || (ti->dtype != TK_DT_U8 && ti->dtype != TK_DT_I8))
				continue; /* kept in floating point (a skipped module) */
			if (!(t->q = calloc(1, sizeof(*t->q))))
				return tk_diag_set(d, TK_E_NOMEM, dir, -1, "out of memory");
			err = tk_bnb_read_weight(st, t->name, (int64_t)(t->n / (size_t)L->in), L->in,
						 t->q, d);
			if (err)
				return err;
			t->trainable = 0;
			m->n_quantized++;
		}
	return 0;
}

/* Holds t (a weight matrix stored F16 or BF16) as a half tk_qweight. */
static int hold_half(struct tk_model *m, const tk_safetensors_t *st, struct tk_model_tensor *t,
		     int64_t cols, const char *dir, struct tk_diag *d)
{
	const struct tk_tensor_info *ti;
	int err;

	if (t->q || t->ndim != 2)
		return 0;
	if ((err = find_tensor(m, st, t, dir, &ti, d)))
		return err;
	if (ti->dtype != TK_DT_F16 && ti->dtype != TK_DT_BF16)
		return 0;
	if (!(t->q = calloc(1, sizeof(*t->q))))
		return tk_diag_set(d, TK_E_NOMEM, dir, -1, "out of memory");
	err = tk_qweight_half(t->q, ti->dtype == TK_DT_BF16 ? TK_QK_BF16 : TK_QK_F16, ti->data,
			      (int64_t)(t->n / (size_t)cols), cols, t->conv1d, d);
	tk_safetensors_release(ti); /* the file's pages: copied */
	if (err) {
		free(t->q);
		t->q = NULL;
		return err;
	}
	t->trainable = 0;
	m->n_quantized++;
	return 0;
}

/* TK_LOAD_HALF: the linear weights, the embedding and the lm head that
 * the file stores as F16 or BF16 stay so (tk_qweight_half). */
static int load_half(struct tk_model *m, const tk_safetensors_t *st, const char *dir,
		     struct tk_diag *d)
{
	struct tk_model_run *r = m->run;
	int err = 0;

	for (int l = 0; l < m->cfg.n_layer && !err; l++)
		for (int s = 0; s < TK_LIN_N && !err; s++) {
			const struct tk_lin *L = &r->lin[l][s];
			if (L->tw >= 0 && !L->row0)
				err = hold_half(m, st, &m->tensors[L->tw], L->in, dir, d);
		}
	if (!err)
		err = hold_half(m, st, tk_model_tensor_at(m, r->emb), m->cfg.hidden, dir, d);
	if (!err && r->head != r->emb)
		err = hold_half(m, st, tk_model_tensor_at(m, r->head), m->cfg.hidden, dir, d);
	return err;
}

/* What the file says of the config beside it, as from_pretrained reads
 * them: GPT-2's name prefix ("transformer.", or "" for a checkpoint saved
 * from GPT2Model, as the original gpt2 one), returned; and a config that
 * ties the lm head to the embedding over a file that holds both with
 * different values is not tied (transformers warns that the config is
 * wrong and uses the file's lm_head.weight).  Equal bytes (a torch .bin
 * converted, say) stay tied. */
static const char *as_file(struct tk_model_config *c, const tk_safetensors_t *st)
{
	const char *pre = "transformer.";
	char en[64];
	const struct tk_tensor_info *e, *h;
	if (c->arch == TK_ARCH_GPT2 && !tk_safetensors_find(st, "transformer.wte.weight") &&
	    tk_safetensors_find(st, "wte.weight"))
		pre = "";
	snprintf(en, sizeof(en), c->arch == TK_ARCH_GPT2 ? "%swte.weight" : "%smodel.embed_tokens.weight",
		 c->arch == TK_ARCH_GPT2 ? pre : "");
	if (!c->tie_embeddings || !(h = tk_safetensors_find(st, "lm_head.weight")) ||
	    !(e = tk_safetensors_find(st, en)))
		return pre;
	int same = e->dtype == h->dtype && e->ndim == h->ndim && e->nbytes == h->nbytes;
	for (int i = 0; same && i < e->ndim; i++)
		same = e->shape[i] == h->shape[i];
	if (!same || memcmp(e->data, h->data, e->nbytes))
		c->tie_embeddings = 0;
	return pre;
}

int tk_model_load(struct tk_model *m, const char *dir, struct tk_backend *be,
		  struct tk_diag *d)
{
	return tk_model_load_ex(m, dir, be, 0, d);
}

int tk_model_load_ex(struct tk_model *m, const char *dir, struct tk_backend *be, unsigned flags,
		     struct tk_diag *d)
{
	struct tk_model_config c;
	struct tk_bnb_config q;
	tk_safetensors_t *st = NULL;
	const char *pre;
	float *tmp = NULL;
	size_t maxn = 0;
	int err, i;

	memset(m, 0, sizeof(*m));
	err = tk_config_load(&c, dir, d);
	if (err)
		return err;
	err = tk_bnb_config_read(dir, &q, d);
	if (err)
		return err;
	err = tk_safetensors_open(&st, dir, d);
	if (err)
		return err;
	pre = as_file(&c, st);
	/* half weights on the CPU backend only: the CUDA backend's kernels
	 * take 4-bit and int8 weights */
	if (strcmp(be->i->name, "cpu"))
		flags &= ~(unsigned)(TK_LOAD_HALF | TK_LOAD_ABSMAX_F32);
	err = model_make(m, &c, be, pre, !q.bits && !(flags & TK_LOAD_HALF), d);
	if (err) {
		if (d && !d->path[0])
			snprintf(d->path, sizeof(d->path), "%s", dir);
		goto out;
	}
	if ((q.bits && (err = load_quantized(m, st, dir, d))) ||
	    ((flags & TK_LOAD_HALF) && (err = load_half(m, st, dir, d))))
		goto out;
	for (i = 0; i < m->n_tensors && (flags & TK_LOAD_ABSMAX_F32); i++)
		if (m->tensors[i].q && (err = tk_qweight_flatten_absmax(m->tensors[i].q))) {
			tk_diag_set(d, err, dir, -1, "%s: %s", m->tensors[i].name,
				    err == TK_E_NOMEM ? "out of memory" : tk_strerror(err));
			goto out;
		}
	if ((q.bits || (flags & TK_LOAD_HALF)) &&
	    ((err = alloc_compact(m, dir, d)) || (err = qweights_to_backend(m, d))))
		goto out;
	for (i = 0; i < m->n_tensors; i++)
		if (m->tensors[i].conv1d && !m->tensors[i].q && m->tensors[i].n > maxn)
			maxn = m->tensors[i].n;
	if (maxn && !(tmp = tk_mallocn(maxn, sizeof(float)))) {
		err = tk_diag_set(d, TK_E_NOMEM, dir, -1, "out of memory");
		goto out;
	}
	for (i = 0; i < m->n_tensors && !err; i++)
		if (!m->tensors[i].q)
			err = load_tensor(m, st, &m->tensors[i], tmp, dir, d);
	/* other tensors (attn.bias buffers, inv_freq, a tied lm_head) are not
	 * looked at, as transformers ignores them */
out:
	free(tmp);
	tk_safetensors_close(st);
	if (err)
		tk_model_free(m);
	return err;
}

const struct tk_model_tensor *tk_model_embedding(const struct tk_model *m)
{
	return tk_model_tensor_at(m, m->run->emb);
}

int tk_model_check_dir(const char *dir, struct tk_diag *d)
{
	struct tk_model_config c;
	struct tk_model m;
	tk_safetensors_t *st = NULL;
	const struct tk_tensor_info *ti;
	int err = tk_config_load(&c, dir, d);

	if (err || (err = tk_safetensors_open(&st, dir, d)))
		return err;
	err = model_make(&m, &c, NULL, as_file(&c, st), 0, d);
	if (err && d && !d->path[0])
		snprintf(d->path, sizeof(d->path), "%s", dir);
	for (int i = 0; !err && i < m.n_tensors; i++)
		err = find_tensor(&m, st, &m.tensors[i], dir, &ti, d);
	tk_model_free(&m); /* model_make leaves it freed or whole */
	tk_safetensors_close(st);
	return err;
}

/* Replaces the quantized tensors (half ones only when half_only) by their
 * fp32 values in a new arena: laid out as the virtual layout when none
 * stays quantized, else compactly (alloc_compact's order). */
static int unhold(struct tk_model *m, int half_only, struct tk_diag *d)
{
	int err = 0, stay = 0;
	size_t n = 0;
	float *p;

	for (int i = 0; i < m->n_tensors; i++)
		stay += m->tensors[i].q && half_only && !tk_qkind_half(m->tensors[i].q->kind);
	if (stay == m->n_quantized)
		return 0;
	if (!stay) {
		const struct tk_model_tensor *last = &m->tensors[m->n_tensors - 1];
		n = last->voff + (last->n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
	}
	for (int i = 0; i < m->n_tensors && stay; i++) {
		const struct tk_model_tensor *t = &m->tensors[i];
		if (!t->q || tk_qkind_half(t->q->kind))
			n += (t->n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
	}
	p = tk_backend_alloc(m->be, (n ? n : 1) * sizeof(float));
	if (!p)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1,
				   "out of memory for the dequantized model (%zu MiB)",
				   n * sizeof(float) >> 20);
	memset(p, 0, (n ? n : 1) * sizeof(float));
	for (size_t i = 0, off = 0; i < (size_t)m->n_tensors && !err; i++) {
		struct tk_model_tensor *t = &m->tensors[i];
		size_t at = stay ? off : t->voff;
		if (t->q && half_only && !tk_qkind_half(t->q->kind))
			continue; /* stays quantized */
		if (t->q)
			err = tk_qweight_rows(t->q, 0, t->q->rows, p + at, d);
		else
			memcpy(p + at, m->params + t->off, t->n * sizeof(float));
		off += (t->n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
	}
	if (err) {
		tk_backend_free_mem(m->be, p);
		return err;
	}
	for (size_t i = 0, off = 0; i < (size_t)m->n_tensors; i++) {
		struct tk_model_tensor *t = &m->tensors[i];
		if (t->q && half_only && !tk_qkind_half(t->q->kind))
			continue;
		if (t->q) {
			tk_qweight_free(t->q);
			free(t->q);
			t->q = NULL;
			t->trainable = !m->lora;
			m->n_quantized--;
		}
		t->off = stay ? off : t->voff;
		off += (t->n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
	}
	tk_backend_free_mem(m->be, m->params);
	m->params = p;
	m->n_params = n;
	if (m->grads) { /* laid out as the old arena: made again when needed */
		tk_backend_free_mem(m->be, m->grads);
		m->grads = NULL;
	}
	tk_model_params_changed(m);
	return 0;
}

int tk_model_dequantize(struct tk_model *m, struct tk_diag *d)
{
	return m->n_quantized ? unhold(m, 0, d) : 0;
}

int tk_model_widen_half(struct tk_model *m, struct tk_diag *d)
{
	return m->n_quantized ? unhold(m, 1, d) : 0;
}

/* Trainable parameters */

void tk_model_params_changed(struct tk_model *m)
{
	if (!m->run)
		return;
	free(m->run->tp);
	free(m->run->tp_names);
	m->run->tp = NULL;
	m->run->tp_names = NULL;
	m->run->n_tp = 0;
}

#define KEY_LEN 192

/* The shape of adapter i's A (ab 0: [r, in]) or B (ab 1: [out, r]). */
static void lora_shape(const struct tk_lora *l, int i, int ab, int64_t shape[2])
{
	shape[0] = ab ? l->ad[i].out : l->cfg.r;
	shape[1] = ab ? l->cfg.r : l->ad[i].in;
}

int tk_model_trainable(struct tk_model *m, const struct tk_param **out, int *n,
		       struct tk_diag *d)
{
	struct tk_model_run *r = m->run;
	const struct tk_lora *l = m->lora;
	int n_ad = l ? l->n_ad : 0, per = l && l->cfg.use_dora ? 3 : 2, k = 0, err;

	err = tk_model_zero_grad_alloc(m, d);
	if (err)
		return err;
	if (!r->tp) {
		r->tp = calloc((size_t)(per * n_ad + m->n_tensors) + 1, sizeof(*r->tp));
		r->tp_names = calloc((size_t)(per * n_ad) + 1, KEY_LEN);
		if (!r->tp || !r->tp_names) {
			tk_model_params_changed(m);
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		}
		for (int i = 0; i < n_ad; i++)
			for (int ab = 0; ab < per; ab++) {
				const struct tk_lora_adapter *a = &l->ad[i];
				struct tk_param *p = &r->tp[k];
				char *name = r->tp_names + (size_t)k * KEY_LEN;
				size_t off = ab ? a->b_off : a->a_off;
				if (ab == 2) { /* DoRA's magnitude: decays too */
					snprintf(name, KEY_LEN,
						 "base_model.model.%s.lora_magnitude_vector", a->module);
					p->name = name;
					p->p = l->params + a->m_off;
					p->g = l->grads + a->m_off;
					p->ndim = 1;
					p->shape[0] = a->out;
					p->n = (size_t)a->out;
					p->decay = 1;
					k++;
					continue;
				}
				snprintf(name, KEY_LEN, "base_model.model.%s.lora_%c.weight", a->module,
					 ab ? 'B' : 'A');
				p->name = name;
				p->p = l->params + off;
				p->g = l->grads + off;
				p->ndim = 2;
				lora_shape(l, i, ab, p->shape);
				p->n = (size_t)p->shape[0] * (size_t)p->shape[1];
				p->decay = 1; /* every LoRA matrix decays in HF's Trainer */
				k++;
			}
		for (int i = 0; i < m->n_tensors; i++) {
			const struct tk_model_tensor *t = &m->tensors[i];
			struct tk_param *p = &r->tp[k];
			if (!t->trainable)
				continue;
			p->name = t->name;
			p->p = m->params + t->off;
			p->g = m->grads + t->off;
			p->n = t->n;
			p->decay = t->decay;
			p->t = t;
			p->ndim = t->ndim;
			p->shape[0] = t->shape[0];
			p->shape[1] = t->shape[1];
			k++;
		}
		r->n_tp = k;
	}
	*out = r->tp;
	*n = r->n_tp;
	return 0;
}

/* One parameter of name (its key's ending will do: tk_adamw8_eight looks
 * at that) and n elements into both sums of tk_model_opt_floats. */
static void opt_add(size_t *floats, size_t *bytes8, const char *name, size_t n)
{
	*floats += (n + 15) / 16 * 16;
	*bytes8 += tk_adamw8_state_bytes(n, tk_adamw8_eight(name, n));
}

size_t tk_model_opt_floats(const struct tk_model *m, size_t *bytes8)
{
	static const char *const ab_name[2] = { "lora_A.weight", "lora_B.weight" };
	const struct tk_lora *l = m->lora;
	size_t n = 0, b8 = 0;
	int64_t shape[2];

	for (int i = 0; l && i < l->n_ad; i++) {
		for (int ab = 0; ab < 2; ab++) {
			lora_shape(l, i, ab, shape);
			opt_add(&n, &b8, ab_name[ab], (size_t)shape[0] * (size_t)shape[1]);
		}
		if (l->cfg.use_dora) /* DoRA's magnitude [out] */
			opt_add(&n, &b8, "lora_magnitude_vector", (size_t)l->ad[i].out);
	}
	for (int i = 0; i < m->n_tensors; i++)
		if (m->tensors[i].trainable)
			opt_add(&n, &b8, m->tensors[i].name, m->tensors[i].n);
	if (bytes8)
		*bytes8 = b8;
	return n;
}

uint64_t tk_model_count_params(const struct tk_model *m)
{
	uint64_t n = 0;
	const struct tk_lora *l = m->lora;

	for (int i = 0; i < m->n_tensors; i++) {
		n += m->tensors[i].n;
		/* peft trains a copy of each module to save: both count */
		if (l && tk_lora_saves(l, m->tensors[i].name))
			n += m->tensors[i].n;
	}
	for (int i = 0; l && i < l->n_ad; i++)
		n += (uint64_t)l->cfg.r * (uint64_t)(l->ad[i].in + l->ad[i].out) +
		     (l->cfg.use_dora ? (uint64_t)l->ad[i].out : 0);
	return n;
}

/* Saving */

int tk_model_save(const struct tk_model *m, const char *dir, int force, struct tk_diag *d)
{
	return tk_model_save_dtype(m, dir, TK_DT_F32, force, d);
}

/* n floats of src as dtype (F16 or BF16) in a new buffer. */
static void *convert(const float *src, size_t n, enum tk_dtype dt)
{
	uint16_t *h = tk_mallocn(n ? n : 1, sizeof(uint16_t));
	for (size_t i = 0; h && i < n; i++)
		h[i] = dt == TK_DT_F16 ? tk_f32_to_f16(src[i]) : tk_f32_to_bf16(src[i]);
	return h;
}

int tk_model_save_dtype(const struct tk_model *m, const char *dir, enum tk_dtype dtype,
			int force, struct tk_diag *d)
{
	struct tk_model_config c = m->cfg;
	tk_safetensors_writer_t *w = NULL;
	char st_path[PATH_MAX], cfg_path[PATH_MAX];
	void **tmp = NULL;
	float *exp = NULL;
	struct stat sb;
	int err = 0, i;

	if (m->n_quantized)
		return tk_diag_set(d, TK_E_UNSUPPORTED, dir, -1,
				   "the model has quantized weights; dequantize it to save it");
	if (dtype != TK_DT_F32 && dtype != TK_DT_F16 && dtype != TK_DT_BF16)
		return tk_diag_set(d, TK_E_INVAL, dir, -1, "cannot save a model as %s",
				   tk_dtype_name(dtype));
	if (tk_path_join(st_path, sizeof(st_path), dir, "model.safetensors") ||
	    tk_path_join(cfg_path, sizeof(cfg_path), dir, "config.json"))
		return tk_diag_set(d, TK_E_INVAL, dir, -1, "path too long");
	if (!(tmp = calloc((size_t)m->n_tensors, sizeof(*tmp)))) {
		err = tk_diag_set(d, TK_E_NOMEM, dir, -1, "out of memory");
		goto out;
	}
	if (mkdir(dir, 0777) && errno != EEXIST) {
		err = tk_diag_sys(d, dir, "cannot create directory");
		goto out;
	}
	if (!force) {
		const char *p = !stat(st_path, &sb) ? st_path : !stat(cfg_path, &sb) ? cfg_path
										       : NULL;
		if (p) {
			err = tk_diag_set(d, TK_E_EXISTS, p, -1,
					  "already exists (use --force to overwrite)");
			goto out;
		}
	}
	err = tk_safetensors_writer_new(&w);
	if (err) {
		err = tk_diag_set(d, err, dir, -1, "out of memory");
		goto out;
	}
	for (i = 0; i < m->n_tensors && !err; i++) {
		const struct tk_model_tensor *t = &m->tensors[i];
		const void *src = m->params + t->off;
		/* the writer keeps pointers until commit: converted or
		 * transposed tensors each get their own buffer */
		if (t->conv1d) {
			if (!(exp = tk_mallocn(t->n, sizeof(float))))
				goto nomem;
			tk_model_export(m, t, m->params, exp);
			src = tmp[i] = exp;
		}
		if (dtype != TK_DT_F32) {
			void *h = convert(src, t->n, dtype);
			if (!h)
				goto nomem;
			free(tmp[i]);
			src = tmp[i] = h;
		}
		exp = NULL;
		err = tk_safetensors_writer_add(w, t->name, dtype, t->ndim, t->shape, src, d);
		continue;
nomem:
		err = tk_diag_set(d, TK_E_NOMEM, dir, -1, "out of memory");
	}
	free(exp);
	if (!err)
		err = tk_safetensors_writer_metadata(w, "format", "pt");
	if (err) {
		tk_safetensors_writer_free(w);
		goto out;
	}
	err = tk_safetensors_writer_commit(w, st_path, force, d);
	if (err)
		goto out;
	snprintf(c.torch_dtype, sizeof(c.torch_dtype), "%s",
		 dtype == TK_DT_F16 ? "float16" : dtype == TK_DT_BF16 ? "bfloat16" : "float32");
	err = tk_config_save(&c, cfg_path, NULL, force, d);
out:
	if (tmp)
		for (i = 0; i < m->n_tensors; i++)
			free(tmp[i]);
	free(tmp);
	return err;
}

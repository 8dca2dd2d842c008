/* model.c - the decoder's parameters: the tensor table, initialisation,
 * loading from and saving to Hugging Face model directories.
 *
 * The forward and backward passes are in model-run.c.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model-int.h"
#include "safetensors.h"

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
		o->q_w = T2(Q, C, a, "q_proj");
		o->q_b = c->attn_bias ? T1(Q, a, "q_proj") : -1;
		o->k_w = T2(K, C, a, "k_proj");
		o->k_b = c->attn_bias ? T1(K, a, "k_proj") : -1;
		o->v_w = T2(K, C, a, "v_proj");
		o->v_b = c->attn_bias ? T1(K, a, "v_proj") : -1;
		o->o_w = T2(C, Q, a, "o_proj");
		o->o_b = c->attn_out_bias ? T1(C, a, "o_proj") : -1;
		o->fc_w = T2(F, C, m, "gate_proj");
		o->fc_b = c->mlp_bias ? T1(F, m, "gate_proj") : -1;
		o->up_w = T2(F, C, m, "up_proj");
		o->up_b = c->mlp_bias ? T1(F, m, "up_proj") : -1;
		o->dn_w = T2(C, F, m, "down_proj");
		o->dn_b = c->mlp_bias ? T1(C, m, "down_proj") : -1;
#pragma GCC diagnostic pop
#undef T1
#undef T2
		o->ln1_w = add_tensor(tb, 0, 0, C, 0, "model.layers.%d.input_layernorm.weight", l);
		o->ln1_b = nb ? add_tensor(tb, 0, 0, C, 0, "model.layers.%d.input_layernorm.bias",
					   l) : -1;
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

/* Builds the table and the layout and allocates the parameter arena
 * (zeroed).  gpt2_prefix: "transformer." or "" (GPT-2 only). */
static int model_make(struct tk_model *m, const struct tk_model_config *c, struct tk_backend *be,
		      const char *gpt2_prefix, struct tk_diag *d)
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
	m->n_params = tb.off;
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

	if (r) {
		if (r->mem)
			tk_backend_free_mem(m->be, r->mem);
		free(r->la);
		free(r->lo);
		free(r);
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

int tk_model_init(struct tk_model *m, const struct tk_model_config *c, uint64_t seed,
		  struct tk_backend *be, struct tk_diag *d)
{
	struct rng g = { { { 0 } }, 0, 0 };
	double std = c->initializer_range > 0 ? c->initializer_range : 0.02;
	int err, i;

	err = model_make(m, c, be, "transformer.", d);
	if (err)
		return err;
	tk_rng_seed(&g.r, seed);
	/* tensors in table order, elements in the order of the disk layout */
	for (i = 0; i < m->n_tensors; i++) {
		const struct tk_model_tensor *t = &m->tensors[i];
		float *p = m->params + t->off;
		size_t j, rows = (size_t)t->shape[0], cols = t->ndim == 2 ? (size_t)t->shape[1] : 1;
		double s = std;

		if (t->ndim == 1) { /* biases 0, norm weights 1 */
			float v = ends_with(t->name, ".bias") ? 0.0f : 1.0f;
			for (j = 0; j < t->n; j++)
				p[j] = v;
			continue;
		}
		if (c->arch == TK_ARCH_GPT2 && ends_with(t->name, "c_proj.weight"))
			s = std / sqrt(2.0 * c->n_layer);
		for (j = 0; j < t->n; j++) {
			float v = (float)(s * rng_normal(&g));
			size_t r = j / cols, col = j % cols;
			/* disk [rows, cols]; a Conv1D's arena is [cols, rows] */
			p[t->conv1d ? col * rows + r : j] = v;
		}
	}
	if (c->arch != TK_ARCH_GPT2 && c->pad_id >= 0 && c->pad_id < c->vocab_size)
		memset(m->params + m->run->emb + (size_t)c->pad_id * c->hidden, 0,
		       (size_t)c->hidden * sizeof(float));
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

static int load_tensor(struct tk_model *m, const tk_st_t *st, const struct tk_model_tensor *t,
		       float *tmp, const char *dir, struct tk_diag *d)
{
	const struct tk_tensor_info *ti = tk_st_find(st, t->name);
	char want[64], got[64];
	int i, err, same = 1;

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
	if (!t->conv1d)
		return tk_st_to_f32(ti, m->params + t->off, d);
	err = tk_st_to_f32(ti, tmp, d);
	if (!err)
		tk_model_import(m, t, tmp, m->params);
	return err;
}

int tk_model_load(struct tk_model *m, const char *dir, struct tk_backend *be,
		  struct tk_diag *d)
{
	struct tk_model_config c;
	tk_st_t *st = NULL;
	const char *pre = "transformer.";
	float *tmp = NULL;
	size_t maxn = 0;
	int err, i;

	memset(m, 0, sizeof(*m));
	err = tk_config_load(&c, dir, d);
	if (err)
		return err;
	err = tk_st_open(&st, dir, d);
	if (err)
		return err;
	if (c.arch == TK_ARCH_GPT2 && !tk_st_find(st, "transformer.wte.weight") &&
	    tk_st_find(st, "wte.weight"))
		pre = ""; /* saved from GPT2Model, as the original gpt2 checkpoint */
	err = model_make(m, &c, be, pre, d);
	if (err) {
		if (d && !d->path[0])
			snprintf(d->path, sizeof(d->path), "%s", dir);
		goto out;
	}
	for (i = 0; i < m->n_tensors; i++)
		if (m->tensors[i].conv1d && m->tensors[i].n > maxn)
			maxn = m->tensors[i].n;
	if (maxn && !(tmp = tk_mallocn(maxn, sizeof(float)))) {
		err = tk_diag_set(d, TK_E_NOMEM, dir, -1, "out of memory");
		goto out;
	}
	for (i = 0; i < m->n_tensors && !err; i++)
		err = load_tensor(m, st, &m->tensors[i], tmp, dir, d);
	/* other tensors (attn.bias buffers, inv_freq, a tied lm_head) are not
	 * looked at, as transformers ignores them */
out:
	free(tmp);
	tk_st_close(st);
	if (err)
		tk_model_free(m);
	return err;
}

/* Saving */

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

int tk_model_save(const struct tk_model *m, const char *dir, int force, struct tk_diag *d)
{
	struct tk_model_config c = m->cfg;
	tk_st_writer_t *w = NULL;
	char *st_path = join(dir, "model.safetensors"), *cfg_path = join(dir, "config.json");
	float **tmp = NULL;
	struct stat sb;
	int err = 0, i;

	if (!st_path || !cfg_path || !(tmp = calloc((size_t)m->n_tensors, sizeof(*tmp)))) {
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
	err = tk_st_writer_new(&w);
	if (err) {
		err = tk_diag_set(d, err, dir, -1, "out of memory");
		goto out;
	}
	for (i = 0; i < m->n_tensors && !err; i++) {
		const struct tk_model_tensor *t = &m->tensors[i];
		const float *src = m->params + t->off;
		if (t->conv1d) {
			tmp[i] = tk_mallocn(t->n, sizeof(float));
			if (!tmp[i]) {
				err = tk_diag_set(d, TK_E_NOMEM, dir, -1, "out of memory");
				break;
			}
			tk_model_export(m, t, m->params, tmp[i]);
			src = tmp[i];
		}
		err = tk_st_writer_add(w, t->name, TK_DT_F32, t->ndim, t->shape, src, d);
	}
	if (!err)
		err = tk_st_writer_metadata(w, "format", "pt");
	if (err) {
		tk_st_writer_free(w);
		goto out;
	}
	err = tk_st_writer_commit(w, st_path, force, d);
	if (err)
		goto out;
	snprintf(c.torch_dtype, sizeof(c.torch_dtype), "float32");
	err = tk_config_save(&c, cfg_path, NULL, force, d);
out:
	if (tmp)
		for (i = 0; i < m->n_tensors; i++)
			free(tmp[i]);
	free(tmp);
	free(st_path);
	free(cfg_path);
	return err;
}

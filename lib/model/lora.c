/* lora.c - see lora.h.  The adapters' forward and backward arithmetic is
 * here too, called from the model's linear layers (model-linear.c). */
/* Without trapping math GCC vectorizes the dropout loop's AVX2 copy (as in
 * backend-cpu.c); nothing here reads floating-point exception flags. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "compute/cpu.h"
#include "model/lora-int.h"

#define ALIGN_FLOATS 16

void tk_lora_config_init(struct tk_lora_config *c)
{
	memset(c, 0, sizeof(*c));
	c->r = 8;
	c->alpha = 8;
}

const struct tk_opt_choice tk_lora_biases[] = {
	{ "none", TK_LORA_BIAS_NONE },
	{ "all", TK_LORA_BIAS_ALL },
	{ "lora_only", TK_LORA_BIAS_LORA_ONLY },
	{ NULL, 0 },
};

int tk_lora_bias_parse(const char *s, enum tk_lora_bias *b)
{
	for (const struct tk_opt_choice *c = tk_lora_biases; c->word; c++)
		if (!strcmp(s, c->word)) {
			*b = (enum tk_lora_bias)c->value;
			return 0;
		}
	return TK_E_INVAL;
}

const char *tk_lora_bias_name(enum tk_lora_bias b)
{
	const char *w = tk_options_choice_word(tk_lora_biases, (int)b);
	return w ? w : "none";
}

/* Module path of a tensor name: "a.b.weight" -> "a.b" into buf. */
static void module_of(const char *tensor, char *buf, size_t n)
{
	const char *dot = strrchr(tensor, '.');
	size_t k = dot ? (size_t)(dot - tensor) : strlen(tensor);

	if (k >= n)
		k = n - 1;
	memcpy(buf, tensor, k);
	buf[k] = 0;
}

/* peft's list matching: the whole module path, or a suffix after a '.'. */
static int name_matches(const char *module, const char *key)
{
	size_t n = strlen(module), k = strlen(key);

	if (!strcmp(module, key))
		return 1;
	return n > k && module[n - k - 1] == '.' && !strcmp(module + n - k, key);
}

/* peft's modules_to_save matching (_set_trainable: key.endswith(name)):
 * any suffix, so "norm" takes input_layernorm as well as model.norm. */
static int save_matches(const char *module, const char *key)
{
	size_t n = strlen(module), k = strlen(key);

	return n >= k && !strcmp(module + n - k, key);
}

int tk_lora_saves(const struct tk_lora *l, const char *tensor_name)
{
	char mod[128];

	module_of(tensor_name, mod, sizeof(mod));
	for (int k = 0; l && k < l->cfg.n_modules_to_save; k++)
		if (save_matches(mod, l->cfg.modules_to_save[k]))
			return 1;
	return 0;
}

const struct tk_lora_adapter *tk_lora_find(const struct tk_lora *l, const char *module)
{
	for (int i = 0; l && i < l->n_ad; i++)
		if (!strcmp(l->ad[i].module, module))
			return &l->ad[i];
	return NULL;
}

/* A linear module of m: one per weight tensor (GPT-2's fused c_attn is one
 * module, used by the Q, K and V slots). */
struct lin_module {
	int tw;              /* weight tensor */
	int layer;
	int in, out;         /* whole module */
};

static int list_linear(const struct tk_model *m, struct lin_module *out, int cap)
{
	const struct tk_model_run *r = m->run;
	int n = 0;

	for (int l = 0; l < m->cfg.n_layer; l++)
		for (int s = 0; s < TK_LIN_N; s++) {
			const struct tk_lin *L = &r->lin[l][s];
			const struct tk_model_tensor *t;
			if (L->tw < 0 || L->row0 != 0)
				continue; /* absent, or a later slice of c_attn */
			t = &m->tensors[L->tw];
			if (n < cap) {
				out[n].tw = L->tw;
				out[n].layer = l;
				out[n].in = L->in;
				/* rows of the whole tensor ([out, in] in the arena) */
				out[n].out = (int)(t->n / (size_t)L->in);
			}
			n++;
		}
	return n;
}

/* "q_proj, k_proj, ..." : the distinct last components of the linear
 * modules (GPT-2's two c_proj named by their parent), for messages. */
static void linear_names(const struct tk_model *m, const struct lin_module *mods, int n,
			 char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = 0;
	for (int i = 0; i < n; i++) {
		char mod[128], key[160], probe[200];
		const char *last;
		module_of(m->tensors[mods[i].tw].name, mod, sizeof(mod));
		last = strrchr(mod, '.');
		last = last ? last + 1 : mod;
		if (m->cfg.arch == TK_ARCH_GPT2 && !strcmp(last, "c_proj"))
			last = strstr(mod, ".attn.") ? "attn.c_proj" : "mlp.c_proj";
		snprintf(key, sizeof(key), "%s", last);
		snprintf(probe, sizeof(probe), "%s, ", key);
		if (!strncmp(buf, probe, strlen(probe)) ||
		    (snprintf(probe, sizeof(probe), ", %s, ", key), strstr(buf, probe)))
			continue;
		if (len + 2 < size)
			len += (size_t)snprintf(buf + len, size - len, "%s, ", key);
	}
	if (len >= 2 && len < size)
		buf[len - 2] = 0; /* the last ", " */
}

/* peft's default target modules for the model type; peft has none for
 * phi3 and refuses a LoraConfig without target_modules, and so does tk. */
static int default_targets(const struct tk_model *m, struct tk_lora_config *c,
			   struct tk_diag *d)
{
	if (m->cfg.arch == TK_ARCH_GPT2) {
		snprintf(c->targets[0], TK_LORA_NAME, "c_attn");
		c->n_targets = 1;
	} else if (m->cfg.fused) {
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "peft has no default target modules for %s: name them "
				   "(qkv_proj, o_proj, gate_up_proj, down_proj, or all-linear)",
				   m->cfg.model_type);
	} else {
		snprintf(c->targets[0], TK_LORA_NAME, "q_proj");
		snprintf(c->targets[1], TK_LORA_NAME, "v_proj");
		c->n_targets = 2;
	}
	return 0;
}

static int check_config(const struct tk_lora_config *c, struct tk_diag *d)
{
	if (c->r <= 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "lora r must be positive, not %d",
				   c->r);
	if (!(c->alpha > 0) || !isfinite(c->alpha))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "lora alpha must be positive, not %g", c->alpha);
	if (!(c->dropout >= 0 && c->dropout < 1))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "lora dropout must be in [0, 1), not %g", c->dropout);
	if (c->n_targets < 0 || c->n_targets > TK_LORA_MAX_TARGETS ||
	    c->n_modules_to_save < 0 || c->n_modules_to_save > TK_LORA_MAX_TARGETS)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "too many lora modules");
	return 0;
}

/* Marks trainable base tensors per c (modules_to_save, biases); every other
 * base tensor is frozen.  TK_E_INVAL for a module to save that matches no
 * tensor. */
static int mark_trainable(struct tk_model *m, const struct tk_lora_config *c,
			  const unsigned char *adapted, struct tk_diag *d)
{
	int i, k;

	for (i = 0; i < m->n_tensors; i++)
		m->tensors[i].trainable = 0;
	for (k = 0; k < c->n_modules_to_save; k++) {
		int hit = 0;
		for (i = 0; i < m->n_tensors; i++) {
			char mod[128];
			module_of(m->tensors[i].name, mod, sizeof(mod));
			if (!save_matches(mod, c->modules_to_save[k]))
				continue;
			if (m->tensors[i].q)
				return tk_diag_set(d, TK_E_INVAL, NULL, -1,
						   "module to save %s is quantized; only "
						   "floating-point modules can be trained in full",
						   c->modules_to_save[k]);
			m->tensors[i].trainable = 1;
			hit = 1;
		}
		if (!hit)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "module to save %s is not in the model%s",
					   c->modules_to_save[k],
					   !strcmp(c->modules_to_save[k], "lm_head") &&
					   m->cfg.tie_embeddings ? " (its lm_head is tied to the "
					   "token embedding: save the embedding instead, with "
					   "ensure_weight_tying)" : "");
	}
	if (m->cfg.tie_embeddings && !c->ensure_weight_tying && tk_model_embedding(m)->trainable)
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "modules_to_save: the lm_head is tied to the token embedding "
				   "%s; with ensure_weight_tying false peft trains a copy of it for "
				   "the input only and keeps the lm_head on the original weights, "
				   "which tk does not do (ensure_weight_tying true, tk-train "
				   "--ensure-weight-tying, trains one embedding for both)",
				   tk_model_embedding(m)->name);
	for (i = 0; i < m->n_tensors; i++) {
		struct tk_model_tensor *t = &m->tensors[i];
		size_t n = strlen(t->name);
		if (n < 5 || strcmp(t->name + n - 5, ".bias"))
			continue;
		if (c->bias == TK_LORA_BIAS_ALL || (c->bias == TK_LORA_BIAS_LORA_ONLY && adapted[i]))
			t->trainable = 1;
	}
	return 0;
}

/* Frees everything but leaves the base as it is. */
void tk_lora_free(struct tk_model *m)
{
	struct tk_lora *l = m->lora;

	if (!l)
		return;
	if (l->run) {
		tk_dora_free(m);
		tk_backend_free_mem(m->be, l->run->u);
		tk_backend_free_mem(m->be, l->run->du);
		tk_backend_free_mem(m->be, l->run->xd);
		tk_backend_free_mem(m->be, l->run->tmp);
		tk_backend_free_mem(m->be, l->run->iu);
		free(l->run);
	}
	if (l->params)
		tk_backend_free_mem(m->be, l->params);
	if (l->grads)
		tk_backend_free_mem(m->be, l->grads);
	free(l->ad);
	free(l);
	m->lora = NULL;
	for (int s = 0; m->run && s < m->cfg.n_layer; s++)
		for (int k = 0; k < TK_LIN_N; k++)
			m->run->lin[s][k].ad = -1;
}

void tk_lora_detach(struct tk_model *m)
{
	tk_lora_free(m);
	for (int i = 0; i < m->n_tensors; i++)
		m->tensors[i].trainable = !m->tensors[i].q;
	tk_model_params_changed(m);
}

int tk_lora_attach(struct tk_model *m, const struct tk_lora_config *cfg, uint64_t seed,
		   struct tk_diag *d)
{
	struct tk_lora_config c = *cfg;
	struct lin_module *mods = NULL;
	unsigned char *adapted = NULL, *hit = NULL;
	struct tk_lora *l = NULL;
	struct tk_rng rng;
	int n_mods, i, k, err = 0, all_linear;
	size_t off = 0;

	if (m->lora)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "the model has adapters already");
	CHECK(check_config(&c, d));
	if (c.use_dora && strcmp(m->be->i->name, "cpu"))
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "DoRA (use_dora) runs on the CPU backend only, not on %s "
				   "yet (--device cpu)",
				   m->be->i->name);
	if (!c.n_targets)
		CHECK(default_targets(m, &c, d));
	c.fan_in_fan_out = m->cfg.arch == TK_ARCH_GPT2;
	all_linear = c.n_targets == 1 && !strcmp(c.targets[0], "all-linear");

	n_mods = list_linear(m, NULL, 0);
	mods = calloc((size_t)n_mods + 1, sizeof(*mods));
	adapted = calloc((size_t)m->n_tensors + 1, 1);
	hit = calloc(TK_LORA_MAX_TARGETS, 1);
	l = calloc(1, sizeof(*l));
	if (!mods || !adapted || !hit || !l || !(l->run = calloc(1, sizeof(*l->run))) ||
	    !(l->ad = calloc((size_t)n_mods + 1, sizeof(*l->ad)))) {
		err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		goto out;
	}
	list_linear(m, mods, n_mods);
	for (i = 0; i < n_mods; i++) {
		char mod[128];
		int match = all_linear;
		module_of(m->tensors[mods[i].tw].name, mod, sizeof(mod));
		for (k = 0; !all_linear && k < c.n_targets; k++)
			if (name_matches(mod, c.targets[k]))
				match = hit[k] = 1;
		if (!match)
			continue;
		struct tk_lora_adapter *a = &l->ad[l->n_ad++];
		snprintf(a->module, sizeof(a->module), "%s", mod);
		a->layer = mods[i].layer;
		a->in = mods[i].in;
		a->out = mods[i].out;
		a->base = &m->tensors[mods[i].tw];
		a->a_off = off;
		off += ((size_t)c.r * (size_t)a->in + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
		a->b_off = off;
		off += ((size_t)a->out * (size_t)c.r + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
		if (c.use_dora) {
			a->m_off = off;
			off += ((size_t)a->out + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
		}
		adapted[mods[i].tw] = 1;
		/* the module's bias: "lora_only" trains it */
		for (int s = 0; s < TK_LIN_N; s++) {
			const struct tk_lin *L = &m->run->lin[a->layer][s];
			if (L->tw == mods[i].tw && L->tb >= 0)
				adapted[L->tb] = 1;
		}
	}
	for (k = 0; !all_linear && k < c.n_targets; k++) {
		if (hit[k])
			continue;
		char names[512];
		int other = 0;
		for (i = 0; i < m->n_tensors; i++) {
			char mod[128];
			module_of(m->tensors[i].name, mod, sizeof(mod));
			other |= name_matches(mod, c.targets[k]);
		}
		linear_names(m, mods, n_mods, names, sizeof(names));
		err = tk_diag_set(d, TK_E_INVAL, NULL, -1,
				  "target module %s %s; the linear modules of this %s model are: "
				  "%s (or all-linear)", c.targets[k],
				  other ? "is not a linear layer (tk puts LoRA on linear layers only)"
					: "is not in the model", m->cfg.model_type, names);
		goto out;
	}
	l->n_params = off;
	l->params = tk_backend_alloc(m->be, (off ? off : 1) * sizeof(float));
	if (!l->params) {
		err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory for the adapters");
		goto out;
	}
	memset(l->params, 0, (off ? off : 1) * sizeof(float));
	/* A: kaiming_uniform_(a=sqrt(5)), bound sqrt(6 / ((1 + 5) * in)) =
	 * 1/sqrt(in); B: zero */
	tk_rng_seed(&rng, seed);
	for (i = 0; i < l->n_ad; i++) {
		const struct tk_lora_adapter *a = &l->ad[i];
		double bound = 1.0 / sqrt((double)a->in);
		float *A = l->params + a->a_off;
		for (size_t j = 0; j < (size_t)c.r * (size_t)a->in; j++)
			A[j] = (float)((2.0 * tk_rng_double(&rng) - 1.0) * bound);
	}
	l->cfg = c;
	l->scale = (float)(c.use_rslora ? c.alpha / sqrt((double)c.r) : c.alpha / c.r);
	l->seed = seed;
	err = mark_trainable(m, &c, adapted, d);
	if (err)
		goto out;
	m->lora = l;
	l = NULL;
	/* point the slots at their adapters */
	for (i = 0; i < m->lora->n_ad; i++) {
		const struct tk_lora_adapter *a = &m->lora->ad[i];
		for (int s = 0; s < TK_LIN_N; s++) {
			struct tk_lin *L = &m->run->lin[a->layer][s];
			if (L->tw >= 0 && &m->tensors[L->tw] == a->base)
				L->ad = i;
		}
	}
	if (c.use_dora && (err = tk_dora_init(m, d))) {
		tk_lora_detach(m);
		goto out;
	}
	tk_model_params_changed(m);
out:
	if (l) {
		struct tk_lora *keep = m->lora;
		m->lora = l;
		tk_lora_free(m);
		m->lora = keep;
		if (!keep)
			for (i = 0; i < m->n_tensors; i++)
				m->tensors[i].trainable = !m->tensors[i].q;
	}
	free(mods);
	free(adapted);
	free(hit);
	return err;
}

int tk_lora_merge(struct tk_model *m, double weight, struct tk_diag *d)
{
	struct tk_lora *l = m->lora;

	if (!l)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "the model has no adapter to merge");
	if (l->cfg.use_dora && weight != 1)
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "a DoRA adapter merges with weight 1 only, not %g", weight);
	CHECK(tk_model_dequantize(m, d));
	for (int i = 0; i < l->n_ad; i++) {
		const struct tk_lora_adapter *a = &l->ad[i];
		float *W = m->params + a->base->off; /* arena [out, in] */
		if (l->cfg.use_dora) {
			CHECK(tk_dora_merge(m, a, W));
			continue;
		}
		CHECK(tk_matmul(m->be, 0, 0, a->out, a->in, l->cfg.r, (float)(weight * l->scale),
				l->params + a->b_off, l->cfg.r, l->params + a->a_off, a->in, 1.0f,
				W, a->in));
	}
	tk_lora_free(m);
	for (int i = 0; i < m->n_tensors; i++)
		m->tensors[i].trainable = 1;
	tk_model_params_changed(m);
	return 0;
}

/* Training scratch */

/* lora-int.h */
void tk_lora_scratch_size(const struct tk_lora *l, size_t rows, struct tk_lora_scratch *s)
{
	size_t in = 1;
	for (int i = 0; i < l->n_ad; i++)
		if ((size_t)l->ad[i].in > in)
			in = (size_t)l->ad[i].in;
	s->u = (size_t)l->n_ad * rows * (size_t)l->cfg.r;
	s->du = rows * (size_t)l->cfg.r;
	s->xd = l->cfg.dropout > 0 ? rows * in : 0;
	s->dora = 0;
	for (int i = 0; l->cfg.use_dora && i < l->n_ad; i++)
		if (2 * rows * (size_t)l->ad[i].out > s->dora)
			s->dora = 2 * rows * (size_t)l->ad[i].out;
}

int tk_lora_reserve(struct tk_model *m, int rows, struct tk_diag *d)
{
	struct tk_lora *l = m->lora;
	struct tk_lora_run *r;
	struct tk_lora_scratch s;

	if (!l)
		return 0;
	r = l->run;
	tk_lora_scratch_size(l, (size_t)rows, &s);
	if (s.u > r->u_cap) {
		tk_backend_free_mem(m->be, r->u);
		r->u = tk_backend_alloc(m->be, s.u * sizeof(float));
		r->u_cap = r->u ? s.u : 0;
		if (!r->u)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory for the adapters");
	}
	r->rows = rows;
	if ((size_t)rows > r->s_rows) {
		tk_backend_free_mem(m->be, r->du);
		tk_backend_free_mem(m->be, r->xd);
		tk_backend_free_mem(m->be, r->tmp);
		r->du = tk_backend_alloc(m->be, s.du * sizeof(float));
		r->xd = s.xd ? tk_backend_alloc(m->be, s.xd * sizeof(float)) : NULL;
		r->tmp = s.xd ? tk_backend_alloc(m->be, s.xd * sizeof(float)) : NULL;
		if (!r->du || (s.xd && (!r->xd || !r->tmp))) {
			r->s_rows = 0;
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory for the adapters");
		}
		r->s_rows = (size_t)rows;
	}
	return 0;
}

float *tk_lora_infer_u(struct tk_model *m, int rows)
{
	struct tk_lora_run *r = m->lora->run;
	size_t need = (size_t)rows * (size_t)m->lora->cfg.r;

	if (need > r->iu_cap) {
		tk_backend_free_mem(m->be, r->iu);
		r->iu = tk_backend_alloc(m->be, need * sizeof(float));
		r->iu_cap = r->iu ? need : 0;
	}
	return r->iu;
}

int tk_lora_grads(struct tk_model *m, struct tk_diag *d)
{
	struct tk_lora *l = m->lora;

	if (!l || l->grads)
		return 0;
	l->grads = tk_backend_alloc(m->be, (l->n_params ? l->n_params : 1) * sizeof(float));
	if (!l->grads)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1,
				   "out of memory for the adapters' gradients");
	memset(l->grads, 0, (l->n_params ? l->n_params : 1) * sizeof(float));
	return 0;
}

/* Elements [j0, j1) of tk_lora_dropout, in copies that GCC vectorizes for
 * AVX2 (64-bit multiplies in 32-bit pieces: 2.1 against 3.0 ns an element
 * on the 2-core Zen 3 here) and AVX-512 (native ones); the same hash, the
 * same bits. */
#define DROP_BODY                                                                       \
	{                                                                               \
		_Pragma("omp simd")                                                     \
		for (size_t j = j0; j < j1; j++)                                        \
			xd[j] = tk_mix64(key + (uint64_t)j * TK_SPLITMIX64_GAMMA) >= thr \
					? x[j] * s                                      \
					: 0.0f;                                         \
	}
static void drop_range(const float *x, float *xd, size_t j0, size_t j1, uint64_t key,
		       uint64_t thr, float s) DROP_BODY
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static void drop_range_avx2(const float *x, float *xd, size_t j0,
							     size_t j1, uint64_t key,
							     uint64_t thr, float s) DROP_BODY
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) static void
drop_range_avx512(const float *x, float *xd, size_t j0, size_t j1, uint64_t key, uint64_t thr,
		  float s) DROP_BODY
#endif

/* Dropout: element j of adapter ad's input in forward number step is kept
 * when a hash of (seed, step, ad, j) is at least p.  Writes
 * xd = x * keep / (1 - p); x == xd (in place) is fine. */
void tk_lora_dropout(const struct tk_lora *l, int ad, const float *x, float *xd, size_t n)
{
	uint64_t key = tk_mix64(tk_mix64(tk_mix64(l->seed) ^ l->step) ^ (uint64_t)(ad + 1));
	double p = l->cfg.dropout;
	float s = (float)(1.0 / (1.0 - p));
	uint64_t thr = (uint64_t)(p * 18446744073709551616.0);
	const size_t chunk = 4096;
	enum tk_cpu_isa isa = tk_cpu_isa();

	#pragma omp parallel for schedule(static)
	for (size_t j0 = 0; j0 < n; j0 += chunk) {
		size_t j1 = n - j0 < chunk ? n : j0 + chunk;
#if defined(__x86_64__) && defined(__GNUC__)
		if (isa >= TK_CPU_ISA_AVX512)
			drop_range_avx512(x, xd, j0, j1, key, thr, s);
		else if (isa >= TK_CPU_ISA_AVX2)
			drop_range_avx2(x, xd, j0, j1, key, thr, s);
		else
#endif
			drop_range(x, xd, j0, j1, key, thr, s);
	}
	(void)isa;
}

int tk_lora_lin_fwd(struct tk_model *m, const struct tk_lin *L, int l, float *y, const float *x,
		    int rows, float *u_scratch, float beta)
{
	struct tk_lora *lo = m->lora;
	const struct tk_lora_adapter *a = &lo->ad[L->ad];
	int r = lo->cfg.r;
	float *u = u_scratch ? u_scratch : lo->run->u + (size_t)L->ad * (size_t)rows * (size_t)r;
	const float *B = lo->params + a->b_off + (size_t)L->row0 * (size_t)r;

	(void)l;
	if (!u_scratch && rows > lo->run->rows)
		return TK_E_INVAL;
	if (L->row0 == 0) { /* GPT-2's K and V slices reuse Q's u */
		const float *xin = x;
		if (lo->training && lo->cfg.dropout > 0 && !u_scratch) {
			tk_lora_dropout(lo, L->ad, x, lo->run->xd, (size_t)rows * (size_t)a->in);
			xin = lo->run->xd;
		}
		CHECK(tk_matmul(m->be, 0, 1, rows, r, a->in, 1.0f, xin, a->in,
				lo->params + a->a_off, a->in, 0.0f, u, r));
	}
	if (lo->cfg.use_dora)
		return beta == 1.0f ? tk_dora_lin_fwd(m, L, y, x, rows, u, u_scratch != NULL)
				    : TK_E_INVAL;
	return tk_matmul(m->be, 0, 1, rows, L->out, r, lo->scale, u, r, B, r, beta, y, L->out);
}

int tk_lora_lin_bwd(struct tk_model *m, const struct tk_lin *L, int l, float *dx, float dx_beta,
		    const float *dy, const float *x, int rows)
{
	struct tk_lora *lo = m->lora;
	const struct tk_lora_adapter *a = &lo->ad[L->ad];
	struct tk_lora_run *rn = lo->run;
	int r = lo->cfg.r, drop = lo->training && lo->cfg.dropout > 0;
	size_t boff = a->b_off + (size_t)L->row0 * (size_t)r;
	const float *u = rn->u + (size_t)L->ad * (size_t)rows * (size_t)r;
	const float *A = lo->params + a->a_off, *xin = x;

	(void)l;
	if (!lo->grads || rows > rn->rows)
		return TK_E_INVAL;
	if (lo->cfg.use_dora)
		return dx_beta == 1.0f ? tk_dora_lin_bwd(m, L, dx, dy, x, rows) : TK_E_INVAL;
	/* dB += scale dy^T u;  du = scale dy B */
	CHECK(tk_matmul(m->be, 1, 0, L->out, r, rows, lo->scale, dy, L->out, u, r, 1.0f,
			lo->grads + boff, r));
	CHECK(tk_matmul(m->be, 0, 0, rows, r, L->out, lo->scale, dy, L->out, lo->params + boff, r,
			0.0f, rn->du, r));
	if (drop) {
		tk_lora_dropout(lo, L->ad, x, rn->xd, (size_t)rows * (size_t)a->in);
		xin = rn->xd;
	}
	/* dA += du^T drop(x) */
	CHECK(tk_matmul(m->be, 1, 0, r, a->in, rows, 1.0f, rn->du, r, xin, a->in, 1.0f,
			lo->grads + a->a_off, a->in));
	if (!drop)
		return tk_matmul(m->be, 0, 0, rows, a->in, r, 1.0f, rn->du, r, A, a->in, dx_beta,
				 dx, a->in);
	/* dx (+)= mask (du A) / (1 - p): the same mask applied to du A */
	CHECK(tk_matmul(m->be, 0, 0, rows, a->in, r, 1.0f, rn->du, r, A, a->in, 0.0f, rn->tmp,
			a->in));
	if (dx_beta == 0.0f) {
		tk_lora_dropout(lo, L->ad, rn->tmp, dx, (size_t)rows * (size_t)a->in);
		return 0;
	}
	tk_lora_dropout(lo, L->ad, rn->tmp, rn->tmp, (size_t)rows * (size_t)a->in);
	return tk_axpy(m->be, dx, 1.0f, rn->tmp, (size_t)rows * (size_t)a->in);
}

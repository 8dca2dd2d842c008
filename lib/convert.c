/* convert.c - GGUF files to Hugging Face model directories (see convert.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "afile.h"
#include "config.h"
#include "convert.h"
#include "gguf.h"

const char tk_convert_archs[] = "gpt2, llama, qwen2";

enum { F_PERM_Q = 1, F_PERM_K = 2, F_CONV1D = 4 };

/* One tensor to write: HF shape [rows, cols] as nn.Linear (cols 0: 1-D). */
struct job {
	char gname[64], hname[96];
	int64_t rows, cols;
	int flags;
};

struct conv {
	const struct tk_convert_opts *o;
	tk_gguf_t *g;
	const char *path;
	struct tk_diag *d;
	char arch[32];
	enum tk_arch a;
	int64_t V, C, L, H, KV, hd, F, P;
	int tied, attn_bias, mlp_bias;
	struct job *jobs;
	size_t nj, jcap;
	void **bufs;
	size_t nb, bcap;
};

static int hp_int(struct conv *c, const char *suf, int64_t def, int64_t *out)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", c->arch, suf);
	if (def < 0 && !tk_gguf_find(c->g, key))
		return tk_diag_set(c->d, TK_E_FORMAT, c->path, -1,
				   "no %s: the file does not describe its model", key);
	int rc = tk_gguf_get_int(c->g, key, def, out, c->d);
	if (!rc && (*out <= 0 || *out > (INT64_C(1) << 30)))
		rc = tk_diag_set(c->d, TK_E_FORMAT, c->path, -1, "%s = %lld is out of range", key,
				 (long long)*out);
	return rc;
}

static int hp_float(struct conv *c, const char *suf, double def, double *out)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", c->arch, suf);
	int rc = tk_gguf_get_float(c->g, key, def, out, c->d);
	if (!rc && !(*out > 0))
		rc = tk_diag_set(c->d, TK_E_FORMAT, c->path, -1, "%s = %g is out of range", key,
				 *out);
	return rc;
}

static int token_id(struct conv *c, const char *what, int64_t *out)
{
	char key[64];
	snprintf(key, sizeof(key), "tokenizer.ggml.%s_token_id", what);
	int rc = tk_gguf_get_int(c->g, key, -1, out, c->d);
	if (!rc && *out >= c->V)
		*out = -1;
	return rc;
}

static int same_tensor(const struct tk_gguf_tensor *a, const struct tk_gguf_tensor *b)
{
	return a->type == b->type && a->ndim == b->ndim && a->nbytes == b->nbytes &&
	       !memcmp(a->ne, b->ne, sizeof(a->ne)) && !memcmp(a->data, b->data, a->nbytes);
}

/* Reads the hyperparameters and fills cfg through a transformers-style
 * config.json text, so that tk_config_parse supplies the defaults. */
static int read_config(struct conv *c, struct tk_model_config *cfg)
{
	int64_t v;
	double eps, theta;
	int rc, gpt2 = c->a == TK_ARCH_GPT2;
	const struct tk_gguf_tensor *emb = tk_gguf_tensor_find(c->g, "token_embd.weight");
	if (!emb || emb->ndim != 2)
		return tk_diag_set(c->d, TK_E_FORMAT, c->path, -1,
				   "no 2-D tensor 'token_embd.weight': not a model file");
	c->V = emb->ne[1];
	const struct tk_gguf_kv *toks = tk_gguf_find(c->g, "tokenizer.ggml.tokens");
	if (toks && toks->type == TK_GGUF_ARRAY && toks->n > (uint64_t)c->V)
		return tk_diag_set(c->d, TK_E_FORMAT, c->path, -1,
				   "the vocabulary has %llu tokens but token_embd.weight only %lld rows",
				   (unsigned long long)toks->n, (long long)c->V);
	if ((rc = hp_int(c, "embedding_length", -1, &c->C)) ||
	    (rc = hp_int(c, "block_count", -1, &c->L)) ||
	    (rc = hp_int(c, "attention.head_count", -1, &c->H)) ||
	    (rc = hp_int(c, "attention.head_count_kv", c->H, &c->KV)) ||
	    (rc = hp_int(c, "context_length", gpt2 ? 1024 : 2048, &c->P)) ||
	    (rc = hp_int(c, "feed_forward_length", gpt2 ? 4 * c->C : -1, &c->F)) ||
	    (rc = hp_int(c, "attention.key_length", c->C / c->H, &c->hd)) ||
	    (rc = hp_float(c, gpt2 ? "attention.layer_norm_epsilon"
			   : "attention.layer_norm_rms_epsilon", 1e-5, &eps)) ||
	    (rc = hp_float(c, "rope.freq_base", 10000.0, &theta)))
		return rc;
	if (c->H % c->KV || (!gpt2 && c->hd % 2) || (gpt2 && c->C % c->H))
		return tk_diag_set(c->d, TK_E_FORMAT, c->path, -1,
				   "%lld heads, %lld key/value heads and head size %lld do not fit "
				   "together", (long long)c->H, (long long)c->KV, (long long)c->hd);
	if (!gpt2) {
		if ((rc = hp_int(c, "rope.dimension_count", c->hd, &v)))
			return rc;
		if (v != c->hd)
			return tk_diag_set(c->d, TK_E_UNSUPPORTED, c->path, -1,
					   "rotary embeddings on %lld of %lld head dimensions are not "
					   "supported", (long long)v, (long long)c->hd);
		char key[64];
		const char *st = NULL;
		snprintf(key, sizeof(key), "%s.rope.scaling.type", c->arch);
		if ((rc = tk_gguf_get_str(c->g, key, &st, c->d)))
			return rc;
		if (st && strcmp(st, "none"))
			return tk_diag_set(c->d, TK_E_UNSUPPORTED, c->path, -1,
					   "%s '%s' is not supported", key, st);
	}
	const struct tk_gguf_tensor *out = tk_gguf_tensor_find(c->g, "output.weight");
	c->tied = !out || same_tensor(out, emb);
	c->attn_bias = c->a == TK_ARCH_QWEN2 ||
		       (c->a == TK_ARCH_LLAMA && tk_gguf_tensor_find(c->g, "blk.0.attn_q.bias"));
	c->mlp_bias = c->a == TK_ARCH_LLAMA && tk_gguf_tensor_find(c->g, "blk.0.ffn_up.bias");

	int64_t bos, eos, pad;
	if ((rc = token_id(c, "bos", &bos)) || (rc = token_id(c, "eos", &eos)) ||
	    (rc = token_id(c, "padding", &pad)))
		return rc;
	cJSON *j = cJSON_CreateObject();
	if (!j)
		return tk_diag_set(c->d, TK_E_NOMEM, c->path, -1, "out of memory");
	cJSON_AddStringToObject(j, "model_type", c->arch);
	cJSON_AddNumberToObject(j, "vocab_size", (double)c->V);
	cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tied);
	const char *idk[] = { "bos_token_id", "eos_token_id", "pad_token_id" };
	int64_t ids[] = { bos, eos, pad };
	for (int i = 0; i < 3; i++) {
		if (ids[i] >= 0)
			cJSON_AddNumberToObject(j, idk[i], (double)ids[i]);
		else
			cJSON_AddNullToObject(j, idk[i]);
	}
	if (gpt2) {
		cJSON_AddNumberToObject(j, "n_embd", (double)c->C);
		cJSON_AddNumberToObject(j, "n_layer", (double)c->L);
		cJSON_AddNumberToObject(j, "n_head", (double)c->H);
		cJSON_AddNumberToObject(j, "n_positions", (double)c->P);
		cJSON_AddNumberToObject(j, "n_inner", (double)c->F);
		cJSON_AddNumberToObject(j, "layer_norm_epsilon", eps);
	} else {
		cJSON_AddNumberToObject(j, "hidden_size", (double)c->C);
		cJSON_AddNumberToObject(j, "intermediate_size", (double)c->F);
		cJSON_AddNumberToObject(j, "num_hidden_layers", (double)c->L);
		cJSON_AddNumberToObject(j, "num_attention_heads", (double)c->H);
		cJSON_AddNumberToObject(j, "num_key_value_heads", (double)c->KV);
		cJSON_AddNumberToObject(j, "head_dim", (double)c->hd);
		cJSON_AddNumberToObject(j, "max_position_embeddings", (double)c->P);
		cJSON_AddNumberToObject(j, "rms_norm_eps", eps);
		cJSON_AddNumberToObject(j, "rope_theta", theta);
		cJSON_AddStringToObject(j, "hidden_act", "silu");
		if (c->a == TK_ARCH_LLAMA) {
			cJSON_AddBoolToObject(j, "attention_bias", c->attn_bias);
			cJSON_AddBoolToObject(j, "mlp_bias", c->mlp_bias);
		}
	}
	char *text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!text)
		return tk_diag_set(c->d, TK_E_NOMEM, c->path, -1, "out of memory");
	rc = tk_config_parse(cfg, text, c->path, c->d);
	cJSON_free(text);
	if (rc)
		return rc;
	const char *dt = c->o->outtype == TK_DT_F16 ? "float16"
			 : c->o->outtype == TK_DT_BF16 ? "bfloat16" : "float32";
	snprintf(cfg->torch_dtype, sizeof(cfg->torch_dtype), "%s", dt);
	return 0;
}

static int add_job(struct conv *c, const char *g, const char *h, int l, int64_t rows,
		   int64_t cols, int flags)
{
	if (tk_grow(&c->jobs, &c->jcap, c->nj + 1, sizeof(*c->jobs)))
		return tk_diag_set(c->d, TK_E_NOMEM, c->path, -1, "out of memory");
	struct job *j = &c->jobs[c->nj++];
	snprintf(j->gname, sizeof(j->gname), g, l);
	snprintf(j->hname, sizeof(j->hname), h, l);
	j->rows = rows;
	j->cols = cols;
	j->flags = flags;
	return 0;
}

/* Weight and (when bias) bias of one projection. */
static int add_lin(struct conv *c, const char *g, const char *h, int l, int64_t rows,
		   int64_t cols, int flags, int bias)
{
	char gw[64], hw[96];
	snprintf(gw, sizeof(gw), "%s.weight", g);
	snprintf(hw, sizeof(hw), "%s.weight", h);
	int rc = add_job(c, gw, hw, l, rows, cols, flags);
	if (!rc && bias) {
		snprintf(gw, sizeof(gw), "%s.bias", g);
		snprintf(hw, sizeof(hw), "%s.bias", h);
		rc = add_job(c, gw, hw, l, rows, 0, flags & ~F_CONV1D);
	}
	return rc;
}

static int plan_llama(struct conv *c)
{
	int64_t C = c->C, F = c->F, q = c->H * c->hd, kv = c->KV * c->hd;
	int perm = c->a == TK_ARCH_LLAMA, ab = c->attn_bias, mb = c->mlp_bias, rc;
	const char *a = "model.layers.%d.self_attn.", *m = "model.layers.%d.mlp.";
	char h[8][96];
	static const char *const hn[] = { "q_proj", "k_proj", "v_proj", "o_proj",
					  "gate_proj", "up_proj", "down_proj" };
	for (int i = 0; i < 7; i++)
		snprintf(h[i], sizeof(h[i]), "%s%s", i < 4 ? a : m, hn[i]);
	if ((rc = add_job(c, "token_embd.weight", "model.embed_tokens.weight", 0, c->V, C, 0)))
		return rc;
	for (int l = 0; l < c->L; l++) {
		if ((rc = add_job(c, "blk.%d.attn_norm.weight",
				  "model.layers.%d.input_layernorm.weight", l, C, 0, 0)) ||
		    (rc = add_lin(c, "blk.%d.attn_q", h[0], l, q, C, perm ? F_PERM_Q : 0, ab)) ||
		    (rc = add_lin(c, "blk.%d.attn_k", h[1], l, kv, C, perm ? F_PERM_K : 0, ab)) ||
		    (rc = add_lin(c, "blk.%d.attn_v", h[2], l, kv, C, 0, ab)) ||
		    (rc = add_lin(c, "blk.%d.attn_output", h[3], l, C, q, 0,
				  ab && c->a == TK_ARCH_LLAMA)) ||
		    (rc = add_job(c, "blk.%d.ffn_norm.weight",
				  "model.layers.%d.post_attention_layernorm.weight", l, C, 0, 0)) ||
		    (rc = add_lin(c, "blk.%d.ffn_gate", h[4], l, F, C, 0, mb)) ||
		    (rc = add_lin(c, "blk.%d.ffn_up", h[5], l, F, C, 0, mb)) ||
		    (rc = add_lin(c, "blk.%d.ffn_down", h[6], l, C, F, 0, mb)))
			return rc;
	}
	if ((rc = add_job(c, "output_norm.weight", "model.norm.weight", 0, C, 0, 0)))
		return rc;
	return c->tied ? 0 : add_job(c, "output.weight", "lm_head.weight", 0, c->V, C, 0);
}

static int plan_gpt2(struct conv *c)
{
	int64_t C = c->C, F = c->F;
	int rc;
	if ((rc = add_job(c, "token_embd.weight", "transformer.wte.weight", 0, c->V, C, 0)) ||
	    (rc = add_job(c, "position_embd.weight", "transformer.wpe.weight", 0, c->P, C, 0)))
		return rc;
	for (int l = 0; l < c->L; l++) {
		if ((rc = add_lin(c, "blk.%d.attn_norm", "transformer.h.%d.ln_1", l, C, 0, 0, 1)) ||
		    (rc = add_lin(c, "blk.%d.attn_qkv", "transformer.h.%d.attn.c_attn", l, 3 * C,
				  C, F_CONV1D, 1)) ||
		    (rc = add_lin(c, "blk.%d.attn_output", "transformer.h.%d.attn.c_proj", l, C,
				  C, F_CONV1D, 1)) ||
		    (rc = add_lin(c, "blk.%d.ffn_norm", "transformer.h.%d.ln_2", l, C, 0, 0, 1)) ||
		    (rc = add_lin(c, "blk.%d.ffn_up", "transformer.h.%d.mlp.c_fc", l, F, C,
				  F_CONV1D, 1)) ||
		    (rc = add_lin(c, "blk.%d.ffn_down", "transformer.h.%d.mlp.c_proj", l, C, F,
				  F_CONV1D, 1)))
			return rc;
	}
	if ((rc = add_lin(c, "output_norm", "transformer.ln_f", 0, C, 0, 0, 1)))
		return rc;
	return c->tied ? 0 : add_job(c, "output.weight", "lm_head.weight", 0, c->V, C, 0);
}

void tk_convert_unpermute(float *dst, const float *src, int n_head, int head_dim, int64_t cols)
{
	int half = head_dim / 2;
	for (int h = 0; h < n_head; h++)
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < half; j++) {
				int64_t from = (int64_t)h * head_dim + 2 * j + i;
				int64_t to = (int64_t)h * head_dim + i * half + j;
				memcpy(dst + to * cols, src + from * cols, (size_t)cols * sizeof(float));
			}
}

static void *keep(struct conv *c, void *p)
{
	if (p && tk_grow(&c->bufs, &c->bcap, c->nb + 1, sizeof(*c->bufs))) {
		free(p);
		return NULL;
	}
	if (p)
		c->bufs[c->nb++] = p;
	return p;
}

/* Dequantizes, reorders and converts one tensor and adds it to w. */
static int run_job(struct conv *c, const struct job *j, tk_st_writer_t *w, uint64_t *n_params)
{
	const struct tk_gguf_tensor *t = tk_gguf_tensor_find(c->g, j->gname);
	if (!t)
		return tk_diag_set(c->d, TK_E_FORMAT, c->path, -1, "tensor '%s' is missing",
				   j->gname);
	int ok = j->cols ? t->ndim == 2 && t->ne[0] == j->cols && t->ne[1] == j->rows
			 : t->ndim == 1 && t->ne[0] == j->rows;
	if (!ok) {
		char got[96];
		int n = snprintf(got, sizeof(got), "[");
		for (int i = 0; i < t->ndim; i++)
			n += snprintf(got + n, sizeof(got) - (size_t)n, "%s%lld", i ? ", " : "",
				      (long long)t->ne[i]);
		snprintf(got + n, sizeof(got) - (size_t)n, "]");
		if (j->cols)
			return tk_diag_set(c->d, TK_E_FORMAT, c->path, -1,
					   "tensor '%s' has dims %s, expected [%lld, %lld] from "
					   "the hyperparameters", j->gname, got,
					   (long long)j->cols, (long long)j->rows);
		return tk_diag_set(c->d, TK_E_FORMAT, c->path, -1,
				   "tensor '%s' has dims %s, expected [%lld] from the "
				   "hyperparameters", j->gname, got, (long long)j->rows);
	}
	size_t n = (size_t)t->nelem;
	float *f = keep(c, tk_mallocn(n, sizeof(float)));
	float *tmp = NULL;
	if (!f)
		return tk_diag_set(c->d, TK_E_NOMEM, c->path, -1, "out of memory for '%s'", j->gname);
	int rc = tk_gguf_to_f32(c->g, t, f, c->d);
	if (rc)
		return rc;
	int64_t cols = j->cols ? j->cols : 1;
	if (j->flags & (F_PERM_Q | F_PERM_K | F_CONV1D)) {
		if (!(tmp = tk_mallocn(n, sizeof(float))))
			return tk_diag_set(c->d, TK_E_NOMEM, c->path, -1, "out of memory");
		if (j->flags & F_CONV1D) {
			for (int64_t r = 0; r < j->rows; r++)
				for (int64_t k = 0; k < j->cols; k++)
					tmp[k * j->rows + r] = f[r * j->cols + k];
		} else {
			int nh = (int)(j->flags & F_PERM_Q ? c->H : c->KV);
			tk_convert_unpermute(tmp, f, nh, (int)c->hd, cols);
		}
		memcpy(f, tmp, n * sizeof(float));
		free(tmp);
	}
	int64_t shape[2] = { j->rows, j->cols };
	if (j->flags & F_CONV1D) {
		shape[0] = j->cols;
		shape[1] = j->rows;
	}
	const void *data = f;
	if (c->o->outtype != TK_DT_F32) {
		uint16_t *h = keep(c, tk_mallocn(n, sizeof(uint16_t)));
		if (!h)
			return tk_diag_set(c->d, TK_E_NOMEM, c->path, -1, "out of memory");
		for (size_t i = 0; i < n; i++)
			h[i] = c->o->outtype == TK_DT_F16 ? tk_f32_to_f16(f[i]) : tk_f32_to_bf16(f[i]);
		data = h;
	}
	*n_params += n;
	return tk_st_writer_add(w, j->hname, c->o->outtype, j->cols ? 2 : 1, shape, data, c->d);
}

/* Every tensor of the file must have been used (output.weight also when
 * it is the tied copy). */
static int check_unused(struct conv *c)
{
	size_t n = tk_gguf_tensor_count(c->g);
	for (size_t i = 0; i < n; i++) {
		const char *name = tk_gguf_tensor_at(c->g, i)->name;
		int used = c->tied && !strcmp(name, "output.weight");
		for (size_t k = 0; k < c->nj && !used; k++)
			used = !strcmp(c->jobs[k].gname, name);
		if (!used)
			return tk_diag_set(c->d, TK_E_UNSUPPORTED, c->path, -1,
					   "tensor '%s' has no place in a %s model (tk-convert does "
					   "not know it)", name, c->arch);
	}
	return 0;
}

static int write_json(const struct tk_adir *dir, const char *name, const cJSON *j,
		      struct tk_diag *d)
{
	char *path = tk_adir_file(dir, name), *text = cJSON_Print(j);
	struct tk_afile f;
	int rc = TK_E_NOMEM;
	if (path && text && !(rc = tk_afile_open(&f, path, 0, d))) {
		fputs(text, f.fp);
		fputc('\n', f.fp);
		rc = tk_afile_commit(&f, d);
	} else if (rc == TK_E_NOMEM) {
		tk_diag_set(d, rc, name, -1, "out of memory");
	}
	free(path);
	cJSON_free(text);
	return rc;
}

static int resolve_arch(struct conv *c)
{
	const char *a = NULL;
	int rc = tk_gguf_get_str(c->g, "general.architecture", &a, c->d);
	if (rc)
		return rc;
	if (!a)
		return tk_diag_set(c->d, TK_E_FORMAT, c->path, -1,
				   "no general.architecture: not a model file");
	if (!strcmp(a, "llama"))
		c->a = TK_ARCH_LLAMA;
	else if (!strcmp(a, "qwen2"))
		c->a = TK_ARCH_QWEN2;
	else if (!strcmp(a, "gpt2"))
		c->a = TK_ARCH_GPT2;
	else
		return tk_diag_set(c->d, TK_E_UNSUPPORTED, c->path, -1,
				   "architecture '%.64s' is not supported (supported: %s)", a,
				   tk_convert_archs);
	snprintf(c->arch, sizeof(c->arch), "%s", a);
	return 0;
}

int tk_convert_gguf(const struct tk_convert_opts *o, struct tk_convert_result *r,
		    struct tk_diag *d)
{
	struct conv c = { .o = o, .path = o->input, .d = d };
	struct tk_model_config cfg;
	cJSON *tok = NULL, *tcfg = NULL;
	tk_st_writer_t *w = NULL;
	struct tk_adir dir = { 0 };
	uint64_t n_params = 0;
	int rc, have_dir = 0;

	tk_diag_clear(d);
	if (o->outtype != TK_DT_F32 && o->outtype != TK_DT_F16 && o->outtype != TK_DT_BF16)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "outtype must be F32, F16 or BF16");
	if ((rc = tk_gguf_open(&c.g, o->input, d)))
		return rc;
	if ((rc = resolve_arch(&c)) || (rc = read_config(&c, &cfg)))
		goto out;
	rc = c.a == TK_ARCH_GPT2 ? plan_gpt2(&c) : plan_llama(&c);
	if (rc || (rc = check_unused(&c)))
		goto out;
	if (tk_gguf_find(c.g, "tokenizer.ggml.model") &&
	    (rc = tk_gguf_tokenizer_json(c.g, &tok, &tcfg, d)))
		goto out;
	if ((rc = tk_st_writer_new(&w)) || (rc = tk_st_writer_metadata(w, "format", "pt"))) {
		rc = tk_diag_set(d, TK_E_NOMEM, o->input, -1, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c.nj; i++)
		if ((rc = run_job(&c, &c.jobs[i], w, &n_params)))
			goto out;
	if ((rc = tk_adir_open(&dir, o->output, o->force, d)))
		goto out;
	have_dir = 1;
	char *cp = tk_adir_file(&dir, "config.json"), *sp = tk_adir_file(&dir, "model.safetensors");
	if (!cp || !sp)
		rc = tk_diag_set(d, TK_E_NOMEM, o->output, -1, "out of memory");
	if (!rc)
		rc = tk_config_save(&cfg, cp, NULL, 0, d);
	if (!rc) {
		rc = tk_st_writer_commit(w, sp, 0, d);
		w = NULL;
	}
	free(cp);
	free(sp);
	if (!rc && tok)
		rc = write_json(&dir, "tokenizer.json", tok, d);
	if (!rc && tcfg)
		rc = write_json(&dir, "tokenizer_config.json", tcfg, d);
	if (!rc) {
		have_dir = 0;
		rc = tk_adir_commit(&dir, d);
	}
	if (!rc && r) {
		snprintf(r->arch, sizeof(r->arch), "%s", c.arch);
		r->n_tensors = (int)c.nj;
		r->n_params = n_params;
		r->tokenizer = tok != NULL;
	}
out:
	if (have_dir)
		tk_adir_abort(&dir);
	if (w)
		tk_st_writer_free(w);
	for (size_t i = 0; i < c.nb; i++)
		free(c.bufs[i]);
	free(c.bufs);
	free(c.jobs);
	cJSON_Delete(tok);
	cJSON_Delete(tcfg);
	tk_gguf_close(c.g);
	return rc;
}

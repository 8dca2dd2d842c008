/* convert.c - GGUF files to Hugging Face model directories and back (see convert.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/afile.h"
#include "base/path.h"
#include "formats/config.h"
#include "jobs/convert.h"
#include "formats/gguf.h"
#include "text/tokenizer.h"
#include "model/model.h"
#include "model/rope.h"

const char tk_convert_archs[] = "gpt2, llama, qwen2, qwen3, phi3, gemma2, gemma3";

/* F_SHIFT: a Gemma norm weight, which llama.cpp's converter stores as 1 +
 * weight (its RMSNorm multiplies by the weight alone) */
enum { F_PERM_Q = 1, F_PERM_K = 2, F_CONV1D = 4, F_SHIFT = 8 };

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
	int64_t rot;             /* rope.dimension_count (phi3: may be below hd) */
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

/* Gemma-2/3's keys of config.json from what llama.cpp keeps: the window
 * (its sliding layers every 2nd / all but every 6th, as llama.cpp lays
 * them out), Gemma-2's soft-caps (llama.cpp's defaults 50 and 30),
 * Gemma-3's local rope theta (freq_base_swa, default 10000), and the
 * attention scale llama.cpp derives: 1/sqrt(head_dim), or for the 27B
 * models (46 and 62 layers) 1/sqrt(hidden / heads), as
 * query_pre_attn_scalar. */
static int gemma_config(struct conv *c, cJSON *j)
{
	int g3 = c->a == TK_ARCH_GEMMA3, rc;
	int64_t sw;
	double cap_a = 0, cap_f = 0, swa_theta = 10000.0;
	char key[96];
	snprintf(key, sizeof(key), "%s.attention.sliding_window_pattern", c->arch);
	if (tk_gguf_find(c->g, key))
		return tk_diag_set(c->d, TK_E_UNSUPPORTED, c->path, -1,
				   "%s is not supported (tk reads llama.cpp's fixed layouts)", key);
	if ((rc = hp_int(c, "attention.sliding_window", 4096, &sw)) ||
	    (!g3 && ((rc = hp_float(c, "attn_logit_softcapping", 50.0, &cap_a)) ||
		     (rc = hp_float(c, "final_logit_softcapping", 30.0, &cap_f)))) ||
	    (g3 && (rc = hp_float(c, "rope.freq_base_swa", 10000.0, &swa_theta))))
		return rc;
	int big = c->L == (g3 ? 62 : 46);
	cJSON_AddStringToObject(j, "hidden_activation", "gelu_pytorch_tanh");
	cJSON_AddNumberToObject(j, "sliding_window", (double)sw);
	cJSON_AddNumberToObject(j, "query_pre_attn_scalar", (double)(big ? c->C / c->H : c->hd));
	if (g3) {
		cJSON_AddNumberToObject(j, "rope_local_base_freq", swa_theta);
		cJSON_AddNullToObject(j, "attn_logit_softcapping");
		cJSON_AddNullToObject(j, "final_logit_softcapping");
	} else {
		cJSON_AddNumberToObject(j, "attn_logit_softcapping", cap_a);
		cJSON_AddNumberToObject(j, "final_logit_softcapping", cap_f);
	}
	return 0;
}

/* A float tensor of n numbers (F32, as llama.cpp's converter writes
 * rope_factors_*) added to o as the list key. */
static int float_list(struct conv *c, cJSON *o, const char *key, const char *name, int64_t n)
{
	const struct tk_gguf_tensor *t = tk_gguf_tensor_find(c->g, name);
	if (!t || t->ndim != 1 || t->ne[0] != n)
		return tk_diag_set(c->d, TK_E_FORMAT, c->path, -1,
				   "tensor '%s' is missing or not of %lld numbers "
				   "(rope.dimension_count / 2)", name, (long long)n);
	float *f = tk_mallocn((size_t)n, sizeof(float));
	cJSON *a = f ? cJSON_AddArrayToObject(o, key) : NULL;
	int rc = a ? tk_gguf_to_f32(c->g, t, f, c->d)
		   : tk_diag_set(c->d, TK_E_NOMEM, c->path, -1, "out of memory");
	for (int64_t i = 0; !rc && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double)f[i]));
	free(f);
	return rc;
}

/* phi3's keys as llama.cpp's converter (Phi3MiniModel) writes them:
 * rope.dimension_count for partial_rotary_factor, the original context,
 * the sliding window (0: none), and LongRoPE as rope_factors_long/short
 * tensors with rope.scaling.attn_factor. */
static int phi3_config(struct conv *c, cJSON *j)
{
	int64_t v;
	int rc;
	char key[96];
	int64_t orig = 4096; /* Phi3Config's default */
	if (c->rot != c->hd) {
		/* a factor transformers' int(head_dim * factor) turns back into rot */
		double f = (double)c->rot / (double)c->hd;
		while ((int64_t)((double)c->hd * f) < c->rot)
			f = nextafter(f, 2.0);
		cJSON_AddNumberToObject(j, "partial_rotary_factor", f);
	}
	snprintf(key, sizeof(key), "%s.rope.scaling.original_context_length", c->arch);
	if (tk_gguf_find(c->g, key)) {
		if ((rc = hp_int(c, "rope.scaling.original_context_length", -1, &orig)))
			return rc;
		cJSON_AddNumberToObject(j, "original_max_position_embeddings", (double)orig);
	}
	snprintf(key, sizeof(key), "%s.attention.sliding_window", c->arch);
	if ((rc = tk_gguf_get_int(c->g, key, 0, &v, c->d)))
		return rc;
	if (v > 0)
		cJSON_AddNumberToObject(j, "sliding_window", (double)v);
	if (!tk_gguf_tensor_find(c->g, "rope_factors_long.weight"))
		return 0;
	cJSON *rs = cJSON_AddObjectToObject(j, "rope_scaling");
	if (!rs)
		return tk_diag_set(c->d, TK_E_NOMEM, c->path, -1, "out of memory");
	cJSON_AddStringToObject(rs, "rope_type", "longrope");
	/* the attention factor, where it is not the one transformers derives
	 * from max_position_embeddings / original_max_position_embeddings */
	double att, f = (double)c->P / (double)orig;
	double def = f <= 1.0 ? 1.0 : sqrt(1 + log(f) / log((double)orig));
	snprintf(key, sizeof(key), "%s.rope.scaling.attn_factor", c->arch);
	if ((rc = tk_gguf_get_float(c->g, key, def, &att, c->d)))
		return rc;
	if (!(att > 0))
		return tk_diag_set(c->d, TK_E_FORMAT, c->path, -1, "%s = %g is out of range", key,
				   att);
	if (fabs(att - def) > 1e-6 * def)
		cJSON_AddNumberToObject(rs, "attention_factor", att);
	if ((rc = float_list(c, rs, "long_factor", "rope_factors_long.weight", c->rot / 2)))
		return rc;
	return float_list(c, rs, "short_factor", "rope_factors_short.weight", c->rot / 2);
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
		/* phi3: partial_rotary_factor (an even part of the head) */
		if (v != c->hd && (c->a != TK_ARCH_PHI3 || v > c->hd || v % 2))
			return tk_diag_set(c->d, TK_E_UNSUPPORTED, c->path, -1,
					   "rotary embeddings on %lld of %lld head dimensions are not "
					   "supported", (long long)v, (long long)c->hd);
		c->rot = v;
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
		       ((c->a == TK_ARCH_LLAMA || c->a == TK_ARCH_QWEN3) &&
			tk_gguf_tensor_find(c->g, "blk.0.attn_q.bias"));
	c->mlp_bias = c->a == TK_ARCH_LLAMA && tk_gguf_tensor_find(c->g, "blk.0.ffn_up.bias");

	/* Mistral: llama with a window (tk's export writes the key; llama.cpp's
	 * converter writes Mistral as plain llama) */
	int64_t swa = 0;
	if (c->a == TK_ARCH_LLAMA && tk_gguf_find(c->g, "llama.attention.sliding_window")) {
		if ((rc = hp_int(c, "attention.sliding_window", -1, &swa)))
			return rc;
		if (c->attn_bias || c->mlp_bias)
			return tk_diag_set(c->d, TK_E_UNSUPPORTED, c->path, -1,
					   "llama.attention.sliding_window with attention or MLP "
					   "biases: no Hugging Face model has both");
	}
	int64_t bos, eos, pad;
	if ((rc = token_id(c, "bos", &bos)) || (rc = token_id(c, "eos", &eos)) ||
	    (rc = token_id(c, "padding", &pad)))
		return rc;
	cJSON *j = cJSON_CreateObject();
	if (!j)
		return tk_diag_set(c->d, TK_E_NOMEM, c->path, -1, "out of memory");
	cJSON_AddStringToObject(j, "model_type", swa ? "mistral"
						 : c->a == TK_ARCH_GEMMA3 ? "gemma3_text" : c->arch);
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
		if (c->a == TK_ARCH_GEMMA2 || c->a == TK_ARCH_GEMMA3) {
			if ((rc = gemma_config(c, j))) {
				cJSON_Delete(j);
				return rc;
			}
		} else {
			cJSON_AddStringToObject(j, "hidden_act", "silu");
		}
		if (swa) {
			cJSON_AddNumberToObject(j, "sliding_window", (double)swa);
		} else if (c->a == TK_ARCH_LLAMA) {
			cJSON_AddBoolToObject(j, "attention_bias", c->attn_bias);
			cJSON_AddBoolToObject(j, "mlp_bias", c->mlp_bias);
		} else if (c->a == TK_ARCH_QWEN3) {
			cJSON_AddBoolToObject(j, "attention_bias", c->attn_bias);
		} else if (c->a == TK_ARCH_PHI3 && (rc = phi3_config(c, j))) {
			cJSON_Delete(j);
			return rc;
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

/* Gemma-2/3: llama.cpp's names of the four norms a layer, each stored as 1
 * + weight, Gemma-3's q/k norms too. */
static int plan_gemma(struct conv *c)
{
	int64_t C = c->C, F = c->F, q = c->H * c->hd, kv = c->KV * c->hd;
	int rc;
	static const char *const g[][2] = {
		{ "blk.%d.attn_q", "model.layers.%d.self_attn.q_proj" },
		{ "blk.%d.attn_k", "model.layers.%d.self_attn.k_proj" },
		{ "blk.%d.attn_v", "model.layers.%d.self_attn.v_proj" },
		{ "blk.%d.attn_output", "model.layers.%d.self_attn.o_proj" },
		{ "blk.%d.ffn_gate", "model.layers.%d.mlp.gate_proj" },
		{ "blk.%d.ffn_up", "model.layers.%d.mlp.up_proj" },
		{ "blk.%d.ffn_down", "model.layers.%d.mlp.down_proj" },
	};
	static const char *const nm[][2] = {
		{ "blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight" },
		{ "blk.%d.post_attention_norm.weight",
		  "model.layers.%d.post_attention_layernorm.weight" },
		{ "blk.%d.ffn_norm.weight", "model.layers.%d.pre_feedforward_layernorm.weight" },
		{ "blk.%d.post_ffw_norm.weight", "model.layers.%d.post_feedforward_layernorm.weight" },
		{ "blk.%d.attn_q_norm.weight", "model.layers.%d.self_attn.q_norm.weight" },
		{ "blk.%d.attn_k_norm.weight", "model.layers.%d.self_attn.k_norm.weight" },
	};
	const int64_t rows[] = { q, kv, kv, C, F, F, C }, cols[] = { C, C, C, q, C, C, F };
	if ((rc = add_job(c, "token_embd.weight", "model.embed_tokens.weight", 0, c->V, C, 0)))
		return rc;
	for (int l = 0; l < c->L; l++) {
		for (int i = 0; i < 7; i++)
			if ((rc = add_lin(c, g[i][0], g[i][1], l, rows[i], cols[i], 0, c->attn_bias &&
					  i < 4)))
				return rc;
		for (int i = 0; i < (c->a == TK_ARCH_GEMMA3 ? 6 : 4); i++)
			if ((rc = add_job(c, nm[i][0], nm[i][1], l, i < 4 ? C : c->hd, 0, F_SHIFT)))
				return rc;
	}
	if ((rc = add_job(c, "output_norm.weight", "model.norm.weight", 0, C, 0, F_SHIFT)))
		return rc;
	return c->tied ? 0 : add_job(c, "output.weight", "lm_head.weight", 0, c->V, C, 0);
}

/* Phi-3: fused attn_qkv and ffn_up (gate, then up), no biases. */
static int plan_phi3(struct conv *c)
{
	int64_t C = c->C, F = c->F, q = c->H * c->hd, kv = c->KV * c->hd;
	int rc;
	if ((rc = add_job(c, "token_embd.weight", "model.embed_tokens.weight", 0, c->V, C, 0)))
		return rc;
	for (int l = 0; l < c->L; l++)
		if ((rc = add_job(c, "blk.%d.attn_norm.weight",
				  "model.layers.%d.input_layernorm.weight", l, C, 0, 0)) ||
		    (rc = add_job(c, "blk.%d.attn_qkv.weight",
				  "model.layers.%d.self_attn.qkv_proj.weight", l, q + 2 * kv, C, 0)) ||
		    (rc = add_job(c, "blk.%d.attn_output.weight",
				  "model.layers.%d.self_attn.o_proj.weight", l, C, q, 0)) ||
		    (rc = add_job(c, "blk.%d.ffn_norm.weight",
				  "model.layers.%d.post_attention_layernorm.weight", l, C, 0, 0)) ||
		    (rc = add_job(c, "blk.%d.ffn_up.weight",
				  "model.layers.%d.mlp.gate_up_proj.weight", l, 2 * F, C, 0)) ||
		    (rc = add_job(c, "blk.%d.ffn_down.weight",
				  "model.layers.%d.mlp.down_proj.weight", l, C, F, 0)))
			return rc;
	if ((rc = add_job(c, "output_norm.weight", "model.norm.weight", 0, C, 0, 0)))
		return rc;
	return c->tied ? 0 : add_job(c, "output.weight", "lm_head.weight", 0, c->V, C, 0);
}

static int plan_llama(struct conv *c)
{
	int64_t C = c->C, F = c->F, q = c->H * c->hd, kv = c->KV * c->hd;
	int perm = c->a == TK_ARCH_LLAMA, ab = c->attn_bias, mb = c->mlp_bias, rc;
	if (c->a == TK_ARCH_GEMMA2 || c->a == TK_ARCH_GEMMA3)
		return plan_gemma(c);
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
				  ab && c->a != TK_ARCH_QWEN2)) ||
		    (c->a == TK_ARCH_QWEN3 &&
		     ((rc = add_job(c, "blk.%d.attn_q_norm.weight",
				    "model.layers.%d.self_attn.q_norm.weight", l, c->hd, 0, 0)) ||
		      (rc = add_job(c, "blk.%d.attn_k_norm.weight",
				    "model.layers.%d.self_attn.k_norm.weight", l, c->hd, 0, 0)))) ||
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

/* Moves the rows of each head between llama.cpp's interleaved order (row
 * 2j+i of a head) and Hugging Face's halves (row i*half+j): to_hf picks the
 * direction. */
static void reorder_rows(float *dst, const float *src, int n_head, int head_dim, int64_t cols,
			 int to_hf)
{
	int half = head_dim / 2;
	for (int h = 0; h < n_head; h++)
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < half; j++) {
				int64_t gg = (int64_t)h * head_dim + 2 * j + i;
				int64_t hf = (int64_t)h * head_dim + i * half + j;
				int64_t to = to_hf ? hf : gg, from = to_hf ? gg : hf;
				memcpy(dst + to * cols, src + from * cols, (size_t)cols * sizeof(float));
			}
}

void tk_convert_unpermute(float *dst, const float *src, int n_head, int head_dim, int64_t cols)
{
	reorder_rows(dst, src, n_head, head_dim, cols, 1);
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
static int run_job(struct conv *c, const struct job *j, tk_safetensors_writer_t *w, uint64_t *n_params)
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
	for (size_t i = 0; (j->flags & F_SHIFT) && i < n; i++)
		f[i] -= 1.0f;
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
	return tk_safetensors_writer_add(w, j->hname, c->o->outtype, j->cols ? 2 : 1, shape, data, c->d);
}

/* Every tensor of the file must have been used (output.weight also when
 * it is the tied copy). */
static int check_unused(struct conv *c)
{
	size_t n = tk_gguf_tensor_count(c->g);
	for (size_t i = 0; i < n; i++) {
		const char *name = tk_gguf_tensor_at(c->g, i)->name;
		int used = c->tied && !strcmp(name, "output.weight");
		/* phi3's LongRoPE factors went into config.json */
		used |= c->a == TK_ARCH_PHI3 && (!strcmp(name, "rope_factors_long.weight") ||
						 !strcmp(name, "rope_factors_short.weight"));
		for (size_t k = 0; k < c->nj && !used; k++)
			used = !strcmp(c->jobs[k].gname, name);
		if (!used)
			return tk_diag_set(c->d, TK_E_UNSUPPORTED, c->path, -1,
					   "tensor '%s' has no place in a %s model (tk-convert does "
					   "not know it)", name, c->arch);
	}
	return 0;
}

static int write_json(const struct tk_afile_dir *dir, const char *name, const cJSON *j,
		      struct tk_diag *d)
{
	char *path = tk_afile_dir_file(dir, name), *text = cJSON_Print(j);
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

/* generation_config.json as transformers derives it from the config of a
 * GGUF it loads (GenerationConfig.from_model_config): the special ids the
 * file names, none of them null. */
static cJSON *generation_config(const struct tk_model_config *cfg)
{
	cJSON *j = cJSON_CreateObject();
	if (!j)
		return NULL;
	cJSON_AddBoolToObject(j, "_from_model_config", 1);
	const char *keys[] = { "bos_token_id", "eos_token_id", "pad_token_id" };
	int64_t ids[] = { cfg->bos_id, cfg->eos_id, cfg->pad_id };
	for (int i = 0; i < 3; i++)
		if (ids[i] >= 0 && !cJSON_AddNumberToObject(j, keys[i], (double)ids[i])) {
			cJSON_Delete(j);
			return NULL;
		}
	return j;
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
	else if (!strcmp(a, "qwen3"))
		c->a = TK_ARCH_QWEN3;
	else if (!strcmp(a, "gpt2"))
		c->a = TK_ARCH_GPT2;
	else if (!strcmp(a, "gemma2"))
		c->a = TK_ARCH_GEMMA2;
	else if (!strcmp(a, "gemma3"))
		c->a = TK_ARCH_GEMMA3;
	else if (!strcmp(a, "phi3"))
		c->a = TK_ARCH_PHI3;
	else
		return tk_diag_set(c->d, TK_E_UNSUPPORTED, c->path, -1,
				   "architecture '%.64s' is not supported (supported: %s)", a,
				   tk_convert_archs);
	snprintf(c->arch, sizeof(c->arch), "%s", a);
	return 0;
}

/* The tokenizer.json written into tmp, loaded as tk-tokenize and
 * transformers load it: a GGUF vocabulary that makes none (a merge of a
 * token it lacks) is refused at import, naming the GGUF file, rather than
 * written out for every later tool to refuse. */
static int check_tokenizer(const char *tmp, const char *input, struct tk_diag *d)
{
	tk_tokenizer_t *t;
	struct tk_diag td;
	if (!tk_tokenizer_load(&t, tmp, &td)) {
		tk_tokenizer_free(t);
		return 0;
	}
	return tk_diag_set(d, TK_E_FORMAT, input, -1, "its vocabulary makes no tokenizer: %s",
			   td.msg);
}

int tk_convert_gguf(const struct tk_convert_opts *o, struct tk_convert_result *r,
		    struct tk_diag *d)
{
	struct conv c = { .o = o, .path = o->input, .d = d };
	struct tk_model_config cfg;
	cJSON *tok = NULL, *tcfg = NULL;
	tk_safetensors_writer_t *w = NULL;
	struct tk_afile_dir dir = { 0 };
	uint64_t n_params = 0;
	int rc, have_dir = 0;

	tk_diag_clear(d);
	if (o->outtype != TK_DT_F32 && o->outtype != TK_DT_F16 && o->outtype != TK_DT_BF16)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "outtype must be F32, F16 or BF16");
	if ((rc = tk_gguf_open(&c.g, o->input, d)))
		return rc;
	if ((rc = resolve_arch(&c)) || (rc = read_config(&c, &cfg)))
		goto out;
	rc = c.a == TK_ARCH_GPT2 ? plan_gpt2(&c) : c.a == TK_ARCH_PHI3 ? plan_phi3(&c)
								    : plan_llama(&c);
	if (rc || (rc = check_unused(&c)))
		goto out;
	if (tk_gguf_find(c.g, "tokenizer.ggml.model") &&
	    (rc = tk_gguf_tokenizer_json(c.g, &tok, &tcfg, d)))
		goto out;
	if ((rc = tk_safetensors_writer_new(&w)) || (rc = tk_safetensors_writer_metadata(w, "format", "pt"))) {
		rc = tk_diag_set(d, TK_E_NOMEM, o->input, -1, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c.nj; i++)
		if ((rc = run_job(&c, &c.jobs[i], w, &n_params)))
			goto out;
	if ((o->force && (rc = tk_path_check_outside(o->input, o->output, d))) ||
	    (rc = tk_afile_dir_open(&dir, o->output, o->force, d)))
		goto out;
	have_dir = 1;
	char *cp = tk_afile_dir_file(&dir, "config.json"), *sp = tk_afile_dir_file(&dir, "model.safetensors");
	if (!cp || !sp)
		rc = tk_diag_set(d, TK_E_NOMEM, o->output, -1, "out of memory");
	if (!rc)
		rc = tk_config_save(&cfg, cp, NULL, 0, d);
	if (!rc) {
		rc = tk_safetensors_writer_commit(w, sp, 0, d);
		w = NULL;
	}
	free(cp);
	free(sp);
	if (!rc && tok)
		rc = write_json(&dir, "tokenizer.json", tok, d);
	if (!rc && tcfg)
		rc = write_json(&dir, "tokenizer_config.json", tcfg, d);
	if (!rc && tok)
		rc = check_tokenizer(dir.tmp, o->input, d);
	if (!rc) {
		cJSON *gc = generation_config(&cfg);
		rc = gc ? write_json(&dir, "generation_config.json", gc, d)
			: tk_diag_set(d, TK_E_NOMEM, o->output, -1, "out of memory");
		cJSON_Delete(gc);
	}
	if (!rc) {
		have_dir = 0;
		rc = tk_afile_dir_commit(&dir, d);
	}
	if (!rc && r) {
		snprintf(r->arch, sizeof(r->arch), "%s", c.arch);
		r->n_tensors = (int)c.nj;
		r->n_params = n_params;
		r->tokenizer = tok != NULL;
	}
out:
	if (have_dir)
		tk_afile_dir_abort(&dir);
	if (w)
		tk_safetensors_writer_free(w);
	for (size_t i = 0; i < c.nb; i++)
		free(c.bufs[i]);
	free(c.bufs);
	free(c.jobs);
	cJSON_Delete(tok);
	cJSON_Delete(tcfg);
	tk_gguf_close(c.g);
	return rc;
}

/* ---- export ---- */

void tk_convert_permute(float *dst, const float *src, int n_head, int head_dim, int64_t cols)
{
	reorder_rows(dst, src, n_head, head_dim, cols, 0);
}

static int is_type(const cJSON *o, const char *type)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
	return cJSON_IsString(t) && !strcmp(t->valuestring, type);
}

static int flag(const cJSON *o, const char *key, int def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* llama.cpp's tokenizer.ggml.pre for a byte-level pre_tokenizer, NULL for
 * one it has no name for. */
static const char *pre_name(const cJSON *pt)
{
	if (is_type(pt, "ByteLevel"))
		return flag(pt, "use_regex", 1) ? "gpt-2" : NULL;
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
	if (!is_type(pt, "Sequence") || cJSON_GetArraySize(l) != 2)
		return NULL;
	const cJSON *a = cJSON_GetArrayItem(l, 0), *b = cJSON_GetArrayItem(l, 1);
	if (!is_type(b, "ByteLevel"))
		return NULL;
	if (is_type(a, "Digits") && flag(a, "individual_digits", 0) && flag(b, "use_regex", 1))
		return "smollm";
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(a, "pattern");
	const cJSON *rx = cJSON_GetObjectItemCaseSensitive(p, "Regex");
	if (!is_type(a, "Split") || !cJSON_IsString(rx) || flag(b, "use_regex", 1))
		return NULL;
	return !strcmp(rx->valuestring, tk_rx_llama3) ? "llama-bpe"
	       : !strcmp(rx->valuestring, tk_rx_qwen2) ? "qwen2" : NULL;
}

/* Whether tokenizer.json tj is a SentencePiece-style BPE (byte fallback,
 * spaces written as U+2581 by a normalizer Replace or a Metaspace
 * pre-tokenizer that does not split), as Llama-2, Mistral and TinyLlama
 * have: llama.cpp's "llama" vocabulary.  *prefix: a U+2581 is prepended
 * to the text (a Prepend normalizer, or Metaspace's "first"/"always"). */
static int spm_style(const cJSON *tj, int *prefix)
{
	static const char sp[] = "\xE2\x96\x81";
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(tj, "model");
	const cJSON *nz = cJSON_GetObjectItemCaseSensitive(tj, "normalizer");
	const cJSON *pt = cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer");
	const cJSON *list = is_type(nz, "Sequence") ? cJSON_GetObjectItemCaseSensitive(nz, "normalizers")
						     : NULL, *e;
	int replace = 0;

	*prefix = 0;
	if (!is_type(m, "BPE") || !flag(m, "byte_fallback", 0))
		return 0;
	for (e = list ? list->child : cJSON_IsNull(nz) ? NULL : nz; e; e = list ? e->next : NULL) {
		const cJSON *pre = cJSON_GetObjectItemCaseSensitive(e, "prepend");
		const cJSON *pat = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(e, "pattern"), "String");
		const cJSON *con = cJSON_GetObjectItemCaseSensitive(e, "content");
		if (is_type(e, "Prepend") && cJSON_IsString(pre) && !strcmp(pre->valuestring, sp))
			*prefix = 1;
		else if (is_type(e, "Replace") && cJSON_IsString(pat) && cJSON_IsString(con) &&
			 !strcmp(pat->valuestring, " ") && !strcmp(con->valuestring, sp))
			replace = 1;
		else
			return 0;
	}
	if (is_type(pt, "Metaspace")) {
		const cJSON *rep = cJSON_GetObjectItemCaseSensitive(pt, "replacement");
		const cJSON *sch = cJSON_GetObjectItemCaseSensitive(pt, "prepend_scheme");
		if (!cJSON_IsString(rep) || strcmp(rep->valuestring, sp) || flag(pt, "split", 1))
			return 0;
		replace = 1;
		*prefix = cJSON_IsString(sch) ? strcmp(sch->valuestring, "never") != 0
					      : flag(pt, "add_prefix_space", 1);
	} else if (pt && !cJSON_IsNull(pt)) {
		return 0;
	}
	return replace;
}

struct xvocab {
	char **tok;
	int32_t *type;
	char **merges;
	size_t nmerges;
	float *score;           /* "llama" vocabularies */
};

static void xvocab_free(struct xvocab *x, int n)
{
	for (int i = 0; x->tok && i < n; i++)
		free(x->tok[i]);
	for (size_t i = 0; i < x->nmerges; i++)
		free(x->merges[i]);
	free(x->tok);
	free(x->type);
	free(x->merges);
	free(x->score);
}

struct tokid {
	const char *s;
	int id;
};

static int by_tok(const void *a, const void *b)
{
	return strcmp(((const struct tokid *)a)->s, ((const struct tokid *)b)->s);
}

/* Scores for llama.cpp's "llama" vocabulary, whose tokenizer merges the
 * adjacent pair whose concatenation scores best: each token that a merge
 * makes scores minus that merge's rank (its first), so that the best score
 * is the merge transformers applies first; single characters, bytes and
 * added tokens score 0 (never made by a merge), and a longer token that no
 * merge makes -1e9 (last).  Byte tokens (<0xNN>) become type 6 and the
 * unknown token type 2, as in Llama's own GGUF files. */
static int spm_scores(struct xvocab *x, int V, const char *unk)
{
	struct tokid *t = malloc((size_t)V * sizeof(*t)), key;
	char *cat = NULL;
	size_t cap = 0;
	int n = 0;

	if (!t || !(x->score = malloc((size_t)V * sizeof(*x->score)))) {
		free(t);
		return TK_E_NOMEM;
	}
	for (int i = 0; i < V; i++) {
		const char *s = x->tok[i];
		size_t len = strlen(s);
		unsigned hex;
		int used = 0;
		x->score[i] = 0.0f;
		if (x->type[i] != 1)
			continue;
		if (len == 6 && sscanf(s, "<0x%2X>%n", &hex, &used) == 1 && used == 6)
			x->type[i] = 6;
		else if (unk && !strcmp(s, unk))
			x->type[i] = 2;
		else
			t[n++] = (struct tokid){ s, i };
		/* more than one UTF-8 character: made by a merge or by none */
		if (x->type[i] == 1 && len > 1 && tk_utf8_valid(s, len) == len &&
		    (size_t)(((unsigned char)s[0] < 0x80 ? 1 : (unsigned char)s[0] < 0xE0 ? 2
						    : (unsigned char)s[0] < 0xF0 ? 3 : 4)) < len)
			x->score[i] = -1e9f;
	}
	qsort(t, (size_t)n, sizeof(*t), by_tok);
	for (size_t r = 0; r < x->nmerges; r++) {
		const char *m = x->merges[r], *spc = strchr(m, ' ');
		size_t la = spc ? (size_t)(spc - m) : 0, lb = spc ? strlen(spc + 1) : 0;
		if (!spc)
			continue;
		if (la + lb + 1 > cap) {
			char *c = realloc(cat, cap = la + lb + 64);
			if (!c) {
				free(cat);
				free(t);
				return TK_E_NOMEM;
			}
			cat = c;
		}
		memcpy(cat, m, la);
		memcpy(cat + la, spc + 1, lb + 1);
		key.s = cat;
		const struct tokid *hit = bsearch(&key, t, (size_t)n, sizeof(*t), by_tok);
		if (hit && x->score[hit->id] == -1e9f)
			x->score[hit->id] = -(float)r;
	}
	free(cat);
	free(t);
	return 0;
}

/* Whether the post-processor puts the EOS token eos last. */
static int adds_eos(const cJSON *tj, const char *eos)
{
	const cJSON *pp = cJSON_GetObjectItemCaseSensitive(tj, "post_processor");
	const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
	int n = cJSON_GetArraySize(single);
	const cJSON *last = n > 1 ? cJSON_GetArrayItem(single, n - 1) : NULL;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(last, "SpecialToken");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(st, "id");
	return eos && cJSON_IsString(id) && !strcmp(id->valuestring, eos);
}

/* Whether the post-processor puts the BOS token id bos first. */
static int adds_bos(const cJSON *tj, const char *bos)
{
	const cJSON *pp = cJSON_GetObjectItemCaseSensitive(tj, "post_processor");
	const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
	const cJSON *first = cJSON_GetArrayItem(single, 0);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(st, "id");
	return bos && cJSON_IsString(id) && !strcmp(id->valuestring, bos);
}

/* The chat template of dir, as llama.cpp's converter finds it:
 * tokenizer_config.json's chat_template string, else chat_template.jinja;
 * written as tokenizer.chat_template.  None is fine. */
static int export_chat_template(const char *dir, tk_gguf_writer_t *w, struct tk_diag *d)
{
	char path[4096];
	struct tk_buf b = { 0 };
	int rc;
	FILE *fp;
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	if ((fp = fopen(path, "rb"))) {
		fclose(fp);
		if ((rc = tk_read_file(path, &b, d)))
			return rc;
		cJSON *j = cJSON_Parse(b.data);
		tk_buf_free(&b);
		if (!j)
			return tk_diag_set(d, TK_E_FORMAT, path, -1, "not valid JSON");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
		if (cJSON_IsString(t))
			tk_gguf_add_str(w, "tokenizer.chat_template", t->valuestring);
		cJSON_Delete(j);
		if (cJSON_IsString(t))
			return 0;
	}
	snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
	if (!(fp = fopen(path, "rb")))
		return 0;
	fclose(fp);
	if ((rc = tk_read_file(path, &b, d)))
		return rc;
	tk_gguf_add_str(w, "tokenizer.chat_template", b.data);
	tk_buf_free(&b);
	return 0;
}

/* tokenizer.json of dir (if any) as tokenizer.ggml.* keys. */
static int export_vocab(const char *dir, const struct tk_model_config *cfg,
			tk_gguf_writer_t *w, int *have, struct tk_diag *d)
{
	char path[4096];
	struct tk_buf b = { 0 };
	struct xvocab x = { 0 };
	int V = cfg->vocab_size, rc;
	cJSON *tj = NULL;
	*have = 0;
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return 0;
	fclose(fp);
	if ((rc = tk_read_file(path, &b, d)))
		return rc;
	tj = cJSON_Parse(b.data);
	tk_buf_free(&b);
	if (!tj)
		return tk_diag_set(d, TK_E_FORMAT, path, -1, "not valid JSON");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(tj, "model");
	const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
	const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
	const cJSON *added = cJSON_GetObjectItemCaseSensitive(tj, "added_tokens");
	const char *pre = pre_name(cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer"));
	const cJSON *unk = cJSON_GetObjectItemCaseSensitive(m, "unk_token");
	int prefix, spm = spm_style(tj, &prefix);
	if (!spm && (!is_type(m, "BPE") || flag(m, "byte_fallback", 0) || !pre)) {
		rc = tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
				 "only byte-level BPE tokenizers (GPT-2, Llama-3, Qwen2, SmolLM) "
				 "and SentencePiece-style BPE with byte fallback (Llama-2, "
				 "Mistral, TinyLlama) can be exported to GGUF");
		goto out;
	}
	if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "model.vocab or model.merges missing");
		goto out;
	}
	x.tok = calloc((size_t)V, sizeof(*x.tok));
	x.type = calloc((size_t)V, sizeof(*x.type));
	x.merges = calloc((size_t)cJSON_GetArraySize(merges) + 1, sizeof(*x.merges));
	rc = TK_E_NOMEM;
	if (!x.tok || !x.type || !x.merges)
		goto oom;
	const cJSON *e;
	for (int pass = 0; pass < 2; pass++) {
		const cJSON *list = pass ? added : vocab;
		cJSON_ArrayForEach(e, list) {
			const cJSON *idj = pass ? cJSON_GetObjectItemCaseSensitive(e, "id") : e;
			const cJSON *cj = cJSON_GetObjectItemCaseSensitive(e, "content");
			const char *s = pass ? (cJSON_IsString(cj) ? cj->valuestring : NULL) : e->string;
			double id = cJSON_IsNumber(idj) ? idj->valuedouble : -1;
			if (!s || id < 0 || id >= V || id != (int)id) {
				rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
						 "token '%.40s' has no id below the model's vocab_size %d",
						 s ? s : "?", V);
				goto out;
			}
			free(x.tok[(int)id]);
			if (!(x.tok[(int)id] = strdup(s)))
				goto oom;
			x.type[(int)id] = !pass ? 1 : flag(e, "special", 0) ? 3 : 4;
		}
	}
	for (int i = 0; i < V; i++)
		if (!x.tok[i]) {
			char pad[32];
			snprintf(pad, sizeof(pad), "[PAD%d]", i);
			if (!(x.tok[i] = strdup(pad)))
				goto oom;
			x.type[i] = 5;
		}
	cJSON_ArrayForEach(e, merges) {
		char *s = NULL;
		if (cJSON_IsString(e)) {
			s = strdup(e->valuestring);
		} else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
			   cJSON_IsString(e->child->next)) {
			size_t la = strlen(e->child->valuestring), lb = strlen(e->child->next->valuestring);
			if ((s = malloc(la + lb + 2)))
				snprintf(s, la + lb + 2, "%s %s", e->child->valuestring,
					 e->child->next->valuestring);
		} else {
			rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "model.merges entry %zu is not a pair",
					 x.nmerges + 1);
			goto out;
		}
		if (!s)
			goto oom;
		x.merges[x.nmerges++] = s;
	}
	if (spm && spm_scores(&x, V, cJSON_IsString(unk) ? unk->valuestring : NULL))
		goto oom;
	tk_gguf_add_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
	tk_gguf_add_str(w, "tokenizer.ggml.pre", spm ? "default" : pre);
	tk_gguf_add_strs(w, "tokenizer.ggml.tokens", (uint64_t)V, (const char *const *)x.tok, NULL);
	if (spm)
		tk_gguf_add_arr(w, "tokenizer.ggml.scores", TK_GGUF_F32, (uint64_t)V, x.score);
	tk_gguf_add_arr(w, "tokenizer.ggml.token_type", TK_GGUF_I32, (uint64_t)V, x.type);
	tk_gguf_add_strs(w, "tokenizer.ggml.merges", x.nmerges, (const char *const *)x.merges, NULL);
	if (spm) {
		tk_gguf_add_bool(w, "tokenizer.ggml.add_space_prefix", prefix);
		for (int i = 0; i < V; i++)
			if (x.type[i] == 2)
				tk_gguf_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)i);
	}
	tk_gguf_add_bool(w, "tokenizer.ggml.add_bos_token",
			 cfg->bos_id >= 0 && cfg->bos_id < V && adds_bos(tj, x.tok[cfg->bos_id]));
	if (cfg->eos_id >= 0 && cfg->eos_id < V && adds_eos(tj, x.tok[cfg->eos_id]))
		tk_gguf_add_bool(w, "tokenizer.ggml.add_eos_token", 1);
	*have = 1;
	rc = export_chat_template(dir, w, d);
	goto out;
oom:
	rc = tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
out:
	xvocab_free(&x, V);
	cJSON_Delete(tj);
	return rc;
}

/* The GGUF name of a Hugging Face tensor name, "" for none. */
static void gguf_name(const struct tk_model_config *c, const char *hf, char *out, size_t n)
{
	/* the first six outside the layers, the others inside */
	static const char *const map[][2] = {
		{ "model.embed_tokens.", "token_embd." }, { "model.norm.", "output_norm." },
		{ "lm_head.", "output." }, { "transformer.wte.", "token_embd." },
		{ "transformer.wpe.", "position_embd." }, { "transformer.ln_f.", "output_norm." },
		{ "self_attn.q_proj.", "attn_q." }, { "self_attn.k_proj.", "attn_k." },
		{ "self_attn.v_proj.", "attn_v." }, { "self_attn.o_proj.", "attn_output." },
		{ "mlp.gate_proj.", "ffn_gate." }, { "mlp.up_proj.", "ffn_up." },
		{ "mlp.down_proj.", "ffn_down." }, { "input_layernorm.", "attn_norm." },
		{ "post_attention_layernorm.", "ffn_norm." }, { "ln_1.", "attn_norm." },
		{ "ln_2.", "ffn_norm." }, { "attn.c_attn.", "attn_qkv." },
		{ "attn.c_proj.", "attn_output." }, { "mlp.c_fc.", "ffn_up." },
		{ "mlp.c_proj.", "ffn_down." }, { "self_attn.q_norm.", "attn_q_norm." },
		{ "self_attn.k_norm.", "attn_k_norm." }, { "self_attn.qkv_proj.", "attn_qkv." },
		{ "mlp.gate_up_proj.", "ffn_up." },
	};
	/* Gemma's sandwich norms, before the Llama family's names */
	static const char *const gemma[][2] = {
		{ "post_attention_layernorm.", "post_attention_norm." },
		{ "pre_feedforward_layernorm.", "ffn_norm." },
		{ "post_feedforward_layernorm.", "post_ffw_norm." },
	};
	int l, pos = -1;
	const char *rest = hf;
	char blk[32] = "";
	if (sscanf(hf, c->arch == TK_ARCH_GPT2 ? "transformer.h.%d.%n" : "model.layers.%d.%n",
		   &l, &pos) == 1 && pos > 0) {
		rest = hf + pos;
		snprintf(blk, sizeof(blk), "blk.%d.", l);
	}
	out[0] = '\0';
	for (size_t i = 0; blk[0] && c->sandwich_norm && i < 3; i++) {
		size_t k = strlen(gemma[i][0]);
		if (!strncmp(rest, gemma[i][0], k)) {
			snprintf(out, n, "%s%s%s", blk, gemma[i][1], rest + k);
			return;
		}
	}
	for (size_t i = blk[0] ? 6 : 0; i < (blk[0] ? sizeof(map) / sizeof(map[0]) : 6); i++) {
		size_t k = strlen(map[i][0]);
		if (!strncmp(rest, map[i][0], k)) {
			snprintf(out, n, "%s%s%s", blk, map[i][1], rest + k);
			return;
		}
	}
}

/* Whether llama.cpp's gemma2 / gemma3 computes what c does: its fixed
 * layer layout (sliding every 2nd, or all but every 6th), its attention
 * scale (as gemma_config derives it), no attention bias, Gemma-3 without
 * soft-caps.  Else TK_E_UNSUPPORTED with what differs in why. */
static int gemma_exportable(const struct tk_model_config *c, char *why, size_t n)
{
	int g3 = c->arch == TK_ARCH_GEMMA3, big = c->n_layer == (g3 ? 62 : 46);
	float qp = (float)(big ? c->hidden / c->n_head : c->head_dim);
	for (int l = 0; l < c->n_layer; l++)
		if (!c->layer_window[l] != !((l + 1) % (g3 ? 6 : 2))) {
			snprintf(why, n, "layer %d %s", l,
				 c->layer_window[l] ? "sliding" : "full");
			return TK_E_UNSUPPORTED;
		}
	if (c->query_pre_attn_scalar != qp)
		snprintf(why, n, "query_pre_attn_scalar %g (llama.cpp: %g)",
			 (double)c->query_pre_attn_scalar, (double)qp);
	else if (c->attn_bias)
		snprintf(why, n, "attention biases");
	else if (g3 && (c->attn_softcap > 0 || c->final_softcap > 0))
		snprintf(why, n, "soft-capping");
	else if (!g3 && !(c->attn_softcap > 0 && c->final_softcap > 0))
		snprintf(why, n, "a soft-cap of null");
	else
		return 0;
	return TK_E_UNSUPPORTED;
}

static void export_hparams(const struct tk_model_config *c, const char *arch, const char *name,
			   int ftype, tk_gguf_writer_t *w)
{
	char k[96];
#define KEY(s) (snprintf(k, sizeof(k), "%s.%s", arch, s), k)
	tk_gguf_add_str(w, "general.architecture", arch);
	tk_gguf_add_str(w, "general.name", name);
	tk_gguf_add_u32(w, KEY("vocab_size"), (uint32_t)c->vocab_size);
	tk_gguf_add_u32(w, KEY("context_length"), (uint32_t)c->max_pos);
	tk_gguf_add_u32(w, KEY("embedding_length"), (uint32_t)c->hidden);
	tk_gguf_add_u32(w, KEY("block_count"), (uint32_t)c->n_layer);
	tk_gguf_add_u32(w, KEY("feed_forward_length"), (uint32_t)c->intermediate);
	tk_gguf_add_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head);
	if (c->arch == TK_ARCH_GPT2) {
		tk_gguf_add_f32(w, KEY("attention.layer_norm_epsilon"), c->norm_eps);
	} else {
		tk_gguf_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_head);
		tk_gguf_add_f32(w, KEY("rope.freq_base"), c->rope_theta);
		tk_gguf_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
		tk_gguf_add_u32(w, KEY("rope.dimension_count"), (uint32_t)c->rotary_dim);
		if (c->head_dim * c->n_head != c->hidden) {
			tk_gguf_add_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim);
			tk_gguf_add_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim);
		}
		if ((c->arch == TK_ARCH_MISTRAL || c->sandwich_norm) && c->sliding_window > 0)
			tk_gguf_add_u32(w, KEY("attention.sliding_window"),
					(uint32_t)c->sliding_window);
		if (c->arch == TK_ARCH_GEMMA2) {
			tk_gguf_add_f32(w, KEY("attn_logit_softcapping"), c->attn_softcap);
			tk_gguf_add_f32(w, KEY("final_logit_softcapping"), c->final_softcap);
		}
		if (c->arch == TK_ARCH_GEMMA3)
			tk_gguf_add_f32(w, KEY("rope.freq_base_swa"), c->rope_local_theta);
		if (c->arch == TK_ARCH_PHI3) { /* as Phi3MiniModel writes them */
			tk_gguf_add_u32(w, KEY("rope.scaling.original_context_length"),
					(uint32_t)c->rope.orig_max_pos);
			tk_gguf_add_u32(w, KEY("attention.sliding_window"),
					(uint32_t)c->sliding_window);
		}
		if (c->rope.type == TK_ROPE_LONGROPE) {
			float inv[TK_ROPE_MAX_PAIRS], scale;
			tk_rope_table(c, 0, inv, &scale);
			tk_gguf_add_f32(w, KEY("rope.scaling.attn_factor"), scale);
		}
	}
#undef KEY
	tk_gguf_add_u32(w, "general.file_type", (uint32_t)ftype);
	tk_gguf_add_u32(w, "general.quantization_version", 2);
}

/* One tensor of m into w under its GGUF name. */
static int export_tensor(const struct tk_model *m, const struct tk_model_tensor *t, int outtype,
			 tk_gguf_writer_t *w, const char *path, struct tk_diag *d)
{
	const struct tk_model_config *c = &m->cfg;
	char name[128];
	gguf_name(c, t->name, name, sizeof(name));
	if (!name[0])
		return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
				   "tensor '%s' has no GGUF name (tk-convert does not know it)",
				   t->name);
	int64_t rows = t->ndim == 2 ? (t->conv1d ? t->shape[1] : t->shape[0]) : t->shape[0];
	int64_t cols = t->ndim == 2 ? (int64_t)t->n / rows : 1;
	const float *src = m->params + t->off;
	float *tmp = NULL;
	int perm_q = strstr(name, ".attn_q.") != NULL, perm_k = strstr(name, ".attn_k.") != NULL;
	if (c->norm_offset != 0 && t->ndim == 1 && strstr(name, "norm.weight")) {
		/* Gemma: llama.cpp's RMSNorm multiplies by the stored weight */
		if (!(tmp = tk_mallocn(t->n, sizeof(float))))
			return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
		for (size_t i = 0; i < t->n; i++)
			tmp[i] = src[i] + c->norm_offset;
		src = tmp;
	}
	if ((c->arch == TK_ARCH_LLAMA || c->arch == TK_ARCH_MISTRAL) && (perm_q || perm_k)) {
		if (!(tmp = tk_mallocn(t->n, sizeof(float))))
			return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
		tk_convert_permute(tmp, src, perm_q ? c->n_head : c->n_kv_head, c->head_dim, cols);
		src = tmp;
	}
	int type = TK_GGML_F32;
	if (t->ndim == 2 && strcmp(name, "position_embd.weight"))
		type = outtype;
	if (cols % tk_ggml_block_size(type))
		type = TK_GGML_F16;
	uint64_t nbytes = (uint64_t)t->n / (uint64_t)tk_ggml_block_size(type) *
			  (uint64_t)tk_ggml_type_size(type);
	void *buf = malloc(nbytes ? (size_t)nbytes : 1);
	if (!buf) {
		free(tmp);
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	}
	tk_ggml_quantize(type, src, buf, t->n);
	free(tmp);
	int64_t ne[2] = { cols, rows };
	tk_gguf_add_tensor(w, name, type, t->ndim, t->ndim == 2 ? ne : &rows, buf, nbytes, 1);
	return 0;
}

/* LongRoPE's factors as llama.cpp's converter writes them for phi3:
 * rope_factors_long.weight and rope_factors_short.weight, F32. */
static int export_rope_factors(const struct tk_model_config *c, tk_gguf_writer_t *w,
			       const char *path, struct tk_diag *d)
{
	int64_t n = c->rope.n_factors;
	uint64_t nbytes = (uint64_t)n * sizeof(float);
	const float *src[2] = { c->rope.long_factor, c->rope.short_factor };
	const char *names[2] = { "rope_factors_long.weight", "rope_factors_short.weight" };
	for (int k = 0; k < 2; k++) {
		void *buf = malloc((size_t)nbytes);
		if (!buf)
			return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
		memcpy(buf, src[k], (size_t)nbytes);
		tk_gguf_add_tensor(w, names[k], TK_GGML_F32, 1, &n, buf, nbytes, 1);
	}
	return 0;
}

void tk_convert_export_opts_init(struct tk_convert_export_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->outtype = TK_GGML_F32;
}

const struct tk_opt_choice tk_convert_outtypes[] = {
	{ "f32", TK_GGML_F32 }, { "f16", TK_GGML_F16 }, { "bf16", TK_GGML_BF16 },
	{ "q8_0", TK_GGML_Q8_0 }, { "q4_0", TK_GGML_Q4_0 }, { NULL, 0 },
};

int tk_convert_export(const struct tk_convert_export_opts *o, struct tk_convert_result *r,
		      struct tk_diag *d)
{
	static const int ftypes[][2] = {
		{ TK_GGML_F32, 0 }, { TK_GGML_F16, 1 }, { TK_GGML_Q4_0, 2 }, { TK_GGML_Q8_0, 7 },
		{ TK_GGML_BF16, 32 },
	};
	struct tk_backend be = { 0 };
	struct tk_model m = { 0 };
	tk_gguf_writer_t *w = NULL;
	int ftype = -1, rc, have_vocab = 0;
	uint64_t n_params = 0;

	tk_diag_clear(d);
	for (size_t i = 0; i < sizeof(ftypes) / sizeof(ftypes[0]); i++)
		if (ftypes[i][0] == o->outtype)
			ftype = ftypes[i][1];
	if (ftype < 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "outtype must be F32, F16, BF16, Q8_0 or Q4_0");
	if ((rc = tk_backend_cpu_init(&be, 1, d)))
		return rc;
	if ((rc = tk_model_load(&m, o->input, &be, d)))
		goto out;
	const struct tk_model_config *c = &m.cfg;
	const char *arch = c->arch == TK_ARCH_GPT2 ? "gpt2" : c->arch == TK_ARCH_QWEN2 ? "qwen2"
			   : c->arch == TK_ARCH_QWEN3 ? "qwen3" : c->arch == TK_ARCH_PHI3 ? "phi3"
			   : c->arch == TK_ARCH_GEMMA2 ? "gemma2"
			   : c->arch == TK_ARCH_GEMMA3 ? "gemma3" : "llama";
	if (c->arch == TK_ARCH_SMOLLM3) {
		rc = tk_diag_set(d, TK_E_UNSUPPORTED, o->input, -1,
				 "smollm3 (layers without RoPE) cannot be exported to GGUF yet");
		goto out;
	}
	if (c->arch == TK_ARCH_GEMMA2 || c->arch == TK_ARCH_GEMMA3) {
		char why[160];
		if ((rc = gemma_exportable(c, why, sizeof(why)))) {
			rc = tk_diag_set(d, TK_E_UNSUPPORTED, o->input, -1,
					 "%s with %s cannot be exported to GGUF (llama.cpp's %s "
					 "has no key for it)", c->model_type, why, arch);
			goto out;
		}
	}
	if (c->arch == TK_ARCH_PHI3 && c->head_dim * c->n_head != c->hidden) {
		rc = tk_diag_set(d, TK_E_UNSUPPORTED, o->input, -1,
				 "phi3 with head_dim %d apart from hidden_size / num_attention_heads "
				 "cannot be exported: llama.cpp's phi3 takes no other", c->head_dim);
		goto out;
	}
	/* (phi3: its window is written as llama.cpp's converter writes it,
	 * attention.sliding_window, which llama.cpp reads and then disables) */
	for (int l = 0; c->arch != TK_ARCH_MISTRAL && c->arch != TK_ARCH_PHI3 && !c->sandwich_norm &&
	     l < c->n_layer; l++)
		if (c->layer_window[l] > 0) {
			/* llama.cpp's qwen2 and qwen3 have no window: it would
			 * attend to every key */
			rc = tk_diag_set(d, TK_E_UNSUPPORTED, o->input, -1,
					 "%s with sliding-window layers (layer_types) cannot be "
					 "exported to GGUF yet",
					 arch);
			goto out;
		}
	if (c->pos == TK_POS_ROPE && c->rope.type != TK_ROPE_DEFAULT &&
	    !(c->arch == TK_ARCH_PHI3 && c->rope.type == TK_ROPE_LONGROPE)) {
		/* llama.cpp keys each scaling its own way (rope_freqs.weight for
		 * llama3, rope.scaling.* for the others); not written yet */
		rc = tk_diag_set(d, TK_E_UNSUPPORTED, o->input, -1,
				 "rope_parameters with a rope_type other than default cannot be "
				 "exported to GGUF yet");
		goto out;
	}
	char base[256];
	const char *name = o->name;
	if (!name) {
		size_t n = strlen(o->input);
		while (n > 1 && o->input[n - 1] == '/')
			n--;
		const char *s = o->input + n;
		while (s > o->input && s[-1] != '/')
			s--;
		snprintf(base, sizeof(base), "%.*s", (int)(o->input + n - s), s);
		name = base;
	}
	if (!(w = tk_gguf_writer_new())) {
		rc = tk_diag_set(d, TK_E_NOMEM, o->input, -1, "out of memory");
		goto out;
	}
	export_hparams(c, arch, name, ftype, w);
	if ((rc = export_vocab(o->input, c, w, &have_vocab, d)))
		goto out;
	/* the special ids also without a vocabulary: import reads them back */
	int64_t ids[3] = { c->bos_id, c->eos_id, c->pad_id };
	static const char *const keys[3] = { "tokenizer.ggml.bos_token_id",
					     "tokenizer.ggml.eos_token_id",
					     "tokenizer.ggml.padding_token_id" };
	for (int i = 0; i < 3; i++)
		if (ids[i] >= 0 && ids[i] < c->vocab_size)
			tk_gguf_add_u32(w, keys[i], (uint32_t)ids[i]);
	for (int i = 0; i < m.n_tensors; i++) {
		if ((rc = export_tensor(&m, &m.tensors[i], o->outtype, w, o->input, d)))
			goto out;
		n_params += m.tensors[i].n;
	}
	/* phi3's LongRoPE (the other scalings were refused above) */
	if (c->rope.type == TK_ROPE_LONGROPE && (rc = export_rope_factors(c, w, o->input, d)))
		goto out;
	rc = tk_gguf_writer_commit(w, o->output, o->force, d);
	w = NULL;
	if (!rc && r) {
		snprintf(r->arch, sizeof(r->arch), "%s", arch);
		r->n_tensors = m.n_tensors;
		r->n_params = n_params;
		r->tokenizer = have_vocab;
	}
out:
	tk_gguf_writer_free(w);
	tk_model_free(&m);
	tk_backend_free(&be);
	return rc;
}

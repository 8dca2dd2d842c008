/* peft.c - PEFT LoRA adapter directories (see peft.h). */
#include "model/peft.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/afile.h"
#include "base/path.h"
#include "formats/bnb.h"
#include "formats/hf-dir.h"
#include "model/model.h"
#include "formats/safetensors.h"

#define PREFIX "base_model.model."
#define CONFIG_FILE "adapter_config.json"
#define WEIGHTS_FILE "adapter_model.safetensors"
#define PEFT_VERSION "0.21.0"

/* Keys peft writes that tk reads and uses. */
static const char *const used_keys[] = {
	"peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias",
	"fan_in_fan_out", "use_rslora", "modules_to_save", "base_model_name_or_path",
	"init_lora_weights", "use_dora", "ensure_weight_tying", NULL,
};

/* Keys that do not change what the adapter computes: bookkeeping, and
 * settings that only matter together with a key checked elsewhere. */
static const char *const ignored_keys[] = {
	"inference_mode", "revision", "peft_version", "auto_mapping", "megatron_core",
	"qalora_group_size", "layers_pattern", NULL,
};

static int in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (!strcmp(*list, s))
			return 1;
	return 0;
}

/* null, false, 0-free containers: the value of an option that is off. */
static int is_off(const cJSON *v)
{
	if (cJSON_IsNull(v) || cJSON_IsFalse(v))
		return 1;
	if ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child)
		return 1;
	return 0;
}

/* Reads a list of module names (or null) into names[][TK_LORA_NAME].
 * Entries that do not fit (too many, too long) make *collapse 1. */
static int read_names(const cJSON *v, const char *key, const char *path,
		      char names[][TK_LORA_NAME], int *n, int *too_many, struct tk_diag *d)
{
	const cJSON *e;
	int k = 0;

	*n = 0;
	*too_many = 0;
	if (cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsArray(v))
		return tk_diag_set(d, TK_E_FORMAT, path, -1, "%s: expected a list of module names",
				   key);
	cJSON_ArrayForEach(e, v) {
		if (!cJSON_IsString(e) || !e->valuestring[0])
			return tk_diag_set(d, TK_E_FORMAT, path, -1,
					   "%s: expected a list of module names", key);
		if (k >= TK_LORA_MAX_TARGETS || strlen(e->valuestring) >= TK_LORA_NAME) {
			*too_many = 1;
			continue;
		}
		strcpy(names[k++], e->valuestring);
	}
	*n = k;
	return 0;
}

/* Replaces the list by the distinct last components of its entries
 * ("model.layers.0.self_attn.q_proj" -> "q_proj"): peft writes an
 * "all-linear" adapter with every module path listed, which can be
 * hundreds.  tk_peft_load checks that the modules matched afterwards are
 * exactly the ones the full list names. */
static int collapse_names(const cJSON *v, const char *key, const char *path,
			  char names[][TK_LORA_NAME], int *n, struct tk_diag *d)
{
	const cJSON *e;
	int k = 0;

	cJSON_ArrayForEach(e, v) {
		const char *s = strrchr(e->valuestring, '.');
		int j;

		s = s ? s + 1 : e->valuestring;
		for (j = 0; j < k && strcmp(names[j], s); j++)
			;
		if (j < k)
			continue;
		if (k >= TK_LORA_MAX_TARGETS || strlen(s) >= TK_LORA_NAME)
			return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
					   "%s: more than %d distinct module names", key,
					   TK_LORA_MAX_TARGETS);
		strcpy(names[k++], s);
	}
	*n = k;
	return 0;
}

static int get_number(const cJSON *v, const char *key, const char *path, double *out,
		      struct tk_diag *d)
{
	if (!cJSON_IsNumber(v))
		return tk_diag_set(d, TK_E_FORMAT, path, -1, "%s: expected a number", key);
	*out = v->valuedouble;
	return 0;
}

static int get_bool(const cJSON *v, const char *key, const char *path, int *out,
		    struct tk_diag *d)
{
	if (!cJSON_IsBool(v))
		return tk_diag_set(d, TK_E_FORMAT, path, -1, "%s: expected true or false", key);
	*out = cJSON_IsTrue(v);
	return 0;
}

/* One key of adapter_config.json into c. */
static int read_key(const cJSON *v, const char *key, const char *path, struct tk_lora_config *c,
		    struct tk_diag *d)
{
	double x = 0;
	int err, too_many;

	if (!strcmp(key, "peft_type")) {
		if (!cJSON_IsString(v))
			return tk_diag_set(d, TK_E_FORMAT, path, -1, "peft_type: expected a string");
		if (strcmp(v->valuestring, "LORA"))
			return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
					   "peft_type %s is not supported (tk reads LORA adapters)",
					   v->valuestring);
	} else if (!strcmp(key, "task_type")) {
		if (!cJSON_IsNull(v) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "CAUSAL_LM")))
			return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
					   "task_type %s is not supported (tk reads CAUSAL_LM adapters)",
					   cJSON_IsString(v) ? v->valuestring : "(not a string)");
	} else if (!strcmp(key, "r")) {
		if ((err = get_number(v, key, path, &x, d)))
			return err;
		if (x <= 0 || x != floor(x) || x > 1 << 20)
			return tk_diag_set(d, TK_E_FORMAT, path, -1,
					   "r: %g is not a positive whole number", x);
		c->r = (int)x;
	} else if (!strcmp(key, "lora_alpha")) {
		if ((err = get_number(v, key, path, &c->alpha, d)))
			return err;
		if (!(c->alpha > 0))
			return tk_diag_set(d, TK_E_FORMAT, path, -1, "lora_alpha: %g is not positive",
					   c->alpha);
	} else if (!strcmp(key, "lora_dropout")) {
		if ((err = get_number(v, key, path, &c->dropout, d)))
			return err;
		if (!(c->dropout >= 0 && c->dropout < 1))
			return tk_diag_set(d, TK_E_FORMAT, path, -1,
					   "lora_dropout: %g is not in [0, 1)", c->dropout);
	} else if (!strcmp(key, "target_modules")) {
		if (cJSON_IsString(v)) {
			if (strcmp(v->valuestring, "all-linear"))
				return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
						   "target_modules: a regular expression (\"%s\") "
						   "is not supported; list the module names",
						   v->valuestring);
			strcpy(c->targets[0], "all-linear");
			c->n_targets = 1;
			return 0;
		}
		if ((err = read_names(v, key, path, c->targets, &c->n_targets, &too_many, d)))
			return err;
		if (too_many)
			return collapse_names(v, key, path, c->targets, &c->n_targets, d);
	} else if (!strcmp(key, "modules_to_save")) {
		if ((err = read_names(v, key, path, c->modules_to_save, &c->n_modules_to_save,
				      &too_many, d)))
			return err;
		if (too_many)
			return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
					   "modules_to_save: more than %d modules",
					   TK_LORA_MAX_TARGETS);
	} else if (!strcmp(key, "bias")) {
		if (!cJSON_IsString(v) || tk_lora_bias_parse(v->valuestring, &c->bias))
			return tk_diag_set(d, TK_E_FORMAT, path, -1,
					   "bias: expected \"none\", \"all\" or \"lora_only\"");
	} else if (!strcmp(key, "fan_in_fan_out")) {
		return get_bool(v, key, path, &c->fan_in_fan_out, d);
	} else if (!strcmp(key, "use_rslora")) {
		return get_bool(v, key, path, &c->use_rslora, d);
	} else if (!strcmp(key, "use_dora")) {
		return get_bool(v, key, path, &c->use_dora, d);
	} else if (!strcmp(key, "ensure_weight_tying")) {
		return get_bool(v, key, path, &c->ensure_weight_tying, d);
	} else if (!strcmp(key, "base_model_name_or_path")) {
		if (cJSON_IsString(v))
			snprintf(c->base_model, sizeof(c->base_model), "%s", v->valuestring);
		else if (!cJSON_IsNull(v))
			return tk_diag_set(d, TK_E_FORMAT, path, -1,
					   "base_model_name_or_path: expected a string");
	} else if (!strcmp(key, "init_lora_weights")) {
		/* How A and B were initialised does not matter once they are
		 * loaded, except for methods that also rewrite the base weights
		 * (pissa, olora, loftq, eva, corda...). */
		if (!cJSON_IsBool(v) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "gaussian")))
			return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
					   "init_lora_weights %s is not supported (it changes the "
					   "base weights)",
					   cJSON_IsString(v) ? v->valuestring : "(not a string)");
	}
	return 0;
}

static int parse_config(const char *json, const char *path, struct tk_lora_config *c,
			cJSON **root_out, struct tk_diag *d)
{
	cJSON *root = cJSON_Parse(json);
	const cJSON *v;
	int err = 0, have_type = 0;

	tk_lora_config_init(c);
	if (!root || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return tk_diag_set(d, TK_E_FORMAT, path, -1, "not a JSON object");
	}
	cJSON_ArrayForEach(v, root) {
		const char *key = v->string;

		if (!strcmp(key, "peft_type"))
			have_type = 1;
		if (in_list(used_keys, key))
			err = read_key(v, key, path, c, d);
		else if (!in_list(ignored_keys, key) && !is_off(v))
			err = tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
					  "%s is not supported (tk implements plain LoRA)", key);
		if (err)
			break;
	}
	if (!err && !have_type)
		err = tk_diag_set(d, TK_E_FORMAT, path, -1, "no peft_type: not a PEFT adapter config");
	if (!err && !strcmp(c->targets[0], "all-linear") && c->n_targets > 1)
		err = tk_diag_set(d, TK_E_FORMAT, path, -1, "target_modules: all-linear and others");
	if (err || !root_out)
		cJSON_Delete(root);
	else
		*root_out = root;
	return err;
}

/* peft.h */
int tk_peft_read_config(const char *dir, struct tk_lora_config *c, struct tk_diag *d)
{
	char path[PATH_MAX];
	struct tk_buf b = { 0 };
	int err;

	if (tk_path_join(path, sizeof(path), dir, CONFIG_FILE))
		return tk_diag_set(d, TK_E_INVAL, dir, -1, "path too long");
	if ((err = tk_read_file(path, &b, d)))
		return err;
	err = parse_config(b.data, path, c, NULL, d);
	tk_buf_free(&b);
	return err;
}

/* ---- mapping between PEFT keys and tk's tensors ---- */

/* The model's tensor for an HF name; GPT-2 models loaded without the
 * "transformer." prefix are found either way. */
static const struct tk_model_tensor *find_tensor(const struct tk_model *m, const char *name)
{
	const struct tk_model_tensor *t = tk_model_find(m, name);

	if (!t && m->cfg.arch == TK_ARCH_GPT2 && !strncmp(name, "transformer.", 12))
		t = tk_model_find(m, name + 12);
	return t;
}

/* The model's tensor for a base key of an adapter file: find_tensor's,
 * or, when the lm head is tied to the embedding and the adapter ties the
 * saved embedding to it (ensure_weight_tying), the embedding for
 * "lm_head.weight", which peft saves as a second copy. */
static const struct tk_model_tensor *base_tensor(const struct tk_model *m, const char *name,
						 int ensure_tying)
{
	if (ensure_tying && m->cfg.tie_embeddings && !strcmp(name, "lm_head.weight"))
		return tk_model_embedding(m);
	return find_tensor(m, name);
}

/* The module path as peft names it (with GPT-2's "transformer."). */
static void peft_module(const struct tk_model *m, const char *name, char *out, size_t n)
{
	if (m->cfg.arch == TK_ARCH_GPT2 && strncmp(name, "transformer.", 12) &&
	    strncmp(name, "lm_head", 7))
		snprintf(out, n, "transformer.%s", name);
	else
		snprintf(out, n, "%s", name);
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

/* Out and in features of the linear layer module (HF path), from its
 * weight; 0 when the model has no such layer. */
static int linear_shape(const struct tk_model *m, const char *module, int64_t *out, int64_t *in)
{
	char name[300];
	const struct tk_model_tensor *t;

	snprintf(name, sizeof(name), "%s.weight", module);
	t = find_tensor(m, name);
	if (!t || t->ndim != 2)
		return 0;
	*out = t->conv1d ? t->shape[1] : t->shape[0];
	*in = t->conv1d ? t->shape[0] : t->shape[1];
	return 1;
}

static void shape_str(char *out, size_t n, int ndim, const int64_t *shape)
{
	size_t k = (size_t)snprintf(out, n, "[");
	for (int i = 0; i < ndim && k < n; i++)
		k += (size_t)snprintf(out + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
	if (k < n)
		snprintf(out + k, n - k, "]");
}

static int same_shape(const struct tk_tensor_info *ti, int ndim, const int64_t *shape)
{
	if (ti->ndim != ndim)
		return 0;
	for (int i = 0; i < ndim; i++)
		if (ti->shape[i] != shape[i])
			return 0;
	return 1;
}

static int shape_mismatch(struct tk_diag *d, const char *path, const char *what,
			  const struct tk_tensor_info *ti, int ndim, const int64_t *shape)
{
	char a[64], b[64];

	shape_str(a, sizeof(a), ti->ndim, ti->shape);
	shape_str(b, sizeof(b), ndim, shape);
	return tk_diag_set(d, TK_E_MISMATCH, path, -1,
			   "%s: adapter has %s %s, the model needs %s (was this adapter trained "
			   "on another base model?)", what, ti->name, a, b);
}

enum key_kind { KEY_A, KEY_B, KEY_M, KEY_BASE };

#define MAG ".lora_magnitude_vector"

/* Splits an adapter key: lora_A / lora_B of a module (module set), or a
 * base tensor saved with the adapter (name set to the model's HF name:
 * "base_layer." and "modules_to_save." dropped as peft drops them when it
 * loads).  TK_E_FORMAT for a key without peft's prefix. */
static int split_key(const char *key, const char *path, enum key_kind *kind, char *module,
		     size_t n, struct tk_diag *d)
{
	const char *s = key;
	size_t len;

	if (strncmp(s, PREFIX, strlen(PREFIX)))
		return tk_diag_set(d, TK_E_FORMAT, path, -1,
				   "tensor %s: expected a name starting with \"" PREFIX "\"", key);
	s += strlen(PREFIX);
	len = strlen(s);
	if (len >= n)
		return tk_diag_set(d, TK_E_FORMAT, path, -1, "tensor %s: name too long", key);
	if (ends_with(s, ".lora_A.weight") || ends_with(s, ".lora_B.weight")) {
		*kind = s[len - 8] == 'A' ? KEY_A : KEY_B;
		memcpy(module, s, len - 14);
		module[len - 14] = 0;
		return 0;
	}
	if (ends_with(s, MAG)) { /* DoRA's magnitude */
		*kind = KEY_M;
		memcpy(module, s, len - strlen(MAG));
		module[len - strlen(MAG)] = 0;
		return 0;
	}
	if (strstr(s, ".lora_"))
		return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
				   "tensor %s is not a plain LoRA matrix", key);
	*kind = KEY_BASE;
	char *o = module;
	while (*s) {
		if (!strncmp(s, ".base_layer.", 12))
			s += 11;
		else if (!strncmp(s, ".modules_to_save.", 17))
			s += 16;
		else if (!strncmp(s, ".original_module.", 17))
			return tk_diag_set(d, TK_E_FORMAT, path, -1,
					   "tensor %s: the original of a module to save", key);
		*o++ = *s++;
	}
	*o = 0;
	return 0;
}

static int float_dtype(enum tk_dtype t)
{
	return t == TK_DT_F32 || t == TK_DT_F16 || t == TK_DT_BF16 || t == TK_DT_F64;
}

/* Pass 1, before anything changes: every tensor of the file belongs to the
 * model, with the right shape and a float dtype; *widen is set when one
 * replaces a base tensor held 16-bit (TK_LOAD_HALF), which must then be
 * fp32. */
static int check_file(const struct tk_model *m, const tk_safetensors_t *st, const char *path, int r,
		      int ensure_tying, int *widen, struct tk_diag *d)
{
	char module[256];
	enum key_kind kind;
	int err;

	for (size_t i = 0; i < tk_safetensors_count(st); i++) {
		const struct tk_tensor_info *ti = tk_safetensors_at(st, i);
		int64_t shape[2], out, in;
		const struct tk_model_tensor *t;

		if ((err = split_key(ti->name, path, &kind, module, sizeof(module), d)))
			return err;
		if (!float_dtype(ti->dtype))
			return tk_diag_set(d, TK_E_FORMAT, path, -1,
					   "tensor %s: dtype %s, expected F32, F16 or BF16",
					   ti->name, tk_dtype_name(ti->dtype));
		if (kind == KEY_BASE) {
			t = base_tensor(m, module, ensure_tying);
			if (!t && m->cfg.tie_embeddings && !strcmp(module, "lm_head.weight"))
				return tk_diag_set(d, TK_E_MISMATCH, path, -1,
						   "tensor %s: the model's lm_head is tied to its token "
						   "embedding (was this adapter trained on another base "
						   "model? or does it save the head apart, modules_to_save "
						   "lm_head without ensure_weight_tying, which tk does not "
						   "do?)", ti->name);
			if (!t)
				return tk_diag_set(d, TK_E_MISMATCH, path, -1,
						   "tensor %s: the model has no %s (was this adapter "
						   "trained on another base model?)", ti->name, module);
			if (t->q && tk_qkind_half(t->q->kind))
				*widen = 1;
			else if (t->q)
				return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
						   "tensor %s: %s is quantized in the model",
						   ti->name, module);
			if (!same_shape(ti, t->ndim, t->shape))
				return shape_mismatch(d, path, module, ti, t->ndim, t->shape);
			continue;
		}
		if (!linear_shape(m, module, &out, &in))
			return tk_diag_set(d, TK_E_MISMATCH, path, -1,
					   "tensor %s: the model has no linear layer %s (was this "
					   "adapter trained on another base model?)", ti->name, module);
		shape[0] = kind == KEY_A ? r : out;
		shape[1] = kind == KEY_A ? in : r;
		if (!same_shape(ti, kind == KEY_M ? 1 : 2, shape))
			return shape_mismatch(d, path, module, ti, kind == KEY_M ? 1 : 2, shape);
	}
	return 0;
}

/* peft's matching of a module path against a target list entry. */
static int target_matches(const char *module, const char *target)
{
	size_t a = strlen(module), b = strlen(target);

	if (!strcmp(module, target))
		return 1;
	return a > b && module[a - b - 1] == '.' && !strcmp(module + a - b, target);
}

/* After a collapsed target list: the adapters attached are exactly the
 * modules the config's full list names. */
static int check_targets(const struct tk_model *m, const cJSON *root, const char *path,
			 struct tk_diag *d)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "target_modules");
	const struct tk_lora *l = m->lora;
	char module[256];

	if (!cJSON_IsArray(list))
		return 0;
	for (int i = 0; i < l->n_ad; i++) {
		const cJSON *e;
		int hit = 0;

		peft_module(m, l->ad[i].module, module, sizeof(module));
		cJSON_ArrayForEach(e, list)
			if (target_matches(module, e->valuestring))
				hit = 1;
		if (!hit)
			return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
					   "target_modules: adapts only some of the modules named "
					   "%s; tk cannot adapt a subset of them",
					   strrchr(module, '.') ? strrchr(module, '.') + 1 : module);
	}
	return 0;
}

/* The adapter tensor of module: lora_A ('A'), lora_B ('B') or DoRA's
 * magnitude ('M'). */
static const struct tk_tensor_info *lora_tensor(const struct tk_model *m, const tk_safetensors_t *st,
						const char *module, char ab)
{
	char mod[256], key[400];

	peft_module(m, module, mod, sizeof(mod));
	if (ab == 'M')
		snprintf(key, sizeof(key), PREFIX "%s" MAG, mod);
	else
		snprintf(key, sizeof(key), PREFIX "%s.lora_%c.weight", mod, ab);
	return tk_safetensors_find(st, key);
}

/* Pass 2: the adapters' matrices and the saved base tensors into m. */
static int copy_tensors(struct tk_model *m, const tk_safetensors_t *st, const char *path,
			struct tk_diag *d)
{
	struct tk_lora *l = m->lora;
	char module[256];
	enum key_kind kind;
	int err;

	for (int i = 0; i < l->n_ad; i++) {
		const struct tk_lora_adapter *ad = &l->ad[i];
		const struct tk_tensor_info *a = lora_tensor(m, st, ad->module, 'A');
		const struct tk_tensor_info *b = lora_tensor(m, st, ad->module, 'B');
		int64_t sa[2] = { l->cfg.r, ad->in }, sb[2] = { ad->out, l->cfg.r };

		if (!a || !b)
			return tk_diag_set(d, TK_E_FORMAT, path, -1, "no lora_%c for %s",
					   a ? 'B' : 'A', ad->module);
		if (!same_shape(a, 2, sa))
			return shape_mismatch(d, path, ad->module, a, 2, sa);
		if (!same_shape(b, 2, sb))
			return shape_mismatch(d, path, ad->module, b, 2, sb);
		if ((err = tk_safetensors_to_f32(a, l->params + ad->a_off, d)) ||
		    (err = tk_safetensors_to_f32(b, l->params + ad->b_off, d)))
			return err;
		if (l->cfg.use_dora) {
			const struct tk_tensor_info *mg = lora_tensor(m, st, ad->module, 'M');
			int64_t sm[1] = { ad->out };
			if (!mg)
				return tk_diag_set(d, TK_E_FORMAT, path, -1,
						   "no lora_magnitude_vector for %s (use_dora is "
						   "true)", ad->module);
			if (!same_shape(mg, 1, sm))
				return shape_mismatch(d, path, ad->module, mg, 1, sm);
			if ((err = tk_safetensors_to_f32(mg, l->params + ad->m_off, d)))
				return err;
		}
	}
	for (size_t i = 0; i < tk_safetensors_count(st); i++) {
		const struct tk_tensor_info *ti = tk_safetensors_at(st, i);
		const struct tk_model_tensor *t;
		float *buf;

		if ((err = split_key(ti->name, path, &kind, module, sizeof(module), d)))
			return err;
		if (kind == KEY_M && !l->cfg.use_dora)
			return tk_diag_set(d, TK_E_FORMAT, path, -1,
					   "tensor %s: a DoRA magnitude, but use_dora is not true",
					   ti->name);
		if (kind == KEY_A || kind == KEY_B || kind == KEY_M) {
			if (!tk_lora_find(l, module) && !(m->cfg.arch == TK_ARCH_GPT2 &&
			    !strncmp(module, "transformer.", 12) && tk_lora_find(l, module + 12)))
				return tk_diag_set(d, TK_E_FORMAT, path, -1,
						   "tensor %s: %s is not among target_modules",
						   ti->name, module);
			continue;
		}
		t = base_tensor(m, module, l->cfg.ensure_weight_tying);
		if (!t->trainable)
			return tk_diag_set(d, TK_E_FORMAT, path, -1,
					   "tensor %s: the config neither saves nor trains %s "
					   "(modules_to_save, bias)", ti->name, module);
		if (!(buf = tk_mallocn(t->n, sizeof(float))))
			return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
		err = tk_safetensors_to_f32(ti, buf, d);
		if (!err)
			tk_model_import(m, t, buf, m->params);
		free(buf);
		if (err)
			return err;
	}
	return 0;
}

/* peft.h */
int tk_peft_load(struct tk_model *m, const char *dir, struct tk_diag *d)
{
	char cpath[PATH_MAX], wpath[PATH_MAX];
	struct tk_lora_config c;
	struct tk_buf b = { 0 };
	cJSON *root = NULL;
	tk_safetensors_t *st = NULL;
	struct stat sb;
	int err, widen = 0;

	if (m->lora)
		return tk_diag_set(d, TK_E_INVAL, dir, -1, "the model has an adapter already");
	if (tk_path_join(cpath, sizeof(cpath), dir, CONFIG_FILE) ||
	    tk_path_join(wpath, sizeof(wpath), dir, WEIGHTS_FILE))
		return tk_diag_set(d, TK_E_INVAL, dir, -1, "path too long");
	if ((err = tk_read_file(cpath, &b, d)))
		return err;
	err = parse_config(b.data, cpath, &c, &root, d);
	tk_buf_free(&b);
	if (err)
		return err;
	if (stat(wpath, &sb)) {
		char bin[PATH_MAX];

		cJSON_Delete(root);
		if (!tk_path_join(bin, sizeof(bin), dir, "adapter_model.bin") && !access(bin, F_OK))
			return tk_diag_set(d, TK_E_UNSUPPORTED, bin, -1,
					   "pickled adapter weights are not supported; save them "
					   "with safe_serialization=True");
		return tk_diag_sys(d, wpath, "cannot open");
	}
	if ((err = tk_safetensors_open(&st, wpath, d)))
		goto out;
	if ((err = check_file(m, st, wpath, c.r, c.ensure_weight_tying, &widen, d)) ||
	    (widen && (err = tk_model_widen_half(m, d))))
		goto out;
	if ((err = tk_lora_attach(m, &c, 0, d))) {
		/* a config that does not fit the model: data, not usage */
		if (err == TK_E_INVAL) {
			err = TK_E_MISMATCH;
			if (d && !d->path[0])
				snprintf(d->path, sizeof(d->path), "%.1000s", cpath);
		}
		goto out;
	}
	if ((err = check_targets(m, root, cpath, d)) || (err = copy_tensors(m, st, wpath, d))) {
		/* Only possible before a base tensor was written: check_file
		 * vetted every one of them. */
		tk_lora_detach(m);
		goto out;
	}
out:
	tk_safetensors_close(st);
	cJSON_Delete(root);
	return err;
}

/* ---- writing ---- */

/* A double as Python's json module writes it: an int when it was given as
 * one (lora_alpha 16), else the shortest repr that reads back. */
static void put_number(struct tk_buf *b, double x, int as_int)
{
	char s[40];

	if (as_int && x == floor(x) && fabs(x) < 1e15) {
		snprintf(s, sizeof(s), "%.0f", x);
	} else {
		for (int p = 1; p <= 17; p++) {
			snprintf(s, sizeof(s), "%.*g", p, x);
			if (strtod(s, NULL) == x)
				break;
		}
		if (!strpbrk(s, ".en"))
			strcat(s, ".0");
	}
	tk_buf_append(b, s, strlen(s));
}

static void put_str(struct tk_buf *b, const char *s)
{
	tk_buf_append(b, "\"", 1);
	for (; *s; s++) {
		char e[8];

		if (*s == '"' || *s == '\\') {
			e[0] = '\\';
			e[1] = *s;
			tk_buf_append(b, e, 2);
		} else if ((unsigned char)*s < 0x20) {
			snprintf(e, sizeof(e), "\\u%04x", (unsigned char)*s);
			tk_buf_append(b, e, 6);
		} else {
			tk_buf_append(b, s, 1);
		}
	}
	tk_buf_append(b, "\"", 1);
}

static void put_key(struct tk_buf *b, const char *key, int *first)
{
	tk_buf_append(b, *first ? "{\n  " : ",\n  ", 4);
	*first = 0;
	put_str(b, key);
	tk_buf_append(b, ": ", 2);
}

static void put_raw(struct tk_buf *b, const char *s)
{
	tk_buf_append(b, s, strlen(s));
}

static void put_list(struct tk_buf *b, const char *const *v, int n)
{
	if (!n) {
		put_raw(b, "null");
		return;
	}
	put_raw(b, "[");
	for (int i = 0; i < n; i++) {
		put_raw(b, i ? ",\n    " : "\n    ");
		put_str(b, v[i]);
	}
	put_raw(b, "\n  ]");
}

/* adapter_config.json as peft 0.21 writes it (json.dumps(indent=2,
 * sort_keys=True)): every key of its LoraConfig, in sorted order. */
static int config_json(const struct tk_model *m, struct tk_buf *b)
{
	const struct tk_lora *l = m->lora;
	const struct tk_lora_config *c = &l->cfg;
	const char **v;
	char (*paths)[256] = NULL;
	int n = 0, first = 1, all = c->n_targets == 1 && !strcmp(c->targets[0], "all-linear");
	int nv = l->n_ad + c->n_targets + c->n_modules_to_save + 1;

	if (!(v = tk_mallocn((size_t)nv, sizeof(*v))))
		return TK_E_NOMEM;
	if (all && !(paths = tk_mallocn((size_t)l->n_ad + 1, sizeof(*paths)))) {
		free(v);
		return TK_E_NOMEM;
	}
	put_key(b, "alora_invocation_tokens", &first), put_raw(b, "null");
	put_key(b, "alpha_pattern", &first), put_raw(b, "{}");
	put_key(b, "arrow_config", &first), put_raw(b, "null");
	put_key(b, "auto_mapping", &first), put_raw(b, "null");
	put_key(b, "base_model_name_or_path", &first);
	if (c->base_model[0])
		put_str(b, c->base_model);
	else
		put_raw(b, "null");
	put_key(b, "bias", &first), put_str(b, tk_lora_bias_name(c->bias));
	put_key(b, "corda_config", &first), put_raw(b, "null");
	put_key(b, "ensure_weight_tying", &first),
		put_raw(b, c->ensure_weight_tying ? "true" : "false");
	put_key(b, "eva_config", &first), put_raw(b, "null");
	put_key(b, "exclude_modules", &first), put_raw(b, "null");
	put_key(b, "fan_in_fan_out", &first), put_raw(b, c->fan_in_fan_out ? "true" : "false");
	put_key(b, "inference_mode", &first), put_raw(b, "true");
	put_key(b, "init_lora_weights", &first), put_raw(b, "true");
	put_key(b, "kasa_config", &first), put_raw(b, "null");
	put_key(b, "layer_replication", &first), put_raw(b, "null");
	put_key(b, "layers_pattern", &first), put_raw(b, "null");
	put_key(b, "layers_to_transform", &first), put_raw(b, "null");
	put_key(b, "loftq_config", &first), put_raw(b, "{}");
	put_key(b, "lora_alpha", &first), put_number(b, c->alpha, 1);
	put_key(b, "lora_bias", &first), put_raw(b, "false");
	put_key(b, "lora_dropout", &first), put_number(b, c->dropout, 0);
	put_key(b, "lora_ga_config", &first), put_raw(b, "null");
	put_key(b, "megatron_config", &first), put_raw(b, "null");
	put_key(b, "megatron_core", &first), put_str(b, "megatron.core");
	put_key(b, "modules_to_save", &first);
	for (int i = 0; i < c->n_modules_to_save; i++)
		v[i] = c->modules_to_save[i];
	put_list(b, v, c->n_modules_to_save);
	put_key(b, "monteclora_config", &first), put_raw(b, "null");
	put_key(b, "peft_type", &first), put_str(b, "LORA");
	put_key(b, "peft_version", &first), put_str(b, PEFT_VERSION);
	put_key(b, "qalora_group_size", &first), put_raw(b, "16");
	put_key(b, "r", &first), put_number(b, c->r, 1);
	put_key(b, "rank_pattern", &first), put_raw(b, "{}");
	put_key(b, "revision", &first), put_raw(b, "null");
	put_key(b, "target_modules", &first);
	if (all) {
		/* peft saves all-linear as the list of the modules it chose */
		for (int i = 0; i < l->n_ad; i++) {
			peft_module(m, l->ad[i].module, paths[i], sizeof(paths[i]));
			v[n++] = paths[i];
		}
	} else {
		for (int i = 0; i < c->n_targets; i++)
			v[n++] = c->targets[i];
	}
	put_list(b, v, n);
	put_key(b, "target_parameters", &first), put_raw(b, "null");
	put_key(b, "task_type", &first), put_str(b, "CAUSAL_LM");
	put_key(b, "trainable_token_indices", &first), put_raw(b, "null");
	put_key(b, "use_bdlora", &first), put_raw(b, "null");
	put_key(b, "use_dora", &first), put_raw(b, c->use_dora ? "true" : "false");
	put_key(b, "use_qalora", &first), put_raw(b, "false");
	put_key(b, "use_rslora", &first), put_raw(b, c->use_rslora ? "true" : "false");
	put_key(b, "velora_config", &first), put_raw(b, "null");
	put_raw(b, "\n}");
	free(paths);
	free(v);
	return b->data ? 0 : TK_E_NOMEM;
}

/* The key under which peft saves base tensor t: the bias of an adapted
 * module as MODULE.base_layer.bias, anything else under its own name. */
static void base_key(const struct tk_model *m, const struct tk_model_tensor *t, char *out,
		     size_t n)
{
	char name[256], mod[200];

	peft_module(m, t->name, name, sizeof(name));
	if (ends_with(t->name, ".bias") && strlen(t->name) - 5 < sizeof(mod)) {
		memcpy(mod, t->name, strlen(t->name) - 5);
		mod[strlen(t->name) - 5] = 0;
		if (tk_lora_find(m->lora, mod)) {
			name[strlen(name) - 5] = 0;
			snprintf(out, n, PREFIX "%s.base_layer.bias", name);
			return;
		}
	}
	snprintf(out, n, PREFIX "%s", name);
}

static int add_tensors(const struct tk_model *m, tk_safetensors_writer_t *w, float **held, char (*keys)[400],
		       struct tk_diag *d)
{
	const struct tk_lora *l = m->lora;
	int err, k = 0;

	for (int i = 0; i < l->n_ad; i++) {
		const struct tk_lora_adapter *ad = &l->ad[i];
		char mod[256];
		int64_t sa[2] = { l->cfg.r, ad->in }, sb[2] = { ad->out, l->cfg.r };

		peft_module(m, ad->module, mod, sizeof(mod));
		snprintf(keys[k], 400, PREFIX "%s.lora_A.weight", mod);
		if ((err = tk_safetensors_writer_add(w, keys[k++], TK_DT_F32, 2, sa, l->params + ad->a_off, d)))
			return err;
		snprintf(keys[k], 400, PREFIX "%s.lora_B.weight", mod);
		if ((err = tk_safetensors_writer_add(w, keys[k++], TK_DT_F32, 2, sb, l->params + ad->b_off, d)))
			return err;
		if (l->cfg.use_dora) {
			int64_t sm[1] = { ad->out };
			snprintf(keys[k], 400, PREFIX "%s" MAG, mod);
			if ((err = tk_safetensors_writer_add(w, keys[k++], TK_DT_F32, 1, sm,
							     l->params + ad->m_off, d)))
				return err;
		}
	}
	for (int i = 0, j = 0; i < m->n_tensors; i++) {
		const struct tk_model_tensor *t = &m->tensors[i];

		if (!t->trainable || t->q)
			continue;
		if (!(held[j] = tk_mallocn(t->n, sizeof(float))))
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		tk_model_export(m, t, m->params, held[j]);
		base_key(m, t, keys[k], 400);
		if ((err = tk_safetensors_writer_add(w, keys[k++], TK_DT_F32, t->ndim, t->shape, held[j++], d)))
			return err;
		/* a saved embedding the head is tied to (ensure_weight_tying):
		 * peft saves it a second time as the head's, and wants it */
		if (t == tk_model_embedding(m) && m->cfg.tie_embeddings) {
			snprintf(keys[k], 400, PREFIX "lm_head.weight");
			if ((err = tk_safetensors_writer_add(w, keys[k++], TK_DT_F32, t->ndim, t->shape,
							     held[j - 1], d)))
				return err;
		}
	}
	return 0;
}

/* peft.h */
int tk_peft_save(const struct tk_model *m, const char *dir, int force, struct tk_diag *d)
{
	char cpath[PATH_MAX], wpath[PATH_MAX];
	struct tk_buf json = { 0 };
	struct tk_afile f = { 0 };
	tk_safetensors_writer_t *w = NULL;
	float **held = NULL;
	char (*keys)[400] = NULL;
	int err, made_dir = 0, nt = 0;

	if (!m->lora)
		return tk_diag_set(d, TK_E_INVAL, dir, -1, "the model has no adapter to save");
	if (tk_path_join(cpath, sizeof(cpath), dir, CONFIG_FILE) ||
	    tk_path_join(wpath, sizeof(wpath), dir, WEIGHTS_FILE))
		return tk_diag_set(d, TK_E_INVAL, dir, -1, "path too long");
	if (!force && (!access(cpath, F_OK) || !access(wpath, F_OK)))
		return tk_diag_set(d, TK_E_EXISTS, access(cpath, F_OK) ? wpath : cpath, -1,
				   "exists (use --force to replace it)");
	if (mkdir(dir, 0777) == 0)
		made_dir = 1;
	else if (errno != EEXIST)
		return tk_diag_sys(d, dir, "cannot create directory");

	for (int i = 0; i < m->n_tensors; i++)
		nt += m->tensors[i].trainable && !m->tensors[i].q;
	held = calloc((size_t)nt + 1, sizeof(*held));
	keys = tk_mallocn(3 * (size_t)m->lora->n_ad + (size_t)nt + 1, sizeof(*keys));
	if (!held || !keys || config_json(m, &json) || tk_safetensors_writer_new(&w)) {
		err = tk_diag_set(d, TK_E_NOMEM, dir, -1, "out of memory");
		goto out;
	}
	if ((err = add_tensors(m, w, held, keys, d)) ||
	    (err = tk_safetensors_writer_metadata(w, "format", "pt")) ||
	    (err = tk_afile_open(&f, cpath, force, d)))
		goto out;
	fwrite(json.data, 1, json.len, f.fp);
	err = tk_safetensors_writer_commit(w, wpath, force, d);
	w = NULL;
	if (err) {
		tk_afile_abort(&f);
		goto out;
	}
	if ((err = tk_afile_commit(&f, d)))
		unlink(wpath);
out:
	tk_safetensors_writer_free(w);
	for (int i = 0; held && i < nt; i++)
		free(held[i]);
	free(held);
	free(keys);
	tk_buf_free(&json);
	if (err && made_dir)
		rmdir(dir);
	return err;
}

/* ---- merging ---- */

static enum tk_dtype base_dtype(const struct tk_model *m)
{
	if (!strcmp(m->cfg.torch_dtype, "float16"))
		return TK_DT_F16;
	if (!strcmp(m->cfg.torch_dtype, "bfloat16"))
		return TK_DT_BF16;
	return TK_DT_F32;
}

/* The merged model and the side files base has into dir. */
static int write_merged(const struct tk_model *m, const char *base, const char *dir,
			enum tk_dtype dtype, struct tk_diag *d)
{
	int err = tk_model_save_dtype(m, dir, dtype, 1, d);

	return err ? err : tk_hf_copy_side_files(base, dir, TK_HF_SIDE_ALL, d);
}

/* peft.h */
void tk_peft_merge_opts_init(struct tk_merge_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->dtype = TK_DT_COUNT;
}

int tk_peft_merge_dir(const struct tk_merge_opts *o, struct tk_merge_info *info,
		      struct tk_diag *d)
{
	struct tk_backend own, *be = o->be ? o->be : &own;
	struct tk_model m;
	struct tk_afile_dir ad = { 0 };
	char merged[PATH_MAX];
	int err, opened = 0;

	memset(info, 0, sizeof(*info));
	memset(&m, 0, sizeof(m));
	if (o->n_ad < 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "no adapter to merge");
	if (!o->force && !access(o->out, F_OK))
		return tk_diag_set(d, TK_E_EXISTS, o->out, -1, "exists (use --force to replace it)");
	if (!o->be && (err = tk_backend_cpu_init(&own, o->threads, d)))
		return err;
	if ((err = tk_model_load(&m, o->base, be, d)))
		goto out;
	info->quantized = m.n_quantized > 0;
	info->dtype = o->dtype == TK_DT_COUNT ? base_dtype(&m) : o->dtype;
	for (int i = 0; i < o->n_ad; i++) {
		if ((err = tk_peft_load(&m, o->ad[i].dir, d)))
			goto out;
		info->n_modules += m.lora->n_ad;
		if ((err = tk_lora_merge(&m, o->ad[i].weight, d))) {
			if (d && !d->path[0])
				snprintf(d->path, sizeof(d->path), "%.1000s", o->ad[i].dir);
			goto out;
		}
	}
	/* requantized, the merged model is an input that tk_bnb_quantize_dir
	 * reads: under a temporary of its own, not OUT's (which that writes) */
	if (o->requantize && snprintf(merged, sizeof(merged), "%s.merged", o->out) >=
				     (int)sizeof(merged)) {
		err = tk_diag_set(d, TK_E_INVAL, o->out, -1, "path too long");
		goto out;
	}
	/* replacing OUT would delete an input that lies inside it */
	if (o->force && (err = tk_path_check_outside(o->base, o->out, d)))
		goto out;
	for (int i = 0; o->force && i < o->n_ad; i++)
		if ((err = tk_path_check_outside(o->ad[i].dir, o->out, d)))
			goto out;
	if ((err = tk_afile_dir_open(&ad, o->requantize ? merged : o->out, o->force || o->requantize, d)))
		goto out;
	opened = 1;
	if ((err = write_merged(&m, o->base, ad.tmp, info->dtype, d)))
		goto out;
	if (o->requantize) {
		struct tk_bnb_opts bo;

		tk_bnb_opts_init(&bo);
		bo.double_quant = 1;
		snprintf(bo.compute_dtype, sizeof(bo.compute_dtype), "%s",
			 info->dtype == TK_DT_F16 ? "float16" :
			 info->dtype == TK_DT_BF16 ? "bfloat16" : "float32");
		err = tk_bnb_quantize_dir(ad.tmp, o->out, &bo, o->force, d);
		goto out;
	}
	err = tk_afile_dir_commit(&ad, d);
	opened = 0;
out:
	if (opened)
		tk_afile_dir_abort(&ad);
	tk_model_free(&m);
	if (!o->be)
		tk_backend_free(&own);
	return err;
}

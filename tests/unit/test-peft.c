/* test-peft.c - PEFT adapter directories against what peft 0.21 wrote
 * (tests/fixtures/lora, made by tests/parity/gen-lora-fixtures.py): config
 * reading and refusals, load + save + reload round trips, adapters for
 * another base, and merges against peft's merge_and_unload().
 *
 *   TK_LORA_FIXTURES  directory holding NAME/ and NAME.ref.safetensors
 *                 (default tests/fixtures/lora)
 *   TK_PEFT_KEEP  directory that receives NAME/ (the adapter as tk saves it)
 *                 and NAME.logits.safetensors (tk's logits on the
 *                 fixture's input_ids), for tests/parity/check-lora.py
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/afile.h"
#include "compute/backend.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/peft.h"
#include "formats/safetensors.h"
#include "tt.h"

static struct tk_backend be;

struct fixture {
	const char *name, *base;
	int r;
	double alpha, dropout;
	const char *targets;   /* as tk reads them, joined by ','; "#N": the N
				  module paths peft writes for all-linear */
	enum tk_lora_bias bias;
	int rslora;
	const char *save;      /* modules_to_save joined by ',' */
};

/* The LoraConfig arguments of ADAPTERS in gen-lora-fixtures.py. */
static const struct fixture fixtures[] = {
	{ "gpt2-default", "gpt2", 4, 8, 0, "c_attn", TK_LORA_BIAS_NONE, 0, "" },
	{ "gpt2-all", "gpt2", 8, 16, 0, "#8", TK_LORA_BIAS_ALL, 1, "" },
	{ "gpt2-mlp", "gpt2", 2, 5, 0.1, "c_fc,mlp.c_proj", TK_LORA_BIAS_LORA_ONLY, 0, "ln_f" },
	{ "llama-qv", "llama", 4, 8, 0, "v_proj,q_proj", TK_LORA_BIAS_NONE, 0, "" },
	{ "llama-all", "llama", 8, 16, 0, "#14", TK_LORA_BIAS_NONE, 1, "lm_head" },
	{ "llama-seven", "llama", 2, 3, 0.05,
	  "gate_proj,v_proj,o_proj,k_proj,up_proj,down_proj,q_proj", TK_LORA_BIAS_NONE, 0, "" },
	{ "qwen2-qkv", "qwen2", 4, 4, 0, "v_proj,k_proj,q_proj", TK_LORA_BIAS_LORA_ONLY, 0, "" },
	{ "qwen3-default", "qwen3", 4, 8, 0, "v_proj,q_proj", TK_LORA_BIAS_NONE, 0, "" },
	{ "qwen3-all", "qwen3", 4, 16, 0, "#14", TK_LORA_BIAS_NONE, 0, "q_norm,k_norm" },
	/* Phi-3: one adapter on each fused module */
	{ "phi3-fused", "phi3", 4, 8, 0, "qkv_proj,down_proj,o_proj,gate_up_proj",
	  TK_LORA_BIAS_NONE, 0, "" },
	{ "phi3-partial-all", "phi3-partial", 3, 5, 0, "#8", TK_LORA_BIAS_NONE, 1, "norm" },
	{ "phi3-longrope-qkv", "phi3-longrope", 2, 4, 0, "qkv_proj", TK_LORA_BIAS_NONE, 0, "" },
	{ "gemma2-seven", "gemma2", 4, 8, 0,
	  "gate_proj,v_proj,o_proj,k_proj,up_proj,down_proj,q_proj", TK_LORA_BIAS_NONE, 0, "" },
	/* all-linear, which peft 0.21 writes as the seven names for Gemma-3 */
	{ "gemma3-all", "gemma3", 4, 16, 0,
	  "gate_proj,v_proj,o_proj,k_proj,up_proj,down_proj,q_proj", TK_LORA_BIAS_NONE, 1,
	  "q_norm,k_norm" },
};
#define N_FIX ((int)(sizeof(fixtures) / sizeof(fixtures[0])))

static char *path2(const char *a, const char *b)
{
	static char buf[4][1200];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", a, b);
	return buf[k];
}

static const char *lora_dir(const char *name)
{
	static char buf[1200];
	const char *e = getenv("TK_LORA_FIXTURES");
	snprintf(buf, sizeof(buf), "%s", path2(e ? e : tt_fixture("lora"), name));
	return buf;
}

static const char *base_dir(const char *base)
{
	static char buf[1200];
	snprintf(buf, sizeof(buf), "%s", path2(tt_fixture("models"), base));
	return buf;
}

/* "a,b,c" equals the n names as sets ("#N": N module paths). */
static int same_set(const char *joined, char names[][TK_LORA_NAME], int n)
{
	char tmp[512], *tok, *save = NULL;
	int k = 0;

	if (joined[0] == '#') {
		for (int i = 0; i < n; i++)
			if (!strstr(names[i], ".h.") && !strstr(names[i], ".layers."))
				return 0;
		return n == atoi(joined + 1);
	}
	snprintf(tmp, sizeof(tmp), "%s", joined);
	for (tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int hit = 0;
		for (int i = 0; i < n; i++)
			hit |= !strcmp(names[i], tok);
		if (!hit)
			return 0;
		k++;
	}
	return k == n;
}

static void test_read_config(void)
{
	for (int i = 0; i < N_FIX; i++) {
		const struct fixture *f = &fixtures[i];
		struct tk_lora_config c;
		struct tk_diag d;
		char want[300];

		tk_diag_clear(&d);
		TT_REQUIRE(!tk_peft_read_config(lora_dir(f->name), &c, &d), "%s: %s", f->name,
			   d.msg);
		TT_CHECK(c.r == f->r, "%s: r %d", f->name, c.r);
		TT_CHECK(c.alpha == f->alpha, "%s: alpha %g", f->name, c.alpha);
		TT_CHECK(c.dropout == f->dropout, "%s: dropout %g", f->name, c.dropout);
		TT_CHECK(c.bias == f->bias, "%s: bias %d", f->name, c.bias);
		TT_CHECK(c.use_rslora == f->rslora, "%s: rslora", f->name);
		TT_CHECK(c.fan_in_fan_out == !strcmp(f->base, "gpt2"), "%s: fan_in_fan_out",
			 f->name);
		TT_CHECK(same_set(f->targets, c.targets, c.n_targets), "%s: targets (%d, %s...)",
			 f->name, c.n_targets, c.targets[0]);
		TT_CHECK(same_set(f->save, c.modules_to_save, c.n_modules_to_save),
			 "%s: modules_to_save", f->name);
		snprintf(want, sizeof(want), "tests/fixtures/models/%s", f->base);
		TT_CHECK(!strcmp(c.base_model, want), "%s: base %s", f->name, c.base_model);
	}
}

/* Writes dir/adapter_config.json: llama-qv's config with key set to the
 * JSON value (NULL: removed). */
static void write_config(const char *dir, const char *key, const char *value)
{
	struct tk_buf b = { 0 };
	struct tk_diag d;
	cJSON *root;
	char *text;
	FILE *fp;

	mkdir(dir, 0777);
	if (tk_read_file(path2(lora_dir("llama-qv"), "adapter_config.json"), &b, &d))
		return;
	root = cJSON_Parse(b.data);
	tk_buf_free(&b);
	cJSON_DeleteItemFromObjectCaseSensitive(root, key);
	if (value)
		cJSON_AddItemToObject(root, key, cJSON_Parse(value));
	text = cJSON_Print(root);
	fp = fopen(path2(dir, "adapter_config.json"), "w");
	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
	free(text);
	cJSON_Delete(root);
}

static void test_config_refused(void)
{
	static const struct {
		const char *key, *value;
		int err;
		const char *msg;
	} cases[] = {
		{ "peft_type", "\"IA3\"", TK_E_UNSUPPORTED, "peft_type IA3 is not supported" },
		{ "peft_type", "\"LOHA\"", TK_E_UNSUPPORTED, "peft_type LOHA is not supported" },
		{ "peft_type", "\"ADALORA\"", TK_E_UNSUPPORTED, "peft_type ADALORA" },
		{ "peft_type", NULL, TK_E_FORMAT, "no peft_type" },
		{ "task_type", "\"SEQ_CLS\"", TK_E_UNSUPPORTED, "task_type SEQ_CLS" },
		{ "layers_to_transform", "[0]", TK_E_UNSUPPORTED, "layers_to_transform" },
		{ "rank_pattern", "{\"q_proj\": 2}", TK_E_UNSUPPORTED, "rank_pattern" },
		{ "alpha_pattern", "{\"q_proj\": 2}", TK_E_UNSUPPORTED, "alpha_pattern" },
		{ "init_lora_weights", "\"pissa\"", TK_E_UNSUPPORTED, "init_lora_weights pissa" },
		{ "lora_bias", "true", TK_E_UNSUPPORTED, "lora_bias" },
		{ "use_qalora", "true", TK_E_UNSUPPORTED, "use_qalora" },
		{ "exclude_modules", "[\"q_proj\"]", TK_E_UNSUPPORTED, "exclude_modules" },
		{ "layer_replication", "[[0, 1]]", TK_E_UNSUPPORTED, "layer_replication" },
		{ "trainable_token_indices", "[1, 2]", TK_E_UNSUPPORTED, "trainable_token_indices" },
		{ "some_new_option", "3", TK_E_UNSUPPORTED, "some_new_option is not supported" },
		{ "target_modules", "\".*proj\"", TK_E_UNSUPPORTED, "regular expression" },
		{ "target_modules", "[\"all-linear\", \"q_proj\"]", TK_E_FORMAT, "all-linear" },
		{ "target_modules", "[1]", TK_E_FORMAT, "target_modules" },
		{ "r", "0", TK_E_FORMAT, "r: 0 is not a positive" },
		{ "r", "2.5", TK_E_FORMAT, "r: 2.5" },
		{ "lora_alpha", "-1", TK_E_FORMAT, "lora_alpha: -1 is not positive" },
		{ "lora_alpha", "\"8\"", TK_E_FORMAT, "lora_alpha: expected a number" },
		{ "lora_dropout", "1", TK_E_FORMAT, "lora_dropout" },
		{ "bias", "\"some\"", TK_E_FORMAT, "bias" },
		{ "use_rslora", "1", TK_E_FORMAT, "use_rslora" },
		{ "use_dora", "1", TK_E_FORMAT, "use_dora: expected true or false" },
	};
	char dir[1100];

	snprintf(dir, sizeof(dir), "%s/refused", tt_tmpdir());
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tk_lora_config c;
		struct tk_diag d;
		int err;

		write_config(dir, cases[i].key, cases[i].value);
		tk_diag_clear(&d);
		err = tk_peft_read_config(dir, &c, &d);
		TT_CHECK(err == cases[i].err, "%s=%s: %d (%s)", cases[i].key, cases[i].value, err,
			 d.msg);
		TT_CHECK(strstr(d.msg, cases[i].msg), "%s: message \"%s\"", cases[i].key, d.msg);
		TT_CHECK(strstr(d.path, "adapter_config.json"), "%s: path %s", cases[i].key, d.path);
	}
	/* what peft writes with these values is accepted */
	{
		static const char *const ok[][2] = {
			{ "init_lora_weights", "\"gaussian\"" }, { "init_lora_weights", "true" },
			{ "layers_to_transform", "null" }, { "some_new_option", "null" },
			{ "some_new_option", "false" }, { "task_type", "null" },
			{ "target_modules", "null" }, { "target_modules", "\"all-linear\"" },
			{ "use_dora", "true" },
		};
		for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
			struct tk_lora_config c;
			struct tk_diag d;
			write_config(dir, ok[i][0], ok[i][1]);
			TT_CHECK(!tk_peft_read_config(dir, &c, &d), "%s=%s: %s", ok[i][0], ok[i][1],
				 d.msg);
		}
	}
	{
		struct tk_lora_config c;
		struct tk_diag d;
		FILE *fp = fopen(path2(dir, "adapter_config.json"), "w");
		if (fp) {
			fputs("{\"peft_type\": \"LORA\", ", fp);
			fclose(fp);
		}
		TT_CHECK(tk_peft_read_config(dir, &c, &d) == TK_E_FORMAT, "truncated JSON");
		unlink(path2(dir, "adapter_config.json"));
		TT_CHECK(tk_peft_read_config(dir, &c, &d) == TK_E_IO, "missing file");
	}
}

/* Loads base + adapter; 0 or an error (model freed on error). */
static int load(struct tk_model *m, const char *base, const char *adapter, struct tk_diag *d)
{
	int err;

	memset(m, 0, sizeof(*m));
	tk_diag_clear(d);
	if ((err = tk_model_load(m, base_dir(base), &be, d)))
		return err;
	if ((err = tk_peft_load(m, adapter, d)))
		tk_model_free(m);
	return err;
}

/* Every tensor of a and b: same names, dtypes, shapes and bytes. */
static int same_tensors(const char *a, const char *b, char *why, size_t n)
{
	tk_safetensors_t *sa = NULL, *sb = NULL;
	struct tk_diag d;
	int ok = 0;

	if (tk_safetensors_open(&sa, a, &d) || tk_safetensors_open(&sb, b, &d)) {
		snprintf(why, n, "%s", d.msg);
		goto out;
	}
	if (tk_safetensors_count(sa) != tk_safetensors_count(sb)) {
		snprintf(why, n, "%zu vs %zu tensors", tk_safetensors_count(sa), tk_safetensors_count(sb));
		goto out;
	}
	for (size_t i = 0; i < tk_safetensors_count(sa); i++) {
		const struct tk_tensor_info *x = tk_safetensors_at(sa, i), *y = tk_safetensors_find(sb, x->name);
		if (!y || y->dtype != x->dtype || y->ndim != x->ndim || y->nbytes != x->nbytes ||
		    memcmp(x->shape, y->shape, sizeof(x->shape)) ||
		    memcmp(x->data, y->data, x->nbytes)) {
			snprintf(why, n, "tensor %s differs", x->name);
			goto out;
		}
	}
	if (!tk_safetensors_metadata(sb, "format") || strcmp(tk_safetensors_metadata(sb, "format"), "pt")) {
		snprintf(why, n, "no format=pt");
		goto out;
	}
	ok = 1;
out:
	tk_safetensors_close(sa);
	tk_safetensors_close(sb);
	return ok;
}

/* A JSON list of strings as a set. */
static int same_string_set(const cJSON *a, const cJSON *b)
{
	const cJSON *x, *y;

	if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
		return 0;
	cJSON_ArrayForEach(x, a) {
		int hit = 0;
		cJSON_ArrayForEach(y, b)
			hit |= cJSON_IsString(x) && cJSON_IsString(y) &&
			       !strcmp(x->valuestring, y->valuestring);
		if (!hit)
			return 0;
	}
	return 1;
}

/* The configs have the same keys with the same values, but for
 * init_lora_weights (tk writes peft's default, true: the fixtures were made
 * with false) and target_modules, whose order peft leaves to a set. */
static int same_config(const char *a, const char *b, char *why, size_t n)
{
	struct tk_buf ba = { 0 }, bb = { 0 };
	struct tk_diag d;
	cJSON *ja = NULL, *jb = NULL;
	const cJSON *x;
	int ok = 0;

	if (tk_read_file(a, &ba, &d) || tk_read_file(b, &bb, &d)) {
		snprintf(why, n, "%s", d.msg);
		goto out;
	}
	ja = cJSON_Parse(ba.data);
	jb = cJSON_Parse(bb.data);
	if (!ja || !jb || cJSON_GetArraySize(ja) != cJSON_GetArraySize(jb)) {
		snprintf(why, n, "%d vs %d keys", cJSON_GetArraySize(ja), cJSON_GetArraySize(jb));
		goto out;
	}
	cJSON_ArrayForEach(x, ja) {
		const cJSON *y = cJSON_GetObjectItemCaseSensitive(jb, x->string);
		if (!y) {
			snprintf(why, n, "no key %s", x->string);
			goto out;
		}
		if (!strcmp(x->string, "init_lora_weights"))
			continue;
		if (!strcmp(x->string, "target_modules") && cJSON_IsArray(x) ?
		    !same_string_set(x, y) : !cJSON_Compare(x, y, 1)) {
			snprintf(why, n, "key %s differs", x->string);
			goto out;
		}
	}
	ok = 1;
out:
	cJSON_Delete(ja);
	cJSON_Delete(jb);
	tk_buf_free(&ba);
	tk_buf_free(&bb);
	return ok;
}

static void test_round_trip(void)
{
	for (int i = 0; i < N_FIX; i++) {
		const struct fixture *f = &fixtures[i];
		struct tk_model m, m2;
		struct tk_diag d;
		char out[1100], why[300];

		TT_REQUIRE(!load(&m, f->base, lora_dir(f->name), &d), "%s: %s: %s", f->name, d.path,
			   d.msg);
		TT_CHECK(m.lora && m.lora->cfg.r == f->r, "%s: no adapter", f->name);
		snprintf(out, sizeof(out), "%s/%s", tt_tmpdir(), f->name);
		TT_CHECK(!tk_peft_save(&m, out, 0, &d), "%s: save: %s", f->name, d.msg);
		TT_CHECK(same_tensors(path2(lora_dir(f->name), "adapter_model.safetensors"),
				      path2(out, "adapter_model.safetensors"), why, sizeof(why)),
			 "%s: %s", f->name, why);
		TT_CHECK(same_config(path2(lora_dir(f->name), "adapter_config.json"),
				     path2(out, "adapter_config.json"), why, sizeof(why)),
			 "%s: %s", f->name, why);
		/* again: refused without force, nothing touched */
		TT_CHECK(tk_peft_save(&m, out, 0, &d) == TK_E_EXISTS, "%s: second save", f->name);
		TT_CHECK(tk_peft_save(&m, out, 1, &d) == 0, "%s: forced save: %s", f->name, d.msg);
		/* the saved adapter loads to the same parameters */
		if (!load(&m2, f->base, out, &d)) {
			TT_CHECK(m2.lora->n_params == m.lora->n_params &&
				 !memcmp(m2.lora->params, m.lora->params,
					 m.lora->n_params * sizeof(float)), "%s: reload", f->name);
			TT_CHECK(m2.n_params == m.n_params &&
				 !memcmp(m2.params, m.params, m.n_params * sizeof(float)),
				 "%s: reload base", f->name);
			tk_model_free(&m2);
		} else {
			TT_CHECK(0, "%s: reload: %s", f->name, d.msg);
		}
		tk_model_free(&m);
	}
}

/* Copies the adapter src into dst with one tensor replaced by a zero
 * F32 tensor of another shape (or removed, ndim 0). */
static int doctor(const char *src, const char *dst, const char *key, int ndim,
		  const int64_t *shape)
{
	tk_safetensors_t *st = NULL;
	tk_safetensors_writer_t *w = NULL;
	struct tk_diag d;
	static float zeros[1 << 16];
	struct tk_buf b = { 0 };
	FILE *fp;
	int err;

	mkdir(dst, 0777);
	if ((err = tk_read_file(path2(src, "adapter_config.json"), &b, &d)))
		return err;
	fp = fopen(path2(dst, "adapter_config.json"), "w");
	if (!fp)
		return TK_E_IO;
	fwrite(b.data, 1, b.len, fp);
	fclose(fp);
	tk_buf_free(&b);
	if ((err = tk_safetensors_open(&st, path2(src, "adapter_model.safetensors"), &d)) ||
	    (err = tk_safetensors_writer_new(&w)))
		return err;
	for (size_t i = 0; i < tk_safetensors_count(st); i++) {
		const struct tk_tensor_info *t = tk_safetensors_at(st, i);
		if (strcmp(t->name, key))
			err = tk_safetensors_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &d);
		else if (ndim)
			err = tk_safetensors_writer_add(w, t->name, TK_DT_F32, ndim, shape, zeros, &d);
		if (err)
			break;
	}
	if (!err)
		err = tk_safetensors_writer_commit(w, path2(dst, "adapter_model.safetensors"), 1, &d);
	else
		tk_safetensors_writer_free(w);
	tk_safetensors_close(st);
	return err;
}

/* More module paths than TK_LORA_MAX_TARGETS (peft writes all-linear of a
 * big model so): read as their last components, and loaded when the
 * modules they select are exactly the ones listed. */
static void test_long_target_list(void)
{
	struct tk_model m;
	struct tk_diag d;
	char dir[1100], list[4096];
	size_t k;
	int err;

	snprintf(dir, sizeof(dir), "%s/long", tt_tmpdir());
	TT_REQUIRE(!doctor(lora_dir("llama-qv"), dir, "", 0, NULL), "doctor");
	k = (size_t)snprintf(list, sizeof(list), "[\"model.layers.0.self_attn.q_proj\", "
			     "\"model.layers.1.self_attn.q_proj\", \"model.layers.0.self_attn."
			     "v_proj\", \"model.layers.1.self_attn.v_proj\"");
	for (int i = 9; i < 22; i++)
		k += (size_t)snprintf(list + k, sizeof(list) - k,
				      ", \"model.layers.%d.self_attn.q_proj\"", i);
	snprintf(list + k, sizeof(list) - k, "]");
	write_config(dir, "target_modules", list);
	err = load(&m, "llama", dir, &d);
	TT_CHECK(err == 0, "q/v: %s", d.msg);
	if (!err) {
		TT_CHECK(m.lora->n_ad == 4 && m.lora->cfg.n_targets == 2, "%d adapters",
			 m.lora->n_ad);
		tk_model_free(&m);
	}
	/* listing up_proj of layers the model lacks selects those it has */
	k = (size_t)snprintf(list, sizeof(list), "[\"model.layers.0.self_attn.q_proj\", "
			     "\"model.layers.1.self_attn.q_proj\", \"model.layers.0.self_attn."
			     "v_proj\", \"model.layers.1.self_attn.v_proj\"");
	for (int i = 9; i < 22; i++)
		k += (size_t)snprintf(list + k, sizeof(list) - k,
				      ", \"model.layers.%d.mlp.up_proj\"", i);
	snprintf(list + k, sizeof(list) - k, "]");
	write_config(dir, "target_modules", list);
	err = load(&m, "llama", dir, &d);
	TT_CHECK(err == TK_E_UNSUPPORTED && strstr(d.msg, "up_proj"), "up: %d %s", err, d.msg);
}

static void test_another_base(void)
{
	struct tk_model m;
	struct tk_diag d;
	char dir[1100];
	int err;

	/* a GPT-2 adapter on a Llama model */
	err = load(&m, "llama", lora_dir("gpt2-default"), &d);
	TT_CHECK(err == TK_E_MISMATCH, "gpt2 on llama: %d %s", err, d.msg);
	TT_CHECK(strstr(d.msg, "transformer.h.0.attn.c_attn") && strstr(d.msg, "another base"),
		 "message: %s", d.msg);

	/* a q_proj of another width */
	snprintf(dir, sizeof(dir), "%s/wide", tt_tmpdir());
	TT_REQUIRE(!doctor(lora_dir("llama-qv"), dir,
			   "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", 2,
			   (int64_t[]){ 4, 64 }), "doctor");
	err = load(&m, "llama", dir, &d);
	TT_CHECK(err == TK_E_MISMATCH, "wide: %d %s", err, d.msg);
	TT_CHECK(strstr(d.msg, "model.layers.1.self_attn.q_proj") && strstr(d.msg, "[4, 64]") &&
		 strstr(d.msg, "[4, 48]") && strstr(d.msg, "another base"), "message: %s", d.msg);
	TT_CHECK(strstr(d.path, "adapter_model.safetensors"), "path %s", d.path);

	/* a module to save of another size */
	snprintf(dir, sizeof(dir), "%s/head", tt_tmpdir());
	TT_REQUIRE(!doctor(lora_dir("llama-all"), dir, "base_model.model.lm_head.weight", 2,
			   (int64_t[]){ 100, 48 }), "doctor");
	err = load(&m, "llama", dir, &d);
	TT_CHECK(err == TK_E_MISMATCH, "head: %d %s", err, d.msg);
	TT_CHECK(strstr(d.msg, "lm_head.weight") && strstr(d.msg, "[100, 48]") &&
		 strstr(d.msg, "[97, 48]"), "message: %s", d.msg);

	/* a lora_B missing */
	snprintf(dir, sizeof(dir), "%s/nob", tt_tmpdir());
	TT_REQUIRE(!doctor(lora_dir("llama-qv"), dir,
			   "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight", 0,
			   NULL), "doctor");
	err = load(&m, "llama", dir, &d);
	TT_CHECK(err == TK_E_FORMAT, "no B: %d %s", err, d.msg);
	TT_CHECK(strstr(d.msg, "no lora_B for model.layers.0.self_attn.v_proj"), "message: %s",
		 d.msg);

	/* the model keeps no adapter after a failure */
	memset(&m, 0, sizeof(m));
	TT_REQUIRE(!tk_model_load(&m, base_dir("llama"), &be, &d), "%s", d.msg);
	TT_CHECK(tk_peft_load(&m, dir, &d) == TK_E_FORMAT && !m.lora, "adapter left behind");
	TT_CHECK(tk_peft_load(&m, lora_dir("llama-qv"), &d) == 0, "%s", d.msg);
	TT_CHECK(tk_peft_load(&m, lora_dir("llama-qv"), &d) == TK_E_INVAL, "second adapter");
	tk_model_free(&m);

	/* no weights file */
	snprintf(dir, sizeof(dir), "%s/noweights", tt_tmpdir());
	write_config(dir, "r", "4");
	memset(&m, 0, sizeof(m));
	TT_REQUIRE(!tk_model_load(&m, base_dir("llama"), &be, &d), "%s", d.msg);
	TT_CHECK(tk_peft_load(&m, dir, &d) == TK_E_IO && strstr(d.path, "adapter_model"),
		 "no weights: %s %s", d.path, d.msg);
	tk_model_free(&m);
}

/* Merged weights vs peft's merge_and_unload(). */
static void test_merge(void)
{
	double worst = 0;

	for (int i = 0; i < N_FIX; i++) {
		const struct fixture *f = &fixtures[i];
		struct tk_model m, base;
		struct tk_diag d;
		tk_safetensors_t *ref = NULL;
		double err = 0;
		char file[1100];
		int changed = 0;

		TT_REQUIRE(!load(&m, f->base, lora_dir(f->name), &d), "%s: %s", f->name, d.msg);
		TT_REQUIRE(!tk_lora_merge(&m, 1.0, &d), "%s: merge: %s", f->name, d.msg);
		TT_REQUIRE(!m.lora, "%s: adapter kept", f->name);
		memset(&base, 0, sizeof(base));
		TT_REQUIRE(!tk_model_load(&base, base_dir(f->base), &be, &d), "%s", d.msg);
		snprintf(file, sizeof(file), "%s.ref.safetensors", lora_dir(f->name));
		TT_REQUIRE(!tk_safetensors_open(&ref, file, &d), "%s", d.msg);
		for (int t = 0; t < m.n_tensors; t++) {
			const struct tk_model_tensor *mt = &m.tensors[t];
			char key[300];
			const struct tk_tensor_info *ti;
			float *a = malloc(mt->n * sizeof(float)), *b = malloc(mt->n * sizeof(float));

			snprintf(key, sizeof(key), "merged.%s", mt->name);
			ti = tk_safetensors_find(ref, key);
			tk_model_export(&m, mt, m.params, a);
			if (ti) {
				changed++;
				TT_CHECK(ti->nelem == mt->n && !tk_safetensors_to_f32(ti, b, &d), "%s", key);
				for (size_t j = 0; j < mt->n; j++)
					err = fmax(err, fabs((double)a[j] - b[j]));
			} else {
				tk_model_export(&base, &base.tensors[t], base.params, b);
				TT_CHECK(!memcmp(a, b, mt->n * sizeof(float)), "%s: %s changed",
					 f->name, mt->name);
			}
			free(a);
			free(b);
		}
		TT_CHECK(changed > 0, "%s: nothing merged", f->name);
		TT_CHECK(err < 1e-5, "%s: max abs error %g", f->name, err);
		worst = fmax(worst, err);
		tk_safetensors_close(ref);
		tk_model_free(&base);
		tk_model_free(&m);
	}
	printf("# merge vs peft merge_and_unload: max abs error %.3g over %d adapters\n", worst,
	       N_FIX);
}

/* The loaded adapter computes peft's logits (its forward is lora.c's; this
 * checks that every tensor landed where it belongs). */
static void test_logits(void)
{
	for (int i = 0; i < N_FIX; i++) {
		const struct fixture *f = &fixtures[i];
		struct tk_model m;
		struct tk_diag d;
		tk_safetensors_t *ref = NULL;
		char file[1100];
		const struct tk_tensor_info *ids, *lg;
		uint32_t u[64];
		float *out;
		double err = 0;

		TT_REQUIRE(!load(&m, f->base, lora_dir(f->name), &d), "%s: %s", f->name, d.msg);
		snprintf(file, sizeof(file), "%s.ref.safetensors", lora_dir(f->name));
		TT_REQUIRE(!tk_safetensors_open(&ref, file, &d), "%s", d.msg);
		ids = tk_safetensors_find(ref, "input_ids");
		lg = tk_safetensors_find(ref, "logits");
		TT_REQUIRE(ids && lg && ids->nelem <= 64, "ref");
		for (size_t j = 0; j < ids->nelem; j++)
			u[j] = (uint32_t)((const int32_t *)ids->data)[j];
		TT_REQUIRE(!tk_model_forward(&m, u, NULL, (int)ids->shape[0], (int)ids->shape[1], 0,
					     0, NULL, &d), "%s: %s", f->name, d.msg);
		out = malloc(lg->nelem * sizeof(float));
		TT_REQUIRE(out && !tk_model_logits(&m, 0, (int)ids->nelem, out, &d), "%s", d.msg);
		for (size_t j = 0; j < lg->nelem; j++)
			err = fmax(err, fabs((double)out[j] - ((const float *)lg->data)[j]));
		TT_CHECK(err < 1e-4, "%s: logits max abs error %g", f->name, err);
		if (getenv("TK_PEFT_KEEP")) {
			tk_safetensors_writer_t *w = NULL;
			char path[1200];
			snprintf(path, sizeof(path), "%s/%s", getenv("TK_PEFT_KEEP"), f->name);
			TT_CHECK(!tk_peft_save(&m, path, 1, &d), "keep: %s", d.msg);
			snprintf(path, sizeof(path), "%s/%s.logits.safetensors",
				 getenv("TK_PEFT_KEEP"), f->name);
			TT_CHECK(!tk_safetensors_writer_new(&w) &&
				 !tk_safetensors_writer_add(w, "logits", TK_DT_F32, lg->ndim, lg->shape, out,
						   &d) &&
				 !tk_safetensors_writer_commit(w, path, 1, &d), "keep: %s", d.msg);
		}
		free(out);
		tk_safetensors_close(ref);
		tk_model_free(&m);
	}
}

static void test_save_refused(void)
{
	struct tk_model m;
	struct tk_diag d;
	char dir[1100];
	struct stat sb;

	memset(&m, 0, sizeof(m));
	TT_REQUIRE(!tk_model_load(&m, base_dir("gpt2"), &be, &d), "%s", d.msg);
	snprintf(dir, sizeof(dir), "%s/none", tt_tmpdir());
	TT_CHECK(tk_peft_save(&m, dir, 0, &d) == TK_E_INVAL, "no adapter");
	TT_CHECK(stat(dir, &sb) != 0, "directory made");
	/* one of the two files there already: nothing written */
	TT_REQUIRE(!tk_peft_load(&m, lora_dir("gpt2-default"), &d), "%s", d.msg);
	mkdir(dir, 0777);
	fclose(fopen(path2(dir, "adapter_model.safetensors"), "w"));
	TT_CHECK(tk_peft_save(&m, dir, 0, &d) == TK_E_EXISTS, "exists");
	TT_CHECK(strstr(d.path, "adapter_model.safetensors"), "path %s", d.path);
	TT_CHECK(stat(path2(dir, "adapter_config.json"), &sb) != 0, "config written");
	TT_CHECK(!stat(path2(dir, "adapter_model.safetensors"), &sb) && sb.st_size == 0,
		 "weights touched");
	tk_model_free(&m);
}

int main(void)
{
	struct tk_diag d;

	if (tk_backend_cpu_init(&be, 1, &d)) {
		printf("FAIL backend: %s\n", d.msg);
		return 1;
	}
	TT_RUN(test_read_config);
	TT_RUN(test_config_refused);
	TT_RUN(test_round_trip);
	TT_RUN(test_another_base);
	TT_RUN(test_long_target_list);
	TT_RUN(test_merge);
	TT_RUN(test_logits);
	TT_RUN(test_save_refused);
	tk_afile_rmtree(tt_tmpdir());
	return tt_done();
}

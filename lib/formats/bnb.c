/* bnb.c - bitsandbytes-quantized Hugging Face model directories: reading
 * the 4-bit and 8-bit weights transformers saves, and writing them
 * (tk-quantize) as transformers + bitsandbytes would. */
#include "formats/bnb.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/afile.h"
#include "base/path.h"
#include "base/quant-common.h"
#include "formats/hf-dir.h"

/* ------------------------------------------------------------------ */
/* config.json                                                         */

static int read_config_json(const char *path, struct tk_buf *text, char *used, size_t usz,
			    struct tk_diag *d)
{
	struct stat st;

	if (!stat(path, &st) && S_ISDIR(st.st_mode))
		snprintf(used, usz, "%s/config.json", path);
	else
		snprintf(used, usz, "%s", path);
	return tk_read_file(used, text, d);
}

static int json_bool(const cJSON *o, const char *key, int def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v);
	return def;
}

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Fills c from a quantization_config object q (not NULL). */
static int parse_qconfig(const cJSON *q, const char *file, struct tk_bnb_config *c,
			 struct tk_diag *d)
{
	const char *method = json_str(q, "quant_method"), *s;

	if (!cJSON_IsObject(q))
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "quantization_config is not an object");
	if (!method || strcmp(method, "bitsandbytes"))
		return tk_diag_set(d, TK_E_UNSUPPORTED, file, -1,
				   "quantization_config: quant_method '%s' is not supported "
				   "(only bitsandbytes)", method ? method : "(none)");
	if (json_bool(q, "load_in_4bit", 0) || json_bool(q, "_load_in_4bit", 0))
		c->bits = 4;
	else if (json_bool(q, "load_in_8bit", 0) || json_bool(q, "_load_in_8bit", 0))
		c->bits = 8;
	else
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "quantization_config: neither load_in_4bit nor load_in_8bit is set");
	c->type = TK_Q4_FP4; /* BitsAndBytesConfig's default */
	s = json_str(q, "bnb_4bit_quant_type");
	if (s && tk_q4_type_parse(s, &c->type, d))
		return tk_diag_set(d, TK_E_UNSUPPORTED, file, -1,
				   "quantization_config: bnb_4bit_quant_type '%s' is not supported "
				   "(nf4 or fp4)", s);
	c->double_quant = json_bool(q, "bnb_4bit_use_double_quant", 0);
	s = json_str(q, "bnb_4bit_compute_dtype");
	snprintf(c->compute_dtype, sizeof(c->compute_dtype), "%s", s ? s : "float32");
	return 0;
}

int tk_bnb_config_read(const char *path, struct tk_bnb_config *c, struct tk_diag *d)
{
	struct tk_buf text = { 0 };
	char file[1100];
	cJSON *root;
	const cJSON *q;
	int rc;

	memset(c, 0, sizeof(*c));
	c->blocksize = 64;
	snprintf(c->compute_dtype, sizeof(c->compute_dtype), "float32");
	rc = read_config_json(path, &text, file, sizeof(file), d);
	if (rc)
		return rc;
	root = cJSON_Parse(text.data);
	tk_buf_free(&text);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return tk_diag_set(d, TK_E_FORMAT, file, -1, "not a JSON object");
	}
	q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
	rc = 0;
	if (q && !cJSON_IsNull(q))
		rc = parse_qconfig(q, file, c, d);
	cJSON_Delete(root);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Reading quantized weights                                           */

static int check_shape(const struct tk_tensor_info *t, enum tk_dtype dt, int ndim,
		       const int64_t *shape, struct tk_diag *d)
{
	int ok = t->dtype == dt && t->ndim == ndim;

	for (int i = 0; ok && i < ndim; i++)
		ok = t->shape[i] == shape[i];
	if (ok)
		return 0;
	char want[96] = "", got[96] = "";
	size_t wl = 0, gl = 0;

	for (int i = 0; i < ndim; i++)
		wl += snprintf(want + wl, sizeof(want) - wl, "%s%lld", i ? ", " : "",
			       (long long)shape[i]);
	for (int i = 0; i < t->ndim && gl < sizeof(got) - 24; i++)
		gl += snprintf(got + gl, sizeof(got) - gl, "%s%lld", i ? ", " : "",
			       (long long)t->shape[i]);
	return tk_diag_set(d, TK_E_FORMAT, t->file, -1,
			   "tensor %s: expected %s [%s], found %s [%s]", t->name,
			   tk_dtype_name(dt), want, tk_dtype_name(t->dtype), got);
}

/* Finds name + suffix; TK_E_FORMAT naming both when absent. */
static int find_stat(const tk_safetensors_t *st, const char *name, const char *suffix,
		     const struct tk_tensor_info **out, struct tk_diag *d)
{
	char key[1024];

	snprintf(key, sizeof(key), "%s%s", name, suffix);
	*out = tk_safetensors_find(st, key);
	if (!*out)
		return tk_diag_set(d, TK_E_FORMAT, NULL, -1,
				   "quantized weight %s: %s is missing", name, key);
	return 0;
}

static void *dup_data(const struct tk_tensor_info *t)
{
	void *p = malloc(t->nbytes ? t->nbytes : 1);

	if (p) {
		memcpy(p, t->data, t->nbytes);
		tk_safetensors_release(t); /* the file's pages: copied */
	}
	return p;
}

static int read_int8(const tk_safetensors_t *st, const struct tk_tensor_info *w, int64_t rows,
		     int64_t cols, struct tk_qweight *q, struct tk_diag *d)
{
	const struct tk_tensor_info *scb;
	char mod[1024];
	const char *name = w->name;
	size_t len = strlen(name);
	int64_t shape[2] = { rows, cols };
	int rc;

	/* transformers saves MODULE.SCB beside MODULE.weight */
	if (len > 7 && !strcmp(name + len - 7, ".weight")) {
		snprintf(mod, sizeof(mod), "%.*s", (int)(len - 7), name);
		rc = find_stat(st, mod, ".SCB", &scb, d);
	} else {
		rc = find_stat(st, name, ".SCB", &scb, d);
	}
	if (rc)
		return rc;
	if ((rc = check_shape(w, TK_DT_I8, 2, shape, d)) ||
	    (rc = check_shape(scb, TK_DT_F32, 1, shape, d)))
		return rc;
	q->kind = TK_QK_INT8;
	q->rows = rows;
	q->cols = cols;
	q->data = dup_data(w);
	q->scb = dup_data(scb);
	if (!q->data || !q->scb) {
		tk_qweight_free(q);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory reading %s", name);
	}
	return 0;
}

/* Parses the quant_state JSON of a 4-bit weight. */
struct qstate {
	enum tk_q4_type type;
	long long blocksize;
	int64_t shape[2];
	int nested;
	float offset;
	long long nested_blocksize;
};

static int parse_qstate(const struct tk_tensor_info *t, const char *wname, struct qstate *s,
			struct tk_diag *d)
{
	cJSON *j = cJSON_ParseWithLength((const char *)t->data, t->nbytes);
	const cJSON *v, *sh;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	if (!cJSON_IsObject(j)) {
		rc = tk_diag_set(d, TK_E_FORMAT, t->file, -1,
				 "tensor %s: not a JSON object", t->name);
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(j, "quant_type");
	if (!cJSON_IsString(v) || tk_q4_type_parse(v->valuestring, &s->type, NULL)) {
		rc = tk_diag_set(d, TK_E_FORMAT, t->file, -1,
				 "tensor %s: quant_type missing or not nf4/fp4", t->name);
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(j, "blocksize");
	s->blocksize = cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
	if (!cJSON_IsNumber(v) || !tk_q4_blocksize_ok(s->blocksize) ||
	    (double)s->blocksize != v->valuedouble) {
		rc = tk_diag_set(d, TK_E_FORMAT, t->file, -1,
				 "tensor %s: blocksize missing or not a power of two from 32 to 4096",
				 t->name);
		goto out;
	}
	sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
	if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) != 2 ||
	    !cJSON_IsNumber(cJSON_GetArrayItem(sh, 0)) ||
	    !cJSON_IsNumber(cJSON_GetArrayItem(sh, 1))) {
		rc = tk_diag_set(d, TK_E_FORMAT, t->file, -1,
				 "tensor %s: shape missing or not [rows, cols]", t->name);
		goto out;
	}
	s->shape[0] = (int64_t)cJSON_GetArrayItem(sh, 0)->valuedouble;
	s->shape[1] = (int64_t)cJSON_GetArrayItem(sh, 1)->valuedouble;
	v = cJSON_GetObjectItemCaseSensitive(j, "nested_offset");
	if (v) {
		const cJSON *nb = cJSON_GetObjectItemCaseSensitive(j, "nested_blocksize");

		if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !cJSON_IsNumber(nb)) {
			rc = tk_diag_set(d, TK_E_FORMAT, t->file, -1,
					 "tensor %s: bad nested_offset or nested_blocksize",
					 t->name);
			goto out;
		}
		s->nested = 1;
		s->offset = (float)v->valuedouble;
		s->nested_blocksize = (long long)nb->valuedouble;
		if (s->nested_blocksize != TK_Q4_NESTED_BLOCKSIZE) {
			rc = tk_diag_set(d, TK_E_UNSUPPORTED, t->file, -1,
					 "tensor %s: nested_blocksize %lld is not supported (256)",
					 t->name, s->nested_blocksize);
			goto out;
		}
	}
	(void)wname;
out:
	cJSON_Delete(j);
	return rc;
}

static int same_floats(const struct tk_tensor_info *t, const float *want, int n)
{
	return t->nbytes == (uint64_t)n * 4 && !memcmp(t->data, want, (size_t)n * 4);
}

static int read_4bit(const tk_safetensors_t *st, const struct tk_tensor_info *w, int64_t rows,
		     int64_t cols, struct tk_qweight *q, struct tk_diag *d)
{
	const char *name = w->name;
	const struct tk_tensor_info *qs, *am, *qm, *na = NULL, *nm = NULL;
	struct qstate s;
	char key[1024];
	size_t n, nb, nnb;
	int rc;

	snprintf(key, sizeof(key), "%s.quant_state.bitsandbytes__nf4", name);
	qs = tk_safetensors_find(st, key);
	if (!qs) {
		snprintf(key, sizeof(key), "%s.quant_state.bitsandbytes__fp4", name);
		qs = tk_safetensors_find(st, key);
	}
	if (!qs)
		return tk_diag_set(d, TK_E_FORMAT, w->file, -1,
				   "quantized weight %s: %s.quant_state.bitsandbytes__nf4 "
				   "(or __fp4) is missing", name, name);
	if ((rc = parse_qstate(qs, name, &s, d)))
		return rc;
	if (s.shape[0] != rows || s.shape[1] != cols)
		return tk_diag_set(d, TK_E_FORMAT, w->file, -1,
				   "quantized weight %s: expected shape [%lld, %lld], quant_state "
				   "says [%lld, %lld]", name, (long long)rows, (long long)cols,
				   (long long)s.shape[0], (long long)s.shape[1]);
	n = (size_t)rows * (size_t)cols;
	nb = tk_q4_nblocks(n, (size_t)s.blocksize);
	nnb = tk_q4_nblocks(nb, TK_Q4_NESTED_BLOCKSIZE);
	{
		int64_t sh[2] = { (int64_t)tk_q4_packed_size(n), 1 };

		if (w->ndim == 1)
			sh[0] = (int64_t)tk_q4_packed_size(n);
		if ((rc = check_shape(w, TK_DT_U8, w->ndim == 1 ? 1 : 2, sh, d)))
			return rc;
	}
	if ((rc = find_stat(st, name, ".absmax", &am, d)) ||
	    (rc = find_stat(st, name, ".quant_map", &qm, d)))
		return rc;
	{
		int64_t sh16 = 16, shnb = (int64_t)nb;

		if ((rc = check_shape(qm, TK_DT_F32, 1, &sh16, d)) ||
		    (rc = check_shape(am, s.nested ? TK_DT_U8 : TK_DT_F32, 1, &shnb, d)))
			return rc;
	}
	if (!same_floats(qm, tk_q4_code(s.type), 16))
		return tk_diag_set(d, TK_E_UNSUPPORTED, qm->file, -1,
				   "tensor %s: a quant_map other than bitsandbytes' %s code is not "
				   "supported", qm->name, tk_q4_type_name(s.type));
	if (s.nested) {
		int64_t shn = (int64_t)nnb, sh256 = 256;

		if ((rc = find_stat(st, name, ".nested_absmax", &na, d)) ||
		    (rc = find_stat(st, name, ".nested_quant_map", &nm, d)) ||
		    (rc = check_shape(na, TK_DT_F32, 1, &shn, d)) ||
		    (rc = check_shape(nm, TK_DT_F32, 1, &sh256, d)))
			return rc;
		if (!same_floats(nm, tk_dynamic_code, 256))
			return tk_diag_set(d, TK_E_UNSUPPORTED, nm->file, -1,
					   "tensor %s: a nested_quant_map other than bitsandbytes' "
					   "dynamic map is not supported", nm->name);
	}
	memset(q, 0, sizeof(*q));
	q->kind = s.type == TK_Q4_FP4 ? TK_QK_FP4 : TK_QK_NF4;
	q->rows = rows;
	q->cols = cols;
	q->blocksize = (size_t)s.blocksize;
	q->nested = s.nested;
	q->offset = s.offset;
	q->data = dup_data(w);
	if (s.nested) {
		q->qabsmax = dup_data(am);
		q->nested_absmax = dup_data(na);
	} else {
		q->absmax = dup_data(am);
	}
	if (!q->data || (s.nested ? !q->qabsmax || !q->nested_absmax : !q->absmax)) {
		tk_qweight_free(q);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory reading %s", name);
	}
	return 0;
}

int tk_bnb_read_weight(const tk_safetensors_t *st, const char *name, int64_t rows, int64_t cols,
		       struct tk_qweight *q, struct tk_diag *d)
{
	const struct tk_tensor_info *w = tk_safetensors_find(st, name);

	memset(q, 0, sizeof(*q));
	if (rows <= 0 || cols <= 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "tensor %s: bad shape [%lld, %lld]",
				   name, (long long)rows, (long long)cols);
	if (!w)
		return tk_diag_set(d, TK_E_FORMAT, NULL, -1, "tensor %s is missing", name);
	if (w->dtype == TK_DT_I8)
		return read_int8(st, w, rows, cols, q, d);
	if (w->dtype == TK_DT_U8)
		return read_4bit(st, w, rows, cols, q, d);
	return tk_diag_set(d, TK_E_FORMAT, w->file, -1,
			   "tensor %s is %s, not a bitsandbytes 4-bit (U8) or 8-bit (I8) weight",
			   name, tk_dtype_name(w->dtype));
}

/* ------------------------------------------------------------------ */
/* Writing: tk-quantize                                                */

/* Python's repr() of a double (shortest round-trip digits; fixed notation
 * for decimal exponents -4..15, else d.ddde+XX), as json.dumps writes it. */
static void py_float_repr(double v, char *out, size_t osz)
{
	char buf[64], digits[32];
	int p, exp10, nd = 0;

	if (v == 0) {
		snprintf(out, osz, "%s", signbit(v) ? "-0.0" : "0.0");
		return;
	}
	for (p = 1; p <= 17; p++) {
		snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	/* buf: [-]d[.ddd]e[+-]XX */
	const char *s = buf;
	int neg = *s == '-';

	if (neg)
		s++;
	for (; *s && *s != 'e'; s++)
		if (*s != '.')
			digits[nd++] = *s;
	digits[nd] = 0;
	exp10 = atoi(s + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		digits[--nd] = 0;
	size_t o = 0;

	if (neg)
		o += snprintf(out + o, osz - o, "-");
	if (exp10 >= -4 && exp10 < 16) {
		if (exp10 < 0) {
			o += snprintf(out + o, osz - o, "0.");
			for (int i = -1; i > exp10; i--)
				o += snprintf(out + o, osz - o, "0");
			snprintf(out + o, osz - o, "%s", digits);
		} else {
			for (int i = 0; i <= exp10; i++)
				o += snprintf(out + o, osz - o, "%c", i < nd ? digits[i] : '0');
			o += snprintf(out + o, osz - o, ".");
			if (nd > exp10 + 1)
				snprintf(out + o, osz - o, "%s", digits + exp10 + 1);
			else
				snprintf(out + o, osz - o, "0");
		}
	} else {
		o += snprintf(out + o, osz - o, "%c", digits[0]);
		if (nd > 1)
			o += snprintf(out + o, osz - o, ".%s", digits + 1);
		snprintf(out + o, osz - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
	}
}

static const char *dtype_torch_name(enum tk_dtype t)
{
	return t == TK_DT_BF16 ? "bfloat16" : t == TK_DT_F16 ? "float16" : "float32";
}

/* What tk_bnb_quantize_dir learns from the input's config.json. */
struct in_config {
	int gpt2;
	int tied;
	enum tk_dtype dtype;   /* TK_DT_COUNT: none given */
};

static int dtype_from_torch(const char *s, enum tk_dtype *t)
{
	if (!strcmp(s, "float32"))
		*t = TK_DT_F32;
	else if (!strcmp(s, "float16"))
		*t = TK_DT_F16;
	else if (!strcmp(s, "bfloat16"))
		*t = TK_DT_BF16;
	else
		return -1;
	return 0;
}

static int parse_in_config(const char *text, const char *file, struct in_config *ic,
			   struct tk_diag *d)
{
	cJSON *j = cJSON_Parse(text);
	const cJSON *q;
	const char *mt, *dt;
	int rc = 0;

	memset(ic, 0, sizeof(*ic));
	ic->dtype = TK_DT_COUNT;
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return tk_diag_set(d, TK_E_FORMAT, file, -1, "not a JSON object");
	}
	q = cJSON_GetObjectItemCaseSensitive(j, "quantization_config");
	if (q && !cJSON_IsNull(q)) {
		const char *m = cJSON_IsObject(q) ? json_str(q, "quant_method") : NULL;

		rc = tk_diag_set(d, TK_E_INVAL, file, -1,
				 "the model is already quantized (quantization_config, quant_method "
				 "%s): quantize the original floating-point model", m ? m : "unknown");
		goto out;
	}
	mt = json_str(j, "model_type");
	ic->gpt2 = mt && !strcmp(mt, "gpt2");
	ic->tied = json_bool(j, "tie_word_embeddings", ic->gpt2);
	dt = json_str(j, "dtype");
	if (!dt)
		dt = json_str(j, "torch_dtype");
	if (dt && dtype_from_torch(dt, &ic->dtype))
		rc = tk_diag_set(d, TK_E_UNSUPPORTED, file, -1,
				 "dtype '%s' is not supported (float32, float16 or bfloat16)", dt);
out:
	cJSON_Delete(j);
	return rc;
}

/* The quantization_config text transformers writes (keys sorted, nested
 * one level deeper than ind). */
static void qconfig_text(struct tk_buf *b, const struct tk_bnb_opts *o, const char *ind)
{
	int four = o->bits == 4;
	const char *cd = o->compute_dtype[0] ? o->compute_dtype : "float32";
	char tf[2][8] = { "false", "true" }, q[3][24];
	const char *kv[][2] = {
		{ "_load_in_4bit", tf[four] },
		{ "_load_in_8bit", tf[!four] },
		{ "bnb_4bit_compute_dtype", q[0] },
		{ "bnb_4bit_quant_storage", "\"uint8\"" },
		{ "bnb_4bit_quant_type", q[1] },
		{ "bnb_4bit_use_double_quant", tf[!!o->double_quant] },
		{ "llm_int8_enable_fp32_cpu_offload", "false" },
		{ "llm_int8_has_fp16_weight", "false" },
		{ "llm_int8_skip_modules", "null" },
		{ "llm_int8_threshold", "6.0" },
		{ "load_in_4bit", tf[four] },
		{ "load_in_8bit", tf[!four] },
		{ "quant_method", "\"bitsandbytes\"" },
	};
	size_t n = sizeof(kv) / sizeof(kv[0]), il = strlen(ind);

	snprintf(q[0], sizeof(q[0]), "\"%s\"", cd);
	snprintf(q[1], sizeof(q[1]), "\"%s\"", tk_q4_type_name(o->type));
	tk_buf_append(b, "\"quantization_config\": {\n", 25);
	for (size_t i = 0; i < n; i++) {
		tk_buf_append(b, ind, il);
		tk_buf_append(b, ind, il);
		tk_buf_append(b, "\"", 1);
		tk_buf_append(b, kv[i][0], strlen(kv[i][0]));
		tk_buf_append(b, "\": ", 3);
		tk_buf_append(b, kv[i][1], strlen(kv[i][1]));
		tk_buf_append(b, i + 1 < n ? ",\n" : "\n", i + 1 < n ? 2 : 1);
	}
	tk_buf_append(b, ind, il);
	tk_buf_append(b, "}", 1);
}

/* Inserts quantization_config into the config.json text at the place where
 * transformers' sorted keys put it, keeping every other byte. */
static int config_with_qconfig(const char *text, const struct tk_bnb_opts *o, struct tk_buf *out)
{
	const char *p = text, *obj = NULL, *ins = NULL, *last_val_end = NULL;
	char ind[16] = "  ";
	int depth = 0, found_ind = 0;

	out->len = 0;
	for (; *p; p++) {
		if (*p == '"') {
			const char *k = p + 1, *e = k;

			while (*e && *e != '"')
				e += *e == '\\' && e[1] ? 2 : 1;
			if (depth == 1) {
				/* a top-level key if followed by ':' */
				const char *c = e + 1;

				while (*c == ' ' || *c == '\n' || *c == '\r' || *c == '\t')
					c++;
				if (*c == ':') {
					const char *ls = p;

					while (ls > obj && (ls[-1] == ' ' || ls[-1] == '\t'))
						ls--;
					if (!found_ind && ls[-1] == '\n' && p - ls < 15) {
						snprintf(ind, sizeof(ind), "%.*s", (int)(p - ls), ls);
						found_ind = 1;
					}
					if (!ins) {
						/* the first key that sorts after ours */
						char key[256];
						size_t kl = (size_t)(e - k) < 255 ? (size_t)(e - k) : 255;

						memcpy(key, k, kl);
						key[kl] = 0;
						if (strcmp(key, "quantization_config") > 0)
							ins = p;
					}
				}
			}
			p = *e ? e : e - 1;
			continue;
		}
		if (*p == '{' || *p == '[') {
			if (depth == 0 && *p == '{')
				obj = p;
			depth++;
		} else if (*p == '}' || *p == ']') {
			depth--;
			if (depth == 0) {
				last_val_end = p;
				break;
			}
		}
	}
	if (!obj || !last_val_end)
		return TK_E_FORMAT;
	if (ins) {
		tk_buf_append(out, text, (size_t)(ins - text));
		qconfig_text(out, o, ind);
		tk_buf_append(out, ",\n", 2);
		tk_buf_append(out, ind, strlen(ind));
		tk_buf_append(out, ins, strlen(ins));
	} else {
		/* after the last value: back up over whitespace before '}' */
		const char *e = last_val_end;
		int empty;

		while (e > obj + 1 && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' ||
				       e[-1] == '\t'))
			e--;
		empty = e == obj + 1;
		tk_buf_append(out, text, (size_t)(e - text));
		tk_buf_append(out, empty ? "\n" : ",\n", empty ? 1 : 2);
		tk_buf_append(out, ind, strlen(ind));
		qconfig_text(out, o, ind);
		tk_buf_append(out, "\n", 1);
		tk_buf_append(out, last_val_end, strlen(last_val_end));
	}
	return tk_buf_append(out, "", 1) ? TK_E_NOMEM : 0;
}

/* Which tensors transformers replaces by bitsandbytes layers: the weights
 * of every nn.Linear / Conv1D, i.e. 2-D ".weight" tensors other than
 * embeddings and lm_head. */
static int is_quantized_name(const struct tk_tensor_info *t)
{
	const char *n = t->name, *last;
	size_t len = strlen(n);
	char mod[512];

	if (t->ndim != 2 || len < 8 || strcmp(n + len - 7, ".weight") ||
	    (t->dtype != TK_DT_F32 && t->dtype != TK_DT_F16 && t->dtype != TK_DT_BF16))
		return 0;
	snprintf(mod, sizeof(mod), "%.*s", (int)(len - 7), n);
	last = strrchr(mod, '.');
	last = last ? last + 1 : mod;
	if (!strcmp(last, "lm_head") || strstr(last, "embed") || !strcmp(last, "wte") ||
	    !strcmp(last, "wpe"))
		return 0;
	return 1;
}

static int is_gpt2_conv1d(const char *name)
{
	static const char *const suf[] = { ".attn.c_attn.weight", ".attn.c_proj.weight",
					   ".mlp.c_fc.weight", ".mlp.c_proj.weight" };
	size_t len = strlen(name);

	for (size_t i = 0; i < sizeof(suf) / sizeof(suf[0]); i++) {
		size_t sl = strlen(suf[i]);

		if (len > sl && !strcmp(name + len - sl, suf[i]))
			return 1;
	}
	return 0;
}

/* Round a value to dtype and back (what the cast to the model dtype does). */
static float round_to(float v, enum tk_dtype t)
{
	if (t == TK_DT_BF16)
		return tk_bf16_to_f32(tk_f32_to_bf16(v));
	if (t == TK_DT_F16)
		return tk_f16_to_f32(tk_f32_to_f16(v));
	return v;
}

/* Owned buffers of the output, freed after commit. */
struct outbufs {
	void **p;
	size_t n, cap;
};

static void *keep(struct outbufs *ob, void *p)
{
	if (!p)
		return NULL;
	if (tk_grow(&ob->p, &ob->cap, ob->n + 1, sizeof(void *))) {
		free(p);
		return NULL;
	}
	ob->p[ob->n++] = p;
	return p;
}

static void outbufs_free(struct outbufs *ob)
{
	for (size_t i = 0; i < ob->n; i++)
		free(ob->p[i]);
	free(ob->p);
	memset(ob, 0, sizeof(*ob));
}

/* Quantizes x[n] (4-bit) in parallel chunks of whole blocks. */
static int q4_parallel(const float *x, size_t n, const struct tk_bnb_opts *o, uint8_t *packed,
		       float *absmax, const char *name, struct tk_diag *d)
{
	struct tk_diag dd;

	if (tk_q4_quantize_parallel(x, n, o->type, o->blocksize, packed, absmax, &dd))
		return tk_diag_set(d, TK_E_FORMAT, NULL, -1,
				   "tensor %s: element %lld is not finite (cannot quantize)", name,
				   dd.offset);
	return 0;
}

static int add(tk_safetensors_writer_t *w, const char *name, enum tk_dtype dt, int ndim, int64_t a,
	       int64_t b, const void *data, struct tk_diag *d)
{
	int64_t shape[2] = { a, b };

	return tk_safetensors_writer_add(w, name, dt, ndim, shape, data, d);
}

/* Quantizes one weight x [rows, cols] (fp32, already in [out, in]) into
 * the writer under name. */
static int quantize_one(tk_safetensors_writer_t *w, struct outbufs *ob, const char *name, float *x,
			int64_t rows, int64_t cols, enum tk_dtype model_dt,
			const struct tk_bnb_opts *o, struct tk_diag *d)
{
	size_t n = (size_t)rows * (size_t)cols;
	char key[1200];
	int rc;

	if (o->bits == 8) {
		int8_t *cb = keep(ob, malloc(n));
		float *scb = keep(ob, malloc((size_t)rows * sizeof(float)));
		uint8_t *fmt = keep(ob, calloc(1, 1));
		size_t len = strlen(name);
		int bad = 0;

		if (!cb || !scb || !fmt)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
#pragma omp parallel for schedule(static)
		for (int64_t r = 0; r < rows; r++) {
			float *xr = x + r * cols, rs = 0.0f, scale;

			/* bitsandbytes casts to fp16 first */
			for (int64_t c = 0; c < cols; c++) {
				xr[c] = tk_f16_to_f32(tk_f32_to_f16(xr[c]));
				if (!isfinite(xr[c]))
					bad = 1;
				if (fabsf(xr[c]) > rs)
					rs = fabsf(xr[c]);
			}
			scb[r] = rs;
			/* torch evaluates 127.0 / t as t.reciprocal() * 127 */
			scale = (1.0f / rs) * 127.0f;
			for (int64_t c = 0; c < cols; c++) {
				float v = xr[c] * scale;

				cb[r * cols + c] = rs == 0.0f ? 0 : (int8_t)nearbyintf(v);
			}
		}
		if (bad)
			return tk_diag_set(d, TK_E_FORMAT, NULL, -1,
					   "tensor %s: a value is not finite in float16 "
					   "(cannot quantize to int8)", name);
		snprintf(key, sizeof(key), "%.*s.SCB", (int)(len - 7), name);
		if ((rc = add(w, name, TK_DT_I8, 2, rows, cols, cb, d)) ||
		    (rc = add(w, key, TK_DT_F32, 1, rows, 0, scb, d)))
			return rc;
		snprintf(key, sizeof(key), "%.*s.weight_format", (int)(len - 7), name);
		return add(w, key, TK_DT_U8, 0, 0, 0, fmt, d);
	}

	size_t nb = tk_q4_nblocks(n, o->blocksize), psz = tk_q4_packed_size(n);
	uint8_t *packed = keep(ob, malloc(psz));
	float *absmax = keep(ob, malloc(nb * sizeof(float)));
	char js[512], off[64] = "";
	const char *tn = tk_q4_type_name(o->type);

	if (!packed || !absmax)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	if ((rc = q4_parallel(x, n, o, packed, absmax, name, d)))
		return rc;
	if ((rc = add(w, name, TK_DT_U8, 2, (int64_t)psz, 1, packed, d)))
		return rc;
	snprintf(key, sizeof(key), "%s.quant_map", name);
	if ((rc = add(w, key, TK_DT_F32, 1, 16, 0, tk_q4_code(o->type), d)))
		return rc;
	snprintf(key, sizeof(key), "%s.absmax", name);
	if (o->double_quant) {
		size_t nnb = tk_q4_nblocks(nb, TK_Q4_NESTED_BLOCKSIZE);
		uint8_t *qa = keep(ob, malloc(nb));
		float *na = keep(ob, malloc(nnb * sizeof(float)));
		float offset = tk_q4_torch_mean(absmax, nb, o->torch_threads > 0 ? o->torch_threads : 1);

		if (!qa || !na)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		if ((rc = tk_q4_nest(absmax, nb, offset, qa, na, d)))
			return tk_diag_set(d, TK_E_FORMAT, NULL, -1, "tensor %s: %s", name, d->msg);
		if ((rc = add(w, key, TK_DT_U8, 1, (int64_t)nb, 0, qa, d)))
			return rc;
		snprintf(key, sizeof(key), "%s.nested_absmax", name);
		if ((rc = add(w, key, TK_DT_F32, 1, (int64_t)nnb, 0, na, d)))
			return rc;
		snprintf(key, sizeof(key), "%s.nested_quant_map", name);
		if ((rc = add(w, key, TK_DT_F32, 1, 256, 0, tk_dynamic_code, d)))
			return rc;
		py_float_repr((double)offset, off, sizeof(off));
		snprintf(js, sizeof(js),
			 "{\"quant_type\": \"%s\", \"blocksize\": %zu, \"dtype\": \"%s\", "
			 "\"shape\": [%lld, %lld], \"nested_blocksize\": 256, "
			 "\"nested_dtype\": \"float32\", \"nested_offset\": %s}",
			 tn, o->blocksize, dtype_torch_name(model_dt), (long long)rows,
			 (long long)cols, off);
	} else {
		if ((rc = add(w, key, TK_DT_F32, 1, (int64_t)nb, 0, absmax, d)))
			return rc;
		snprintf(js, sizeof(js),
			 "{\"quant_type\": \"%s\", \"blocksize\": %zu, \"dtype\": \"%s\", "
			 "\"shape\": [%lld, %lld]}",
			 tn, o->blocksize, dtype_torch_name(model_dt), (long long)rows,
			 (long long)cols);
	}
	char *jc = keep(ob, strdup(js));

	if (!jc)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	snprintf(key, sizeof(key), "%s.quant_state.bitsandbytes__%s", name, tn);
	return add(w, key, TK_DT_U8, 1, (int64_t)strlen(jc), 0, jc, d);
}

static int write_text(const char *path, const char *s, struct tk_diag *d)
{
	FILE *f = fopen(path, "wb");
	size_t n = strlen(s);

	if (!f)
		return tk_diag_sys(d, path, "cannot create");
	if (fwrite(s, 1, n, f) != n || fflush(f) || fsync(fileno(f))) {
		fclose(f);
		return tk_diag_sys(d, path, "cannot write");
	}
	if (fclose(f))
		return tk_diag_sys(d, path, "cannot write");
	return 0;
}

void tk_bnb_opts_init(struct tk_bnb_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->bits = 4;
	o->type = TK_Q4_NF4;
	o->blocksize = 64;
	snprintf(o->compute_dtype, sizeof(o->compute_dtype), "float32");
	o->torch_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
}

int tk_bnb_check_opts(const struct tk_bnb_opts *o, struct tk_diag *d)
{
	if (o->bits != 4 && o->bits != 8)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "bits must be 4 or 8, not %d", o->bits);
	if (o->type != TK_Q4_NF4 && o->type != TK_Q4_FP4)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "unknown 4-bit quant type");
	if (o->bits == 4 && !tk_q4_blocksize_ok((long long)o->blocksize))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "blocksize %zu is not a power of two from 32 to 4096",
				   o->blocksize);
	if (o->compute_dtype[0] && strcmp(o->compute_dtype, "float32") &&
	    strcmp(o->compute_dtype, "float16") && strcmp(o->compute_dtype, "bfloat16"))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "compute dtype '%s' is not float32, float16 or bfloat16",
				   o->compute_dtype);
	return 0;
}

/* The input's tensors before anything is written: TK_E_INVAL naming one
 * that shows the model is already quantized; *model_dt gets the model
 * dtype (config.json's, else the first floating-point tensor's, else F32)
 * and *total the bytes of the tensors. */
static int scan_input(tk_safetensors_t *st, const struct in_config *ic, enum tk_dtype *model_dt,
		      uint64_t *total, struct tk_diag *d)
{
	size_t nt = tk_safetensors_count(st);
	*model_dt = ic->dtype;
	*total = 0;
	for (size_t i = 0; i < nt; i++) {
		const struct tk_tensor_info *t = tk_safetensors_at(st, i);
		size_t tl = strlen(t->name);

		if (strstr(t->name, ".quant_state.") ||
		    (tl > 4 && !strcmp(t->name + tl - 4, ".SCB")) ||
		    (tl > 7 && !strcmp(t->name + tl - 7, ".weight") &&
		     (t->dtype == TK_DT_U8 || t->dtype == TK_DT_I8)))
			return tk_diag_set(d, TK_E_INVAL, t->file, -1,
					   "the model is already quantized (tensor %s): quantize the "
					   "original floating-point model", t->name);
		if (*model_dt == TK_DT_COUNT &&
		    (t->dtype == TK_DT_F32 || t->dtype == TK_DT_F16 || t->dtype == TK_DT_BF16))
			*model_dt = t->dtype;
		*total += t->nbytes;
	}
	if (*model_dt == TK_DT_COUNT)
		*model_dt = TK_DT_F32;
	return 0;
}

/* The name tensor t has in the output, into name[size]; 0 for a tensor
 * the output leaves out.  GPT-2 checkpoints from the Hub lack the
 * "transformer." prefix and carry the attention mask buffers;
 * transformers saves neither that way; a tied lm_head is not saved. */
static int out_name(const struct in_config *ic, const struct tk_tensor_info *t, char *name,
		    size_t size)
{
	size_t len = strlen(t->name);

	if (ic->gpt2 && strncmp(t->name, "transformer.", 12) && strncmp(t->name, "lm_head.", 8))
		snprintf(name, size, "transformer.%s", t->name);
	else
		snprintf(name, size, "%s", t->name);
	if (ic->gpt2 && ((len > 9 && !strcmp(t->name + len - 9, ".attn.bias")) ||
			 (len > 17 && !strcmp(t->name + len - 17, ".attn.masked_bias"))))
		return 0;
	return !(ic->tied && !strcmp(name, "lm_head.weight"));
}

/* The float buffer a weight is cast in: [cap] for the weight, then [cap]
 * for its input values. */
struct cast_buf {
	float *x;
	size_t cap;
};

/* A weight that is quantized: cast to the model dtype (GPT-2's Conv1D
 * [in, out] transposed to [out, in] first), then quantize_one. */
static int quantize_weight(tk_safetensors_writer_t *w, struct outbufs *ob, struct cast_buf *cb,
			   const struct tk_tensor_info *t, const char *name,
			   const struct in_config *ic, enum tk_dtype model_dt,
			   const struct tk_bnb_opts *o, struct tk_diag *d)
{
	int64_t rows = t->shape[0], cols = t->shape[1];
	size_t n = (size_t)t->nelem;
	int rc;

	if (n > cb->cap) {
		free(cb->x);
		cb->x = tk_mallocn(n, 2 * sizeof(float));
		cb->cap = cb->x ? n : 0;
		if (!cb->x)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	float *x = cb->x, *raw = cb->x + cb->cap;

	if ((rc = tk_safetensors_to_f32(t, raw, d)))
		return rc;
	if (ic->gpt2 && is_gpt2_conv1d(name)) {
		/* Conv1D [in, out] -> [out, in] */
		rows = t->shape[1];
		cols = t->shape[0];
#pragma omp parallel for schedule(static)
		for (int64_t r = 0; r < rows; r++)
			for (int64_t c = 0; c < cols; c++)
				x[r * cols + c] = round_to(raw[c * rows + r], model_dt);
	} else {
#pragma omp parallel for schedule(static)
		for (size_t k = 0; k < n; k++)
			x[k] = round_to(raw[k], model_dt);
	}
	rc = quantize_one(w, ob, name, x, rows, cols, model_dt, o, d);
	if (rc && !d->path[0])
		snprintf(d->path, sizeof(d->path), "%s", t->file);
	return rc;
}

/* A floating-point tensor of another dtype than the model's, cast to it as
 * transformers casts it. */
static int cast_tensor(tk_safetensors_writer_t *w, struct outbufs *ob,
		       const struct tk_tensor_info *t, const char *name, enum tk_dtype model_dt,
		       struct tk_diag *d)
{
	size_t n = (size_t)t->nelem, es = tk_dtype_size(model_dt);
	float *f = malloc(n * sizeof(float) + 1);
	void *c = keep(ob, malloc(n * es + 1));
	int rc;

	if (!f || !c) {
		free(f);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	if ((rc = tk_safetensors_to_f32(t, f, d))) {
		free(f);
		return rc;
	}
	for (size_t k = 0; k < n; k++) {
		if (model_dt == TK_DT_F32)
			((float *)c)[k] = f[k];
		else if (model_dt == TK_DT_F16)
			((uint16_t *)c)[k] = tk_f32_to_f16(f[k]);
		else
			((uint16_t *)c)[k] = tk_f32_to_bf16(f[k]);
	}
	free(f);
	return tk_safetensors_writer_add(w, name, model_dt, t->ndim, t->shape, c, d);
}

/* Every tensor of st into w, in the input's order: quantized, cast or as
 * it is (the output keeps what the input holds until w is committed);
 * o->progress after each. */
static int add_tensors(tk_safetensors_writer_t *w, struct outbufs *ob, tk_safetensors_t *st,
		       const struct in_config *ic, enum tk_dtype model_dt, uint64_t total,
		       const struct tk_bnb_opts *o, struct tk_diag *d)
{
	struct cast_buf cb = { 0 };
	size_t nt = tk_safetensors_count(st);
	uint64_t done = 0;
	int rc = 0;

	for (size_t i = 0; i < nt && !rc; i++) {
		const struct tk_tensor_info *t = tk_safetensors_at(st, i);
		char name[1100];

		if (!out_name(ic, t, name, sizeof(name)))
			;
		else if (is_quantized_name(t))
			rc = quantize_weight(w, ob, &cb, t, name, ic, model_dt, o, d);
		else if ((t->dtype == TK_DT_F32 || t->dtype == TK_DT_F16 ||
			  t->dtype == TK_DT_BF16) && t->dtype != model_dt)
			rc = cast_tensor(w, ob, t, name, model_dt, d);
		else
			rc = tk_safetensors_writer_add(w, name, t->dtype, t->ndim, t->shape, t->data,
						       d);
		if (rc)
			break;
		done += t->nbytes;
		if (o->progress)
			o->progress(o->progress_arg, name, done, total);
	}
	free(cb.x);
	return rc;
}

/* model.safetensors (w, which this frees) and config.json (text) into the
 * output directory being made. */
static int write_model(struct tk_afile_dir *dir, tk_safetensors_writer_t *w, const char *text,
		       struct tk_diag *d)
{
	char *sp = tk_afile_dir_file(dir, "model.safetensors");
	char *cp = tk_afile_dir_file(dir, "config.json");
	int rc;

	if (!sp || !cp) {
		free(sp);
		free(cp);
		tk_safetensors_writer_free(w);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	rc = tk_safetensors_writer_commit(w, sp, 0, d);
	if (!rc)
		rc = write_text(cp, text, d);
	free(sp);
	free(cp);
	return rc;
}

int tk_bnb_quantize_dir(const char *in, const char *out, const struct tk_bnb_opts *o, int force,
			struct tk_diag *d)
{
	struct tk_buf cfg = { 0 }, ncfg = { 0 };
	struct in_config ic;
	struct outbufs ob = { 0 };
	struct tk_afile_dir dir = { 0 };
	tk_safetensors_t *st = NULL;
	tk_safetensors_writer_t *w = NULL;
	char file[1100];
	enum tk_dtype model_dt;
	uint64_t total;
	int rc, dir_open = 0;

	tk_diag_clear(d);
	if ((rc = tk_bnb_check_opts(o, d)))
		return rc;
	snprintf(file, sizeof(file), "%s/config.json", in);
	if ((rc = tk_read_file(file, &cfg, d)) || (rc = parse_in_config(cfg.data, file, &ic, d)) ||
	    (rc = tk_safetensors_open(&st, in, d)) ||
	    (rc = scan_input(st, &ic, &model_dt, &total, d)) || (o->check && (rc = o->check(in, d))))
		goto out;
	if (o->progress)
		o->progress(o->progress_arg, NULL, 0, total);
	if ((rc = config_with_qconfig(cfg.data, o, &ncfg))) {
		rc = tk_diag_set(d, rc, file, -1, "cannot place quantization_config in it");
		goto out;
	}
	if ((force && (rc = tk_path_check_outside(in, out, d))) ||
	    (rc = tk_afile_dir_open(&dir, out, force, d)))
		goto out;
	dir_open = 1;
	if ((rc = tk_safetensors_writer_new(&w))) {
		rc = tk_diag_set(d, rc, NULL, -1, "out of memory");
		goto out;
	}
	tk_safetensors_writer_metadata(w, "format", "pt");
	if ((rc = add_tensors(w, &ob, st, &ic, model_dt, total, o, d)))
		goto out;
	rc = write_model(&dir, w, ncfg.data, d);
	w = NULL;
	if (rc || (rc = tk_hf_copy_side_files(in, dir.tmp, TK_HF_SIDE_ALL, d)))
		goto out;
	rc = tk_afile_dir_commit(&dir, d);
	dir_open = 0;
out:
	if (dir_open)
		tk_afile_dir_abort(&dir);
	if (w)
		tk_safetensors_writer_free(w);
	outbufs_free(&ob);
	tk_safetensors_close(st);
	tk_buf_free(&cfg);
	tk_buf_free(&ncfg);
	return rc;
}

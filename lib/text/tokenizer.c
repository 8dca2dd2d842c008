/* tokenizer.c - loading Hugging Face tokenizers (tokenizer.json, or legacy
 * vocab.json + merges.txt), ids of special tokens, fingerprints, decoding.
 * Encoding is in tokenizer-encode.c.
 */
#include "text/tokenizer-int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/afile.h"
#include "base/path.h"
#include "formats/gguf.h"

struct load {
	struct tk_tokenizer *t;
	const char *path; /* the file named in messages */
	struct tk_diag *d;
	uint64_t fp;      /* running fingerprint */
	uint32_t model_size; /* number of vocab entries (HF get_vocab_size) */
	char **model_str;    /* model vocab by id */
	uint32_t *model_len;
	uint32_t model_cap;
	uint32_t model_end;  /* largest model id + 1 */
};

/* ---- small helpers ---- */

static void fp_bytes(struct load *L, const void *p, size_t n)
{
	uint64_t len = n;
	L->fp = tk_fnv1a64(L->fp, &len, sizeof(len));
	L->fp = tk_fnv1a64(L->fp, p, n);
}

static void fp_str(struct load *L, const char *s)
{
	fp_bytes(L, s ? s : "\x01null", s ? strlen(s) : 5);
}

static void fp_int(struct load *L, long long v)
{
	L->fp = tk_fnv1a64(L->fp, &v, sizeof(v));
}

static const cJSON *jget(const cJSON *o, const char *k)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = jget(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *k, int def)
{
	const cJSON *v = jget(o, k);
	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v);
	return def;
}

static int jid(const cJSON *v, uint32_t *out)
{
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 4294967294.0 ||
	    v->valuedouble != (double)(uint32_t)v->valuedouble)
		return 0;
	*out = (uint32_t)v->valuedouble;
	return 1;
}

static int bad(struct load *L, int err, const char *fmt, const char *what)
{
	return tk_diag_set(L->d, err, L->path, -1, fmt, what);
}

static int nomem(struct load *L)
{
	return tk_diag_set(L->d, TK_E_NOMEM, L->path, -1, "out of memory");
}

/* Reads and parses a JSON file; *root is NULL with 0 returned when the file
 * does not exist and optional is set. */
static int read_json(const char *path, int optional, cJSON **root, struct tk_diag *d)
{
	struct tk_buf b = { 0 };
	*root = NULL;
	if (optional) {
		struct stat st;
		if (stat(path, &st) != 0 && errno == ENOENT)
			return 0;
	}
	int rc = tk_read_file(path, &b, d);
	if (rc)
		return rc;
	/* JSON is UTF-8 (tokenizers refuses anything else); the vocabulary's
	 * strings are decoded as UTF-8 without further checks */
	size_t ok = tk_utf8_valid(b.data, b.len);
	if (ok != b.len) {
		tk_buf_free(&b);
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "not UTF-8 (a bad sequence at byte %zu)",
				 ok);
		if (d)
			d->offset = (long long)ok;
		return rc;
	}
	const char *end = NULL;
	*root = cJSON_ParseWithLengthOpts(b.data, b.len, &end, 0);
	if (!*root) {
		long long off = end ? (long long)(end - b.data) : -1;
		tk_buf_free(&b);
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "not JSON (parse error at byte %lld)", off);
		if (d)
			d->offset = off;
		return rc;
	}
	tk_buf_free(&b);
	return 0;
}

/* ---- vocabulary ---- */

static int model_add(struct load *L, const char *tok, size_t n, uint32_t id)
{
	struct tk_tokenizer *t = L->t;
	uint32_t old;
	if (tok_smap_get(&t->vocab, tok, n, &old))
		return 0;
	if (id >= L->model_cap) {
		uint32_t cap = L->model_cap ? L->model_cap : 1024;
		while (cap <= id)
			cap = cap > UINT32_MAX / 2 ? id + 1 : cap * 2;
		char **s = tk_reallocn(L->model_str, cap, sizeof(*s));
		if (!s)
			return nomem(L);
		L->model_str = s;
		uint32_t *l = tk_reallocn(L->model_len, cap, sizeof(*l));
		if (!l)
			return nomem(L);
		L->model_len = l;
		memset(s + L->model_cap, 0, (cap - L->model_cap) * sizeof(*s));
		memset(l + L->model_cap, 0, (cap - L->model_cap) * sizeof(*l));
		L->model_cap = cap;
	}
	if (tok_smap_put(&t->vocab, tok, n, id, 0))
		return nomem(L);
	L->model_size++;
	if (id + 1 > L->model_end)
		L->model_end = id + 1;
	if (!L->model_str[id]) {
		L->model_str[id] = malloc(n + 1);
		if (!L->model_str[id])
			return nomem(L);
		memcpy(L->model_str[id], tok, n);
		L->model_str[id][n] = '\0';
		L->model_len[id] = (uint32_t)n;
	}
	return 0;
}

static int vocab_from_json(struct load *L, const cJSON *vocab)
{
	if (!cJSON_IsObject(vocab))
		return bad(L, TK_E_FORMAT, "%s", "the model has no vocab object");
	/* ids are dense in real vocabularies; a wild one must not make us
	 * allocate gigabytes */
	uint64_t limit = (uint64_t)cJSON_GetArraySize(vocab) * 2 + (1u << 20);
	for (const cJSON *it = vocab->child; it; it = it->next) {
		uint32_t id;
		if (!jid(it, &id))
			return tk_diag_set(L->d, TK_E_FORMAT, L->path, -1,
					   "vocab entry '%s' has no valid id", it->string);
		if (id >= limit)
			return tk_diag_set(L->d, TK_E_FORMAT, L->path, -1,
					   "vocab entry '%s' has id %u, far beyond the vocabulary size",
					   it->string, id);
		int rc = model_add(L, it->string, strlen(it->string), id);
		if (rc)
			return rc;
	}
	return 0;
}

static int merge_add(struct load *L, const char *a, size_t an, const char *b, size_t bn,
		     uint32_t rank, struct tk_buf *tmp)
{
	struct tk_tokenizer *t = L->t;
	uint32_t ia, ib, in;
	if (!tok_smap_get(&t->vocab, a, an, &ia) || !tok_smap_get(&t->vocab, b, bn, &ib)) {
		const char *which = tok_smap_get(&t->vocab, a, an, &ia) ? b : a;
		size_t wn = which == a ? an : bn;
		return tk_diag_set(L->d, TK_E_FORMAT, L->path, -1,
				   "merge %u: token '%.*s' is not in the vocabulary", rank + 1,
				   (int)wn, which);
	}
	size_t skip = bn >= t->prefix_n ? t->prefix_n : 0;
	tmp->len = 0;
	if (tk_buf_append(tmp, a, an) || tk_buf_append(tmp, b + skip, bn - skip))
		return nomem(L);
	if (!tok_smap_get(&t->vocab, tmp->data, tmp->len, &in))
		return tk_diag_set(L->d, TK_E_FORMAT, L->path, -1,
				   "merge %u: token '%s' is not in the vocabulary", rank + 1,
				   tmp->data);
	tok_mmap_put(&t->merges, ia, ib, rank, in);
	fp_int(L, ((long long)ia << 32) | ib);
	return 0;
}

static int merges_from_json(struct load *L, const cJSON *merges)
{
	struct tk_buf tmp = { 0 };
	int rc = 0;
	uint32_t rank = 0;
	if (!cJSON_IsArray(merges))
		return bad(L, TK_E_FORMAT, "%s", "the model has no merges array");
	if (tok_mmap_init(&L->t->merges, (size_t)cJSON_GetArraySize(merges)))
		return nomem(L);
	for (const cJSON *m = merges->child; m && !rc; m = m->next, rank++) {
		if (cJSON_IsString(m)) {
			const char *s = m->valuestring, *sp = strchr(s, ' ');
			if (!sp || strchr(sp + 1, ' '))
				rc = tk_diag_set(L->d, TK_E_FORMAT, L->path, -1,
						 "merge %u is not two tokens separated by a space",
						 rank + 1);
			else
				rc = merge_add(L, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank,
					       &tmp);
		} else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
			   cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
			const char *a = m->child->valuestring, *b = m->child->next->valuestring;
			rc = merge_add(L, a, strlen(a), b, strlen(b), rank, &tmp);
		} else {
			rc = tk_diag_set(L->d, TK_E_FORMAT, L->path, -1,
					 "merge %u is neither \"a b\" nor [\"a\", \"b\"]", rank + 1);
		}
	}
	tk_buf_free(&tmp);
	return rc;
}

/* ---- components ---- */

static int unsupported(struct load *L, const char *what, const char *type)
{
	return tk_diag_set(L->d, TK_E_UNSUPPORTED, L->path, -1, "%s type '%s' is not supported",
			   what, type ? type : "(missing)");
}

static int pattern_of(struct load *L, const cJSON *o, struct tok_regex *rx, const char *what)
{
	const cJSON *p = jget(o, "pattern");
	const char *s;
	if ((s = jstr(p, "String")))
		return tok_rx_compile(rx, s, 0, L->path, L->d);
	if ((s = jstr(p, "Regex")))
		return tok_rx_compile(rx, s, 1, L->path, L->d);
	return bad(L, TK_E_FORMAT, "%s has no String or Regex pattern", what);
}

static int add_norm(struct load *L, const cJSON *o)
{
	struct tk_tokenizer *t = L->t;
	const char *type = jstr(o, "type");
	if (cJSON_IsNull(o) || !o)
		return 0;
	if (type && !strcmp(type, "Sequence")) {
		const cJSON *list = jget(o, "normalizers");
		if (!cJSON_IsArray(list))
			return bad(L, TK_E_FORMAT, "%s", "Sequence normalizer without a list");
		for (const cJSON *it = list->child; it; it = it->next) {
			int rc = add_norm(L, it);
			if (rc)
				return rc;
		}
		return 0;
	}
	struct tok_norm *v = tk_reallocn(t->norm, t->nnorm + 1, sizeof(*v));
	if (!v)
		return nomem(L);
	t->norm = v;
	struct tok_norm *nm = &v[t->nnorm];
	memset(nm, 0, sizeof(*nm));
	if (!type)
		return unsupported(L, "normalizer", type);
	fp_str(L, type);
	int rc = 0;
	if (!strcmp(type, "NFC")) {
		nm->type = TOK_N_NFC;
	} else if (!strcmp(type, "NFD")) {
		nm->type = TOK_N_NFD;
	} else if (!strcmp(type, "NFKC")) {
		nm->type = TOK_N_NFKC;
	} else if (!strcmp(type, "NFKD")) {
		nm->type = TOK_N_NFKD;
	} else if (!strcmp(type, "Lowercase")) {
		nm->type = TOK_N_LOWER;
	} else if (!strcmp(type, "Prepend") || !strcmp(type, "Replace")) {
		const char *s = jstr(o, type[0] == 'P' ? "prepend" : "content");
		if (!s)
			return bad(L, TK_E_FORMAT, "%s normalizer without its string", type);
		nm->type = type[0] == 'P' ? TOK_N_PREPEND : TOK_N_REPLACE;
		nm->str = strdup(s);
		nm->strn = strlen(s);
		if (!nm->str)
			return nomem(L);
		fp_str(L, s);
		if (nm->type == TOK_N_REPLACE) {
			t->nnorm++; /* owned from here on */
			if ((rc = pattern_of(L, o, &nm->rx, "Replace normalizer")))
				return rc;
			fp_int(L, nm->rx.kind == TOK_RX_LIT);
			fp_str(L, nm->rx.src);
			return 0;
		}
	} else if (!strcmp(type, "Strip")) {
		nm->type = TOK_N_STRIP;
		nm->left = jbool(o, "strip_left", 1);
		nm->right = jbool(o, "strip_right", 1);
		fp_int(L, nm->left * 2 + nm->right);
	} else {
		return unsupported(L, "normalizer", type);
	}
	t->nnorm++;
	return rc;
}

static int behavior_of(const cJSON *o, int def)
{
	const char *b = jstr(o, "behavior");
	if (!b)
		return def;
	if (!strcmp(b, "Removed"))
		return TOK_B_REMOVED;
	if (!strcmp(b, "Isolated"))
		return TOK_B_ISOLATED;
	if (!strcmp(b, "MergedWithPrevious"))
		return TOK_B_PREV;
	if (!strcmp(b, "MergedWithNext"))
		return TOK_B_NEXT;
	if (!strcmp(b, "Contiguous"))
		return TOK_B_CONTIG;
	return -1;
}

static int prepend_scheme(struct load *L, const cJSON *o, int *out)
{
	const char *s = jstr(o, "prepend_scheme");
	*out = TOK_PREPEND_ALWAYS;
	if (s && !strcmp(s, "first"))
		*out = TOK_PREPEND_FIRST;
	else if (s && !strcmp(s, "never"))
		*out = TOK_PREPEND_NEVER;
	else if (s && strcmp(s, "always"))
		return bad(L, TK_E_FORMAT, "unknown Metaspace prepend_scheme '%s'", s);
	if (!jbool(o, "add_prefix_space", 1))
		*out = TOK_PREPEND_NEVER;
	return 0;
}

static int replacement_of(struct load *L, const cJSON *o, char *repl, int *repl_n)
{
	const char *r = jstr(o, "replacement");
	if (!r)
		r = "\xE2\x96\x81";
	size_t n = strlen(r);
	if (!n || n > 4 || tok_u8len((unsigned char)r[0]) != n)
		return bad(L, TK_E_FORMAT, "Metaspace replacement '%s' is not one character", r);
	memcpy(repl, r, n);
	repl[n] = '\0';
	*repl_n = (int)n;
	return 0;
}

static int add_pretok(struct load *L, const cJSON *o)
{
	struct tk_tokenizer *t = L->t;
	const char *type = jstr(o, "type");
	int rc;
	if (cJSON_IsNull(o) || !o)
		return 0;
	if (type && !strcmp(type, "Sequence")) {
		const cJSON *list = jget(o, "pretokenizers");
		if (!cJSON_IsArray(list))
			return bad(L, TK_E_FORMAT, "%s", "Sequence pre-tokenizer without a list");
		for (const cJSON *it = list->child; it; it = it->next)
			if ((rc = add_pretok(L, it)))
				return rc;
		return 0;
	}
	if (t->npt + 1 >= TOK_MAX_STAGES)
		return bad(L, TK_E_UNSUPPORTED, "%s", "too many pre-tokenizers");
	struct tok_pretok *v = tk_reallocn(t->pt, t->npt + 1, sizeof(*v));
	if (!v)
		return nomem(L);
	t->pt = v;
	struct tok_pretok *p = &v[t->npt];
	memset(p, 0, sizeof(*p));
	if (!type)
		return unsupported(L, "pre-tokenizer", type);
	if (t->npt && t->pt[t->npt - 1].type == TOK_P_BYTELEVEL)
		return tk_diag_set(L->d, TK_E_UNSUPPORTED, L->path, -1,
				   "pre-tokenizer '%s' after ByteLevel is not supported", type);
	fp_str(L, type);
	if (!strcmp(type, "ByteLevel")) {
		p->type = TOK_P_BYTELEVEL;
		p->add_prefix_space = jbool(o, "add_prefix_space", 1);
		p->use_regex = jbool(o, "use_regex", 1);
		fp_int(L, p->add_prefix_space * 2 + p->use_regex);
		t->byte_level = 1;
	} else if (!strcmp(type, "Split")) {
		p->type = TOK_P_SPLIT;
		p->behavior = behavior_of(o, -1);
		p->invert = jbool(o, "invert", 0);
		if (p->behavior < 0)
			return bad(L, TK_E_FORMAT, "%s", "Split pre-tokenizer with an unknown behavior");
		t->npt++;
		if ((rc = pattern_of(L, o, &p->rx, "Split pre-tokenizer")))
			return rc;
		fp_int(L, p->behavior * 4 + p->invert * 2 + (p->rx.kind == TOK_RX_LIT));
		fp_str(L, p->rx.src);
		return 0;
	} else if (!strcmp(type, "Metaspace")) {
		p->type = TOK_P_METASPACE;
		if ((rc = replacement_of(L, o, p->repl, &p->repl_n)) ||
		    (rc = prepend_scheme(L, o, &p->prepend)))
			return rc;
		p->split = jbool(o, "split", 1);
		fp_str(L, p->repl);
		fp_int(L, p->prepend * 2 + p->split);
	} else if (!strcmp(type, "Digits")) {
		p->type = TOK_P_DIGITS;
		p->individual = jbool(o, "individual_digits", 0);
		fp_int(L, p->individual);
	} else if (!strcmp(type, "Whitespace")) {
		p->type = TOK_P_WHITESPACE;
	} else if (!strcmp(type, "WhitespaceSplit")) {
		p->type = TOK_P_WSSPLIT;
	} else if (!strcmp(type, "Punctuation")) {
		p->type = TOK_P_PUNCT;
		p->behavior = behavior_of(o, TOK_B_ISOLATED);
		if (p->behavior < 0)
			return bad(L, TK_E_FORMAT, "%s", "Punctuation pre-tokenizer with an unknown behavior");
		fp_int(L, p->behavior);
	} else {
		return unsupported(L, "pre-tokenizer", type);
	}
	t->npt++;
	return 0;
}

static int add_decoder(struct load *L, const cJSON *o)
{
	struct tk_tokenizer *t = L->t;
	const char *type = jstr(o, "type");
	int rc;
	if (cJSON_IsNull(o) || !o)
		return 0;
	t->has_decoder = 1;
	if (type && !strcmp(type, "Sequence")) {
		const cJSON *list = jget(o, "decoders");
		if (!cJSON_IsArray(list))
			return bad(L, TK_E_FORMAT, "%s", "Sequence decoder without a list");
		for (const cJSON *it = list->child; it; it = it->next)
			if ((rc = add_decoder(L, it)))
				return rc;
		return 0;
	}
	struct tok_dec *v = tk_reallocn(t->dec, t->ndec + 1, sizeof(*v));
	if (!v)
		return nomem(L);
	t->dec = v;
	struct tok_dec *dc = &v[t->ndec];
	memset(dc, 0, sizeof(*dc));
	if (!type)
		return unsupported(L, "decoder", type);
	if (!strcmp(type, "ByteLevel")) {
		dc->type = TOK_D_BYTELEVEL;
	} else if (!strcmp(type, "Metaspace")) {
		dc->type = TOK_D_METASPACE;
		if ((rc = replacement_of(L, o, dc->repl, &dc->repl_n)) ||
		    (rc = prepend_scheme(L, o, &dc->prepend)))
			return rc;
	} else if (!strcmp(type, "Replace")) {
		const char *s = jstr(o, "content");
		if (!s)
			return bad(L, TK_E_FORMAT, "%s", "Replace decoder without content");
		dc->type = TOK_D_REPLACE;
		dc->str = strdup(s);
		dc->strn = strlen(s);
		t->ndec++;
		if (!dc->str)
			return nomem(L);
		return pattern_of(L, o, &dc->rx, "Replace decoder");
	} else if (!strcmp(type, "ByteFallback")) {
		dc->type = TOK_D_BYTEFALLBACK;
	} else if (!strcmp(type, "Fuse")) {
		dc->type = TOK_D_FUSE;
	} else if (!strcmp(type, "Strip")) {
		const char *c = jstr(o, "content");
		size_t l;
		dc->type = TOK_D_STRIP;
		if (!c || !*c || tok_u8len((unsigned char)c[0]) != strlen(c))
			return bad(L, TK_E_FORMAT, "%s", "Strip decoder content is not one character");
		dc->cp = tok_u8dec((const unsigned char *)c, &l);
		const cJSON *a = jget(o, "start"), *b = jget(o, "stop");
		dc->start = cJSON_IsNumber(a) ? (long long)a->valuedouble : 0;
		dc->stop = cJSON_IsNumber(b) ? (long long)b->valuedouble : 0;
	} else {
		return unsupported(L, "decoder", type);
	}
	t->ndec++;
	return 0;
}

static int ids_append(struct tk_ids *dst, const struct tk_ids *src)
{
	for (size_t i = 0; i < src->n; i++)
		if (tk_ids_push(dst, src->v[i]))
			return TK_E_NOMEM;
	return 0;
}

static int special_ids(struct load *L, const cJSON *pair, struct tk_ids *ids)
{
	uint32_t id;
	if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !jid(pair->child->next, &id))
		return bad(L, TK_E_FORMAT, "%s", "post-processor cls/sep is not [token, id]");
	return tk_ids_push(ids, id) ? nomem(L) : 0;
}

/* Parses a post-processor into the ids it puts before and after the text. */
static int parse_post(struct load *L, const cJSON *o, struct tk_ids *pre, struct tk_ids *post)
{
	const char *type = jstr(o, "type");
	int rc = 0;
	if (cJSON_IsNull(o) || !o)
		return 0;
	if (!type)
		return unsupported(L, "post-processor", type);
	if (!strcmp(type, "ByteLevel"))
		return 0;
	if (!strcmp(type, "Sequence")) {
		const cJSON *list = jget(o, "processors");
		if (!cJSON_IsArray(list))
			return bad(L, TK_E_FORMAT, "%s", "Sequence post-processor without a list");
		for (const cJSON *it = list->child; it && !rc; it = it->next) {
			struct tk_ids p = { 0 }, q = { 0 }, np = { 0 };
			rc = parse_post(L, it, &p, &q);
			if (!rc && (ids_append(&np, &p) || ids_append(&np, pre) || ids_append(post, &q)))
				rc = nomem(L);
			if (!rc) {
				tk_ids_free(pre);
				*pre = np;
			} else {
				tk_ids_free(&np);
			}
			tk_ids_free(&p);
			tk_ids_free(&q);
		}
		return rc;
	}
	if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
		if ((rc = special_ids(L, jget(o, "cls"), pre)))
			return rc;
		return special_ids(L, jget(o, "sep"), post);
	}
	if (!strcmp(type, "TemplateProcessing")) {
		const cJSON *single = jget(o, "single"), *specials = jget(o, "special_tokens");
		int seen_seq = 0;
		if (!cJSON_IsArray(single))
			return bad(L, TK_E_FORMAT, "%s", "TemplateProcessing without a single template");
		for (const cJSON *it = single->child; it; it = it->next) {
			if (jget(it, "Sequence")) {
				seen_seq = 1;
				continue;
			}
			const char *name = jstr(jget(it, "SpecialToken"), "id");
			const cJSON *ids = jget(jget(specials, name ? name : ""), "ids");
			if (!name || !cJSON_IsArray(ids))
				return bad(L, TK_E_FORMAT, "TemplateProcessing special token '%s' is not defined",
					   name ? name : "?");
			for (const cJSON *x = ids->child; x; x = x->next) {
				uint32_t id;
				if (!jid(x, &id))
					return bad(L, TK_E_FORMAT, "TemplateProcessing token '%s' has a bad id", name);
				if (tk_ids_push(seen_seq ? post : pre, id))
					return nomem(L);
			}
		}
		return 0;
	}
	return unsupported(L, "post-processor", type);
}

/* ---- added tokens ---- */

struct added_in {
	const char *content;
	int single_word, lstrip, rstrip, normalized, special;
};

static int added_from(const cJSON *o, int special_default, struct added_in *a)
{
	if (cJSON_IsString(o)) {
		a->content = o->valuestring;
		a->single_word = a->lstrip = a->rstrip = 0;
		a->special = special_default;
		a->normalized = !special_default;
		return 1;
	}
	if (!jstr(o, "content"))
		return 0;
	a->content = jstr(o, "content");
	a->single_word = jbool(o, "single_word", 0);
	a->lstrip = jbool(o, "lstrip", 0);
	a->rstrip = jbool(o, "rstrip", 0);
	a->special = jbool(o, "special", special_default);
	a->normalized = jbool(o, "normalized", !a->special);
	return 1;
}

/* HF AddedVocabulary::add_tokens, one token at a time. */
static int add_token(struct load *L, const struct added_in *in, uint32_t *next_id)
{
	struct tk_tokenizer *t = L->t;
	size_t n = strlen(in->content);
	uint32_t id;
	if (!n)
		return 0;
	if (tok_smap_get(&t->added_map, in->content, n, &id)) {
		for (size_t i = 0; i < t->nadded; i++) {
			struct tok_added *a = &t->added[i];
			if (a->id == id && a->single_word == in->single_word && a->lstrip == in->lstrip &&
			    a->rstrip == in->rstrip && a->normalized == in->normalized &&
			    a->special == in->special && !strcmp(a->content, in->content))
				return 0;
		}
	} else if (!tok_smap_get(&t->vocab, in->content, n, &id)) {
		id = (*next_id)++;
	}
	if (tok_smap_put(&t->added_map, in->content, n, id, 1))
		return nomem(L);
	if (in->special && tok_smap_put(&t->special, in->content, n, 1, 0))
		return nomem(L);
	/* one token per id, the last one wins (added_tokens_map_r.insert) */
	struct tok_added *a = NULL;
	for (size_t i = 0; i < t->nadded; i++)
		if (t->added[i].id == id)
			a = &t->added[i];
	if (!a) {
		struct tok_added *v = tk_reallocn(t->added, t->nadded + 1, sizeof(*v));
		if (!v)
			return nomem(L);
		t->added = v;
		a = &v[t->nadded++];
	} else {
		free(a->content);
		if (a->pat != a->content)
			free(a->pat);
	}
	memset(a, 0, sizeof(*a));
	a->content = strdup(in->content);
	if (!a->content)
		return nomem(L);
	a->n = n;
	a->pat = a->content;
	a->patn = n;
	a->id = id;
	a->single_word = !!in->single_word;
	a->lstrip = !!in->lstrip;
	a->rstrip = !!in->rstrip;
	a->normalized = !!in->normalized;
	a->special = !!in->special;
	if (a->normalized && t->nnorm) {
		struct tk_buf out = { 0 }, tmp = { 0 };
		pcre2_match_data *md = pcre2_match_data_create(4, NULL);
		int lost = 0, rc = md ? tok_normalize(t, md, a->content, n, &out, &tmp, &lost)
				       : TK_E_NOMEM;
		if (md)
			pcre2_match_data_free(md);
		tk_buf_free(&tmp);
		if (rc) {
			tk_buf_free(&out);
			return tk_diag_set(L->d, rc, L->path, -1, "cannot normalize added token '%s'",
					   a->content);
		}
		if (out.len != n || memcmp(out.data, a->content, n)) {
			a->pat = out.data;
			a->patn = out.len;
		} else {
			tk_buf_free(&out);
		}
	}
	return 0;
}

static int cmp_len_desc(const void *x, const void *y, void *ctx)
{
	const struct tk_tokenizer *t = ctx;
	const struct tok_added *a = &t->added[*(const uint32_t *)x];
	const struct tok_added *b = &t->added[*(const uint32_t *)y];
	size_t an = a->normalized ? a->patn : a->n, bn = b->normalized ? b->patn : b->n;
	const char *as = a->normalized ? a->pat : a->content;
	const char *bs = b->normalized ? b->pat : b->content;
	if ((unsigned char)as[0] != (unsigned char)bs[0])
		return (unsigned char)as[0] - (unsigned char)bs[0];
	if (an != bn)
		return an > bn ? -1 : 1;
	return 0;
}

static int build_set(struct load *L, struct tok_aset *set, int normalized)
{
	struct tk_tokenizer *t = L->t;
	set->idx = tk_mallocn(t->nadded + 1, sizeof(*set->idx));
	if (!set->idx)
		return nomem(L);
	for (size_t i = 0; i < t->nadded; i++) {
		const struct tok_added *a = &t->added[i];
		if (a->normalized == normalized && (normalized ? a->patn : a->n))
			set->idx[set->n++] = (uint32_t)i;
	}
	qsort_r(set->idx, set->n, sizeof(*set->idx), cmp_len_desc, t);
	memset(set->start, 0, sizeof(set->start));
	for (size_t i = 0; i < set->n; i++) {
		const struct tok_added *a = &t->added[set->idx[i]];
		unsigned char c = (unsigned char)(normalized ? a->pat : a->content)[0];
		set->any[c] = 1;
		set->start[c + 1]++;
	}
	for (int c = 0; c < 256; c++)
		set->start[c + 1] += set->start[c];
	return 0;
}

/* ---- the finished tokenizer ---- */

static int token_of_config(const cJSON *cfg, const char *key, const struct tk_tokenizer *t,
			   int64_t *id)
{
	const cJSON *v = jget(cfg, key);
	const char *s = cJSON_IsString(v) ? v->valuestring : jstr(v, "content");
	if (!s)
		return 0;
	*id = tk_tokenizer_token_id(t, s);
	return *id >= 0;
}

static int finish(struct load *L, const cJSON *cfg, const cJSON *padding)
{
	struct tk_tokenizer *t = L->t;
	uint32_t size = L->model_end;
	uint32_t id;
	int rc;
	/* byte-level tables */
	for (int b = 0; b < 256; b++) {
		char enc[8];
		size_t l = tok_u8enc(tok_byte_char((unsigned char)b), enc);
		t->byte_id[b] = tok_smap_get(&t->vocab, enc, l, &id) ? (int32_t)id : -1;
		snprintf(enc, sizeof(enc), "<0x%02X>", b);
		t->fallback_id[b] = tok_smap_get(&t->vocab, enc, strlen(enc), &id) ? (int32_t)id : -1;
	}
	if (t->byte_level) {
		struct tk_buf raw = { 0 };
		for (uint32_t i = 0; i < L->model_end; i++) {
			const unsigned char *s = (const unsigned char *)L->model_str[i];
			size_t n = s ? L->model_len[i] : 0, j = 0, l;
			if (!s)
				continue;
			raw.len = 0;
			while (j < n && j + tok_u8len(s[j]) <= n) {
				int b = tok_char_byte(tok_u8dec(s + j, &l));
				if (b < 0)
					break;
				char c = (char)b;
				if (tk_buf_append(&raw, &c, 1)) {
					tk_buf_free(&raw);
					return nomem(L);
				}
				j += l;
			}
			if (j == n && tok_smap_put(&t->raw, raw.data ? raw.data : "", raw.len, i, 0)) {
				tk_buf_free(&raw);
				return nomem(L);
			}
		}
		tk_buf_free(&raw);
	}
	for (size_t i = 0; i < t->nadded; i++)
		if (t->added[i].id >= size)
			size = t->added[i].id + 1;
	t->vocab_size = size;
	t->id_str = calloc(size ? size : 1, sizeof(*t->id_str));
	t->id_len = calloc(size ? size : 1, sizeof(*t->id_len));
	t->id_special = calloc(size ? size : 1, 1);
	t->dec_str = calloc(size ? size : 1, sizeof(*t->dec_str));
	t->dec_len = calloc(size ? size : 1, sizeof(*t->dec_len));
	if (!t->id_str || !t->id_len || !t->id_special || !t->dec_str || !t->dec_len)
		return nomem(L);
	for (uint32_t i = 0; i < L->model_end; i++) {
		t->id_str[i] = L->model_str[i];
		t->id_len[i] = L->model_len[i];
		L->model_str[i] = NULL;
	}
	for (size_t i = 0; i < t->nadded; i++) {
		struct tok_added *a = &t->added[i];
		if (!t->id_str[a->id]) {
			t->id_str[a->id] = strdup(a->content);
			if (!t->id_str[a->id])
				return nomem(L);
			t->id_len[a->id] = (uint32_t)a->n;
		}
	}
	/* what decode starts from: HF simple_id_to_token, else the model's */
	for (uint32_t i = 0; i < size; i++) {
		t->dec_str[i] = t->id_str[i];
		t->dec_len[i] = t->id_len[i];
	}
	for (size_t i = 0; i < t->nadded; i++) {
		t->dec_str[t->added[i].id] = t->added[i].pat;
		t->dec_len[t->added[i].id] = (uint32_t)t->added[i].patn;
	}
	/* fingerprint: vocabulary by id, added tokens, post-processor */
	fp_int(L, size);
	for (uint32_t i = 0; i < size; i++)
		fp_bytes(L, t->id_str[i] ? t->id_str[i] : "", t->id_str[i] ? t->id_len[i] : 0);
	for (uint32_t i = 0; i < size; i++)
		for (size_t k = 0; k < t->nadded; k++) {
			const struct tok_added *a = &t->added[k];
			if (a->id != i)
				continue;
			fp_int(L, a->id);
			fp_bytes(L, a->content, a->n);
			fp_int(L, a->single_word | a->lstrip << 1 | a->rstrip << 2 |
				  (t->nnorm ? a->normalized : 0) << 3 | a->special << 4);
		}
	fp_int(L, (long long)t->pre.n);
	for (size_t i = 0; i < t->pre.n; i++)
		fp_int(L, t->pre.v[i]);
	fp_int(L, (long long)t->post.n);
	for (size_t i = 0; i < t->post.n; i++)
		fp_int(L, t->post.v[i]);
	fp_int(L, t->byte_level | t->byte_fallback << 1 | t->ignore_merges << 2 | t->fuse_unk << 3);
	fp_int(L, t->has_unk ? t->unk_id : -2);
	fp_str(L, t->prefix);
	fp_str(L, t->suffix);
	snprintf(t->fp, sizeof(t->fp), "%016llx", (unsigned long long)L->fp);

	for (size_t p = 0; p < t->pre.n + t->post.n; p++) {
		uint32_t x = p < t->pre.n ? t->pre.v[p] : t->post.v[p - t->pre.n];
		if (x >= size)
			return tk_diag_set(L->d, TK_E_FORMAT, L->path, -1,
					   "post-processor id %u is not in the vocabulary", x);
	}
	for (size_t i = 0; i < t->nadded; i++)
		if (t->added[i].special)
			t->id_special[t->added[i].id] = 1;
	if ((rc = build_set(L, &t->raw_set, 0)) || (rc = build_set(L, &t->norm_set, 1)))
		return rc;
	t->adds_bos = t->pre.n > 0;
	t->adds_eos = t->post.n > 0;
	t->bos = t->eos = t->pad = -1;
	if (!token_of_config(cfg, "bos_token", t, &t->bos))
		t->bos = t->pre.n ? (int64_t)t->pre.v[0] : -1;
	if (!token_of_config(cfg, "eos_token", t, &t->eos)) {
		static const char *const names[] = { "</s>", "<|endoftext|>", "<|end_of_text|>",
						     "<eos>", "<|im_end|>" };
		t->eos = t->post.n ? (int64_t)t->post.v[t->post.n - 1] : -1;
		for (size_t i = 0; t->eos < 0 && i < sizeof(names) / sizeof(names[0]); i++)
			t->eos = tk_tokenizer_token_id(t, names[i]);
	}
	if (!token_of_config(cfg, "pad_token", t, &t->pad)) {
		uint32_t pid;
		if (jid(jget(padding, "pad_id"), &pid) && pid < size)
			t->pad = pid;
	}
	return 0;
}

static int model_options(struct load *L, const cJSON *model)
{
	struct tk_tokenizer *t = L->t;
	const cJSON *drop = jget(model, "dropout");
	if (drop && !cJSON_IsNull(drop) && !(cJSON_IsNumber(drop) && drop->valuedouble == 0))
		return bad(L, TK_E_UNSUPPORTED, "%s", "BPE dropout is not supported (set it to null)");
	const char *unk = jstr(model, "unk_token");
	const char *pre = jstr(model, "continuing_subword_prefix");
	const char *suf = jstr(model, "end_of_word_suffix");
	t->byte_fallback = jbool(model, "byte_fallback", 0);
	t->ignore_merges = jbool(model, "ignore_merges", 0);
	t->fuse_unk = jbool(model, "fuse_unk", 0);
	if (unk) {
		t->unk_token = strdup(unk);
		if (!t->unk_token)
			return nomem(L);
		t->has_unk = 1;
	}
	if (pre && *pre) {
		t->prefix = strdup(pre);
		t->prefix_n = strlen(pre);
		if (!t->prefix)
			return nomem(L);
	}
	if (suf && *suf) {
		t->suffix = strdup(suf);
		t->suffix_n = strlen(suf);
		if (!t->suffix)
			return nomem(L);
	}
	return 0;
}

static void resolve_unk(struct tk_tokenizer *t)
{
	uint32_t id;
	t->unk_id = -1;
	if (t->unk_token && tok_smap_get(&t->vocab, t->unk_token, strlen(t->unk_token), &id))
		t->unk_id = id;
}

static int load_json(struct load *L, const cJSON *root, const cJSON *cfg)
{
	struct tk_tokenizer *t = L->t;
	const cJSON *model = jget(root, "model");
	int rc;
	if (!cJSON_IsObject(root))
		return bad(L, TK_E_FORMAT, "%s", "not a tokenizer (the JSON is not an object)");
	if (!cJSON_IsObject(model))
		return bad(L, TK_E_FORMAT, "%s", "not a tokenizer (no \"model\" object)");
	const char *type = jstr(model, "type");
	if (type && strcmp(type, "BPE"))
		return tk_diag_set(L->d, TK_E_UNSUPPORTED, L->path, -1,
				   "model type '%s' is not supported (only BPE)", type);
	if (!type && !(jget(model, "vocab") && jget(model, "merges")))
		return bad(L, TK_E_FORMAT, "%s", "the model has no type");
	fp_str(L, "tk-bpe-1");
	if ((rc = model_options(L, model)) || (rc = add_norm(L, jget(root, "normalizer"))) ||
	    (rc = add_pretok(L, jget(root, "pre_tokenizer"))) ||
	    (rc = add_decoder(L, jget(root, "decoder"))) ||
	    (rc = vocab_from_json(L, jget(model, "vocab"))) ||
	    (rc = merges_from_json(L, jget(model, "merges"))))
		return rc;
	resolve_unk(t);
	const cJSON *added = jget(root, "added_tokens");
	uint32_t next_id = L->model_size;
	if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
		return bad(L, TK_E_FORMAT, "%s", "added_tokens is not an array");
	for (const cJSON *it = cJSON_IsArray(added) ? added->child : NULL; it; it = it->next) {
		struct added_in in;
		if (!added_from(it, 0, &in))
			return bad(L, TK_E_FORMAT, "%s", "an added token has no content");
		if ((rc = add_token(L, &in, &next_id)))
			return rc;
	}
	if ((rc = parse_post(L, jget(root, "post_processor"), &t->pre, &t->post)))
		return rc;
	return finish(L, cfg, jget(root, "padding"));
}

/* ---- legacy vocab.json + merges.txt ---- */

static int load_legacy(struct load *L, const char *dir, const cJSON *cfg)
{
	struct tk_tokenizer *t = L->t;
	char path[4096];
	cJSON *vocab = NULL, *added = NULL, *smap = NULL;
	struct tk_buf merges = { 0 }, tmp = { 0 };
	int rc;
	snprintf(path, sizeof(path), "%s/vocab.json", dir);
	L->path = path;
	if ((rc = read_json(path, 0, &vocab, L->d)))
		return rc;
	fp_str(L, "tk-bpe-1");
	rc = vocab_from_json(L, vocab);
	cJSON_Delete(vocab);
	if (rc)
		return rc;
	t->byte_level = 1;
	if (!(t->pt = calloc(1, sizeof(*t->pt))) || !(t->dec = calloc(1, sizeof(*t->dec))))
		return nomem(L);
	t->npt = t->ndec = 1;
	t->has_decoder = 1;
	t->pt[0].type = TOK_P_BYTELEVEL;
	t->pt[0].add_prefix_space = jbool(cfg, "add_prefix_space", 0);
	t->pt[0].use_regex = 1;
	t->dec[0].type = TOK_D_BYTELEVEL;
	fp_str(L, "ByteLevel");
	fp_int(L, t->pt[0].add_prefix_space * 2 + 1);

	snprintf(path, sizeof(path), "%s/merges.txt", dir);
	if ((rc = tk_read_file(path, &merges, L->d)))
		return rc;
	size_t nlines = 1;
	for (size_t i = 0; i < merges.len; i++)
		nlines += merges.data[i] == '\n';
	if (tok_mmap_init(&t->merges, nlines)) {
		tk_buf_free(&merges);
		return nomem(L);
	}
	uint32_t rank = 0;
	long long lineno = 0;
	for (char *s = merges.data, *end = merges.data + merges.len; s < end && !rc;) {
		char *nl = memchr(s, '\n', (size_t)(end - s));
		char *e = nl ? nl : end;
		lineno++;
		size_t n = (size_t)(e - s);
		if (n && s[n - 1] == '\r')
			n--;
		if (n && !(n >= 8 && !memcmp(s, "#version", 8))) {
			char *sp = memchr(s, ' ', n);
			if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
				rc = tk_diag_set(L->d, TK_E_FORMAT, path, lineno,
						 "not two tokens separated by a space");
			else
				rc = merge_add(L, s, (size_t)(sp - s), sp + 1,
					       n - (size_t)(sp + 1 - s), rank++, &tmp);
			if (rc && L->d && L->d->line < 0)
				L->d->line = lineno;
		}
		s = e + 1;
	}
	tk_buf_free(&merges);
	tk_buf_free(&tmp);
	if (rc)
		return rc;
	L->path = path;
	snprintf(path, sizeof(path), "%s/special_tokens_map.json", dir);
	if ((rc = read_json(path, 1, &smap, L->d)))
		return rc;
	snprintf(path, sizeof(path), "%s/added_tokens.json", dir);
	if ((rc = read_json(path, 1, &added, L->d))) {
		cJSON_Delete(smap);
		return rc;
	}
	uint32_t next_id = L->model_size;
	struct added_in in;
	/* added_tokens_decoder (by id), added_tokens.json (by id), then the
	 * named special tokens */
	for (int pass = 0; pass < 2 && !rc; pass++) {
		const cJSON *src = pass ? added : jget(cfg, "added_tokens_decoder");
		for (uint32_t want = 0, more = 1; more && !rc; want++) {
			uint32_t best = UINT32_MAX;
			const cJSON *pick = NULL;
			more = 0;
			for (const cJSON *it = src ? src->child : NULL; it; it = it->next) {
				uint32_t id = (uint32_t)strtoul(it->string, NULL, 10);
				if (pass)
					jid(it, &id);
				if (id >= want && id < best) {
					best = id;
					pick = it;
				}
			}
			if (!pick)
				break;
			more = 1;
			want = best;
			if (pass ? (in = (struct added_in){ pick->string, 0, 0, 0, 1, 0 }, 1)
				 : added_from(pick, 1, &in))
				rc = add_token(L, &in, &next_id);
		}
	}
	static const char *const keys[] = { "bos_token", "eos_token", "unk_token", "pad_token",
					    "sep_token", "cls_token", "mask_token" };
	for (int src = 0; src < 2 && !rc; src++) {
		const cJSON *c = src ? smap : cfg;
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]) && !rc; k++)
			if (added_from(jget(c, keys[k]), 1, &in))
				rc = add_token(L, &in, &next_id);
		const cJSON *extra = jget(c, "additional_special_tokens");
		for (const cJSON *it = cJSON_IsArray(extra) ? extra->child : NULL; it && !rc;
		     it = it->next)
			if (added_from(it, 1, &in))
				rc = add_token(L, &in, &next_id);
	}
	cJSON_Delete(added);
	/* transformers' GPT2Tokenizer defaults its bos, eos and unk tokens to
	 * <|endoftext|> */
	if (!rc && !tok_smap_get(&t->added_map, "<|endoftext|>", 13, &next_id) &&
	    tok_smap_get(&t->vocab, "<|endoftext|>", 13, &rank)) {
		in = (struct added_in){ "<|endoftext|>", 0, 0, 0, 1, 1 };
		next_id = L->model_size;
		rc = add_token(L, &in, &next_id);
	}
	if (!rc) {
		resolve_unk(t);
		snprintf(path, sizeof(path), "%s/vocab.json", dir);
		rc = finish(L, cfg ? cfg : smap, NULL);
	}
	cJSON_Delete(smap);
	return rc;
}

/* ---- public ---- */

int tk_tokenizer_load(tk_tokenizer_t **out, const char *path, struct tk_diag *d)
{
	struct load L = { 0 };
	char file[4096], dir[3072], cfgpath[4096];
	cJSON *root = NULL, *cfg = NULL;
	int rc, legacy = 0;
	*out = NULL;
	tk_diag_clear(d);
	tok_uc_init();
	if (strlen(path) > 3000)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "path too long");
	if (tk_path_is_dir(path)) {
		snprintf(dir, sizeof(dir), "%s", path);
		snprintf(file, sizeof(file), "%s/tokenizer.json", path);
		if (!tk_path_exists(file)) {
			char v[4096], m[4096];
			snprintf(v, sizeof(v), "%s/vocab.json", path);
			snprintf(m, sizeof(m), "%s/merges.txt", path);
			if (!tk_path_exists(v) || !tk_path_exists(m))
				return tk_diag_set(d, TK_E_IO, path, -1,
						   "no tokenizer.json, or vocab.json and merges.txt, "
						   "in this directory");
			legacy = 1;
		}
	} else {
		snprintf(file, sizeof(file), "%s", path);
		snprintf(dir, sizeof(dir), "%s", path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(dir, sizeof(dir), ".");
	}
	snprintf(cfgpath, sizeof(cfgpath), "%s/tokenizer_config.json", dir);
	if (!legacy && !tk_path_is_dir(path) && tk_gguf_is_gguf(path)) {
		/* a GGUF file: its vocabulary as tokenizer.json + tokenizer_config.json */
		tk_gguf_t *g;
		if ((rc = tk_gguf_open(&g, path, d)))
			return rc;
		rc = tk_gguf_tokenizer_json(g, &root, &cfg, d);
		tk_gguf_close(g);
		if (rc)
			return rc;
	} else {
		if (!legacy && (rc = read_json(file, 0, &root, d)))
			return rc;
		if ((rc = read_json(cfgpath, 1, &cfg, d))) {
			cJSON_Delete(root);
			return rc;
		}
	}
	struct tk_tokenizer *t = calloc(1, sizeof(*t));
	if (!t) {
		cJSON_Delete(root);
		cJSON_Delete(cfg);
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	}
	t->path = strdup(path);
	L.t = t;
	L.d = d;
	L.path = file;
	L.fp = TK_FNV1A64_INIT;
	rc = t->path ? 0 : nomem(&L);
	if (!rc)
		rc = legacy ? load_legacy(&L, dir, cfg) : load_json(&L, root, cfg);
	cJSON_Delete(root);
	cJSON_Delete(cfg);
	for (uint32_t i = 0; i < L.model_cap; i++)
		free(L.model_str[i]);
	free(L.model_str);
	free(L.model_len);
	if (rc) {
		tk_tokenizer_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void tk_tokenizer_free(tk_tokenizer_t *t)
{
	if (!t)
		return;
	if (t->id_str)
		for (uint32_t i = 0; i < t->vocab_size; i++)
			free(t->id_str[i]);
	free(t->id_str);
	free(t->id_len);
	free(t->id_special);
	free(t->dec_str);
	free(t->dec_len);
	tok_smap_free(&t->vocab);
	tok_smap_free(&t->raw);
	tok_mmap_free(&t->merges);
	tok_smap_free(&t->added_map);
	tok_smap_free(&t->special);
	for (size_t i = 0; i < t->nadded; i++) {
		if (t->added[i].pat != t->added[i].content)
			free(t->added[i].pat);
		free(t->added[i].content);
	}
	free(t->added);
	free(t->raw_set.idx);
	free(t->norm_set.idx);
	for (size_t i = 0; i < t->nnorm; i++) {
		free(t->norm[i].str);
		tok_rx_free(&t->norm[i].rx);
	}
	free(t->norm);
	for (size_t i = 0; i < t->npt; i++)
		tok_rx_free(&t->pt[i].rx);
	free(t->pt);
	for (size_t i = 0; i < t->ndec; i++) {
		free(t->dec[i].str);
		tok_rx_free(&t->dec[i].rx);
	}
	free(t->dec);
	tk_ids_free(&t->pre);
	tk_ids_free(&t->post);
	free(t->unk_token);
	free(t->prefix);
	free(t->suffix);
	free(t->path);
	free(t);
}

uint32_t tk_tokenizer_vocab_size(const tk_tokenizer_t *t)
{
	return t->vocab_size;
}

const char *tk_tokenizer_fingerprint(const tk_tokenizer_t *t)
{
	return t->fp;
}

int64_t tk_tokenizer_bos_id(const tk_tokenizer_t *t)
{
	return t->bos;
}

int64_t tk_tokenizer_eos_id(const tk_tokenizer_t *t)
{
	return t->eos;
}

int64_t tk_tokenizer_pad_id(const tk_tokenizer_t *t)
{
	return t->pad;
}

int64_t tk_tokenizer_token_id(const tk_tokenizer_t *t, const char *token)
{
	uint32_t id;
	size_t n = strlen(token);
	if (tok_smap_get(&t->added_map, token, n, &id) || tok_smap_get(&t->vocab, token, n, &id))
		return id;
	return -1;
}

const char *tk_tokenizer_token(const tk_tokenizer_t *t, uint32_t id)
{
	return id < t->vocab_size ? t->id_str[id] : NULL;
}

int tk_tokenizer_adds_bos(const tk_tokenizer_t *t)
{
	return t->adds_bos;
}

int tk_tokenizer_adds_eos(const tk_tokenizer_t *t)
{
	return t->adds_eos;
}

/* ---- decoding ---- */

struct strlist {
	struct tk_buf data;
	size_t *off, *len;
	size_t n, cap;
};

static int sl_push(struct strlist *l, const char *s, size_t n)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		size_t *o = tk_reallocn(l->off, cap, sizeof(*o));
		if (!o)
			return TK_E_NOMEM;
		l->off = o;
		size_t *q = tk_reallocn(l->len, cap, sizeof(*q));
		if (!q)
			return TK_E_NOMEM;
		l->len = q;
		l->cap = cap;
	}
	l->off[l->n] = l->data.len;
	l->len[l->n] = n;
	l->n++;
	return tk_buf_append(&l->data, s, n);
}

/* Appends to the last string of l. */
static int sl_extend(struct strlist *l, const char *s, size_t n)
{
	l->len[l->n - 1] += n;
	return tk_buf_append(&l->data, s, n);
}

static void sl_free(struct strlist *l)
{
	tk_buf_free(&l->data);
	free(l->off);
	free(l->len);
}

#define SL_STR(l, i) ((l)->data.data + (l)->off[i])

static int flush_bytes(struct strlist *out, struct tk_buf *bytes)
{
	int rc = 0;
	if (!bytes->len)
		return 0;
	if (tk_utf8_valid(bytes->data, bytes->len) == bytes->len) {
		rc = sl_push(out, bytes->data, bytes->len);
	} else {
		for (size_t i = 0; i < bytes->len && !rc; i++)
			rc = sl_push(out, "\xEF\xBF\xBD", 3);
	}
	bytes->len = 0;
	return rc;
}

static int decode_step(const struct tok_dec *dc, pcre2_match_data *md, struct strlist *in,
		       struct strlist *out)
{
	int rc = 0;
	struct tk_buf b = { 0 };
	out->n = 0;
	out->data.len = 0;
	switch (dc->type) {
	case TOK_D_BYTELEVEL:
		for (size_t i = 0; i < in->n && !rc; i++) {
			const unsigned char *s = (const unsigned char *)SL_STR(in, i);
			size_t n = in->len[i], j = 0, l, mark = b.len;
			while (j < n && !rc) {
				int x = tok_char_byte(tok_u8dec(s + j, &l));
				if (x < 0)
					break;
				char c = (char)x;
				rc = tk_buf_append(&b, &c, 1);
				j += l;
			}
			if (!rc && j < n) {
				b.len = mark;
				rc = tk_buf_append(&b, s, n);
			}
		}
		if (!rc) {
			struct tk_buf fixed = { 0 };
			rc = tk_utf8_repair(b.data ? b.data : "", b.len, &fixed);
			if (!rc)
				rc = sl_push(out, fixed.data ? fixed.data : "", fixed.len);
			tk_buf_free(&fixed);
		}
		break;
	case TOK_D_METASPACE:
		for (size_t i = 0; i < in->n && !rc; i++) {
			const char *s = SL_STR(in, i);
			size_t n = in->len[i];
			rc = sl_push(out, "", 0);
			for (size_t j = 0; j < n && !rc;) {
				if (j + dc->repl_n <= n && !memcmp(s + j, dc->repl, dc->repl_n)) {
					if (!(i == 0 && dc->prepend != TOK_PREPEND_NEVER))
						rc = sl_extend(out, " ", 1);
					j += dc->repl_n;
				} else {
					size_t l = tok_u8len((unsigned char)s[j]);
					rc = sl_extend(out, s + j, l);
					j += l;
				}
			}
		}
		break;
	case TOK_D_REPLACE:
		for (size_t i = 0; i < in->n && !rc; i++) {
			b.len = 0;
			rc = tok_replace(&dc->rx, md, SL_STR(in, i), in->len[i], dc->str, dc->strn, &b,
					 NULL);
			if (!rc)
				rc = sl_push(out, b.data ? b.data : "", b.len);
		}
		break;
	case TOK_D_BYTEFALLBACK:
		for (size_t i = 0; i < in->n && !rc; i++) {
			const char *s = SL_STR(in, i);
			size_t n = in->len[i];
			int hex = n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>';
			char *endp;
			char h[3] = { hex ? s[3] : 0, hex ? s[4] : 0, 0 };
			unsigned long v = hex ? strtoul(h, &endp, 16) : 0;
			/* Rust's u8::from_str_radix: optional '+', hex digits */
			if (hex && endp == h + 2 && h[0] != '-' && h[0] != ' ' && h[1] != ' ') {
				char c = (char)v;
				rc = tk_buf_append(&b, &c, 1);
			} else {
				rc = flush_bytes(out, &b);
				if (!rc)
					rc = sl_push(out, s, n);
			}
		}
		if (!rc)
			rc = flush_bytes(out, &b);
		break;
	case TOK_D_FUSE:
		rc = sl_push(out, "", 0);
		for (size_t i = 0; i < in->n && !rc; i++)
			rc = sl_extend(out, SL_STR(in, i), in->len[i]);
		break;
	case TOK_D_STRIP:
		for (size_t i = 0; i < in->n && !rc; i++) {
			const unsigned char *s = (const unsigned char *)SL_STR(in, i);
			size_t n = in->len[i], a = 0, z = n, l;
			for (long long k = 0; k < dc->start && a < n; k++) {
				if (tok_u8dec(s + a, &l) != dc->cp)
					break;
				a += l;
			}
			for (long long k = 0; k < dc->stop && z > a; k++) {
				size_t j = z - 1;
				while (j > 0 && (s[j] & 0xC0) == 0x80)
					j--;
				if (tok_u8dec(s + j, &l) != dc->cp)
					break;
				z = j;
			}
			rc = sl_push(out, (const char *)s + a, z - a);
		}
		break;
	default:
		rc = TK_E_INVAL;
	}
	tk_buf_free(&b);
	return rc;
}

int tk_decode(const tk_tokenizer_t *t, const uint32_t *ids, size_t n, int skip_special,
	      struct tk_buf *out)
{
	struct strlist a = { 0 }, b = { 0 }, *cur = &a, *nxt = &b;
	pcre2_match_data *md = NULL;
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		if (ids[i] >= t->vocab_size)
			return TK_E_INVAL;
	for (size_t i = 0; i < n && !rc; i++) {
		const char *s = t->dec_str[ids[i]];
		size_t len = t->dec_len[ids[i]];
		uint32_t dummy;
		if (!s || (skip_special && tok_smap_get(&t->special, s, len, &dummy)))
			continue;
		rc = sl_push(cur, s, len);
	}
	if (!rc && t->has_decoder) {
		md = pcre2_match_data_create(4, NULL);
		if (!md)
			rc = TK_E_NOMEM;
		for (size_t k = 0; k < t->ndec && !rc; k++) {
			rc = decode_step(&t->dec[k], md, cur, nxt);
			struct strlist *x = cur;
			cur = nxt;
			nxt = x;
		}
	}
	for (size_t i = 0; i < cur->n && !rc; i++) {
		if (!t->has_decoder && i > 0)
			rc = tk_buf_append(out, " ", 1);
		if (!rc)
			rc = tk_buf_append(out, SL_STR(cur, i), cur->len[i]);
	}
	if (!rc)
		rc = tk_buf_reserve(out, 0);
	if (!rc)
		out->data[out->len] = '\0';
	if (md)
		pcre2_match_data_free(md);
	sl_free(&a);
	sl_free(&b);
	return rc;
}

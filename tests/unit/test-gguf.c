/* test-gguf.c - the GGUF reader (against lies), dequantization against the
 * gguf Python package, GGUF vocabularies in the tokenizer (llama.cpp's
 * vectors), and tk_gguf_tokenizer_json.
 *
 * Fixtures: tests/fixtures/gguf/ggml-vocab-{gpt-2,llama-spm}.gguf (from the
 * shared reference data, llama.cpp's models/ folder); llama-bpe (7.8 MB) is
 * read from $TK_SHARED/data/tokenizer-vectors when present, else SKIP;
 * tests/fixtures/gguf/quants.gguf + quants.f32 from
 * tests/parity/gen-gguf-fixtures.py.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "text/tokenizer.h"
#include "tt.h"

static int read_all(const char *path, struct tk_buf *b)
{
	struct tk_diag d;
	b->len = 0;
	return tk_read_file(path, b, &d);
}

/* ---- building GGUF bytes by hand ---- */

struct gb {
	struct tk_buf b;
};

static void put(struct gb *g, const void *p, size_t n)
{
	tk_buf_append(&g->b, p, n);
}

static void u32(struct gb *g, uint32_t v)
{
	put(g, &v, 4);
}

static void u64(struct gb *g, uint64_t v)
{
	put(g, &v, 8);
}

static void str(struct gb *g, const char *s)
{
	u64(g, strlen(s));
	put(g, s, strlen(s));
}

static void kv_str(struct gb *g, const char *k, const char *v)
{
	str(g, k);
	u32(g, TK_GGUF_STRING);
	str(g, v);
}

static void kv_u32(struct gb *g, const char *k, uint32_t v)
{
	str(g, k);
	u32(g, TK_GGUF_U32);
	u32(g, v);
}

static void pad_to(struct gb *g, size_t a)
{
	while (g->b.len % a)
		put(g, "", 1);
}

static const char *write_tmp(const char *name, const struct gb *g)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tt_tmpdir(), name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return NULL;
	fwrite(g->b.data, 1, g->b.len, f);
	fclose(f);
	return path;
}

/* A small valid v3 file: two keys, an array, two f32 tensors. */
static void make_small(struct gb *g, uint32_t version)
{
	float a[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, b[4] = { -1, -2, -3, -4 };
	put(g, "GGUF", 4);
	u32(g, version);
	u64(g, 2); /* tensors */
	u64(g, 3); /* kvs */
	kv_str(g, "general.architecture", "llama");
	kv_u32(g, "llama.block_count", 2);
	str(g, "tokenizer.ggml.tokens");
	u32(g, TK_GGUF_ARRAY);
	u32(g, TK_GGUF_STRING);
	u64(g, 2);
	str(g, "a");
	str(g, "bc");
	str(g, "x.weight");
	u32(g, 2);
	u64(g, 4);
	u64(g, 2);
	u32(g, TK_GGML_F32);
	u64(g, 0);
	str(g, "y.weight");
	u32(g, 1);
	u64(g, 4);
	u32(g, TK_GGML_F32);
	u64(g, 32);
	pad_to(g, 32);
	put(g, a, sizeof(a));
	pad_to(g, 32);
	put(g, b, sizeof(b));
}

static void test_read_small(void)
{
	for (uint32_t version = 2; version <= 3; version++) {
		struct gb g = { 0 };
		struct tk_diag d;
		tk_gguf_t *f;
		make_small(&g, version);
		const char *path = write_tmp("small.gguf", &g);
		TT_REQUIRE(path && tk_gguf_open(&f, path, &d) == 0, "open: %s", d.msg);
		TT_CHECK(tk_gguf_version(f) == version, "version %u", tk_gguf_version(f));
		TT_CHECK(tk_gguf_kv_count(f) == 3 && tk_gguf_tensor_count(f) == 2, "counts");
		const char *arch;
		int64_t n;
		TT_CHECK(tk_gguf_get_str(f, "general.architecture", &arch, &d) == 0 && arch &&
				 !strcmp(arch, "llama"), "architecture");
		TT_CHECK(tk_gguf_get_int(f, "llama.block_count", 0, &n, &d) == 0 && n == 2, "blocks");
		TT_CHECK(tk_gguf_get_int(f, "absent", 7, &n, &d) == 0 && n == 7, "default");
		TT_CHECK(tk_gguf_get_int(f, "general.architecture", 0, &n, &d) == TK_E_FORMAT &&
				 strstr(d.msg, "general.architecture"), "wrong type: %s", d.msg);
		const struct tk_gguf_kv *kv = tk_gguf_find(f, "tokenizer.ggml.tokens");
		TT_REQUIRE(kv && kv->type == TK_GGUF_ARRAY && kv->n == 2, "array");
		TT_CHECK(kv->strs[1].n == 2 && !memcmp(kv->strs[1].p, "bc", 2), "array string");
		const struct tk_gguf_tensor *x = tk_gguf_tensor_find(f, "x.weight");
		const struct tk_gguf_tensor *y = tk_gguf_tensor_find(f, "y.weight");
		TT_REQUIRE(x && y && !tk_gguf_tensor_find(f, "z"), "find");
		TT_CHECK(x->ndim == 2 && x->ne[0] == 4 && x->ne[1] == 2 && x->nelem == 8 &&
				 x->nbytes == 32, "x shape");
		float v[8];
		TT_CHECK(tk_gguf_to_f32(f, x, v, &d) == 0 && v[0] == 1 && v[7] == 8, "x data");
		TT_CHECK(tk_gguf_to_f32(f, y, v, &d) == 0 && v[0] == -1 && v[3] == -4, "y data");
		tk_gguf_close(f);
		tk_buf_free(&g.b);
	}
}

/* Opens the bytes and expects err with a message containing want. */
static void expect_bad(const struct gb *g, int err, const char *want)
{
	struct tk_diag d;
	tk_gguf_t *f = NULL;
	const char *path = write_tmp("bad.gguf", g);
	TT_REQUIRE(path, "write");
	int rc = tk_gguf_open(&f, path, &d);
	TT_CHECK(rc == err && strstr(rc ? d.msg : "", want) && !f == !!err,
		 "want %d '%s', got %d '%s'", err, want, rc, rc ? d.msg : "");
	tk_gguf_close(f);
}

/* Patches the little-endian u64 at off. */
static void patch64(struct gb *g, size_t off, uint64_t v)
{
	memcpy(g->b.data + off, &v, 8);
}

static void test_lies(void)
{
	struct gb g = { 0 };
	make_small(&g, 3);
	size_t full = g.b.len;
	/* truncated anywhere: a clean error */
	for (size_t cut = 0; cut < full; cut += 3) {
		g.b.len = cut;
		expect_bad(&g, TK_E_FORMAT, cut < 4 ? "truncated" : "");
	}
	g.b.len = full;
	/* wrong magic, version */
	g.b.data[0] = 'X';
	expect_bad(&g, TK_E_FORMAT, "bad magic");
	g.b.data[0] = 'G';
	g.b.data[4] = 1;
	expect_bad(&g, TK_E_UNSUPPORTED, "version 1 is not supported");
	g.b.data[4] = 3;
	/* counts */
	patch64(&g, 16, 1ull << 40);
	expect_bad(&g, TK_E_FORMAT, "key/value count 1099511627776 is more than the file can hold");
	patch64(&g, 16, 3);
	patch64(&g, 8, 1ull << 60);
	expect_bad(&g, TK_E_FORMAT, "tensor count");
	patch64(&g, 8, 2);
	/* a string length past the end: the first key's */
	patch64(&g, 24, 1ull << 50);
	expect_bad(&g, TK_E_FORMAT, "key length 1125899906842624 runs past the end");
	patch64(&g, 24, strlen("general.architecture"));
	expect_bad(&g, 0, "");
	tk_buf_free(&g.b);
}

/* Tensor lies: built with the tensor info fields given. */
static void tensor_file(struct gb *g, uint32_t nd, uint64_t ne0, uint32_t type, uint64_t off,
			size_t data_bytes)
{
	g->b.len = 0;
	put(g, "GGUF", 4);
	u32(g, 3);
	u64(g, 1);
	u64(g, 0);
	str(g, "t");
	u32(g, nd);
	for (uint32_t i = 0; i < nd && i < 8; i++)
		u64(g, i ? 1 : ne0);
	u32(g, type);
	u64(g, off);
	pad_to(g, 32);
	for (size_t i = 0; i < data_bytes; i++)
		put(g, "\x01", 1);
}

static void test_tensor_lies(void)
{
	struct gb g = { 0 };
	tensor_file(&g, 1, 32, TK_GGML_Q8_0, 0, 34);
	expect_bad(&g, 0, "");
	tensor_file(&g, 1, 32, TK_GGML_Q8_0, 0, 33);
	expect_bad(&g, TK_E_FORMAT, "tensor 't' (q8_0, 34 bytes at offset 0) runs past the end");
	tensor_file(&g, 1, 33, TK_GGML_Q8_0, 0, 100);
	expect_bad(&g, TK_E_FORMAT, "row length 33 is not a whole number of blocks");
	tensor_file(&g, 1, 32, 31, 0, 100);
	expect_bad(&g, TK_E_UNSUPPORTED, "tensor 't' has unknown ggml type 31");
	tensor_file(&g, 5, 32, TK_GGML_F32, 0, 200);
	expect_bad(&g, TK_E_FORMAT, "has rank 5");
	tensor_file(&g, 1, 4, TK_GGML_F32, 8, 200);
	expect_bad(&g, TK_E_FORMAT, "not a multiple of the alignment");
	tensor_file(&g, 1, 4, TK_GGML_F32, 1ull << 63, 200);
	expect_bad(&g, TK_E_FORMAT, "runs past the end");
	tensor_file(&g, 2, 1ull << 62, TK_GGML_F32, 0, 200);
	expect_bad(&g, TK_E_FORMAT, "is larger than any file");
	tensor_file(&g, 1, 1ull << 40, TK_GGML_F32, 0, 200);
	expect_bad(&g, TK_E_FORMAT, "runs past the end");
	tk_buf_free(&g.b);
}

static void test_duplicates_and_overlap(void)
{
	struct gb g = { 0 };
	put(&g, "GGUF", 4);
	u32(&g, 3);
	u64(&g, 0);
	u64(&g, 2);
	kv_u32(&g, "a", 1);
	kv_u32(&g, "a", 2);
	expect_bad(&g, TK_E_FORMAT, "key 'a' appears twice");
	g.b.len = 0;
	put(&g, "GGUF", 4);
	u32(&g, 3);
	u64(&g, 2);
	u64(&g, 0);
	for (int i = 0; i < 2; i++) {
		str(&g, i ? "u" : "t");
		u32(&g, 1);
		u64(&g, 16);
		u32(&g, TK_GGML_F32);
		u64(&g, i ? 32 : 0);
	}
	pad_to(&g, 32);
	for (int i = 0; i < 128; i++)
		put(&g, "", 1);
	expect_bad(&g, TK_E_FORMAT, "tensors 't' and 'u' overlap");
	kv_u32(&g, "x", 0); /* keep the buffer growing harmlessly */
	tk_buf_free(&g.b);
}

static void test_unsupported_dequant(void)
{
	struct gb g = { 0 };
	struct tk_diag d;
	tk_gguf_t *f;
	tensor_file(&g, 1, 256, TK_GGML_Q2_K, 0, 84);
	const char *path = write_tmp("q2k.gguf", &g);
	TT_REQUIRE(tk_gguf_open(&f, path, &d) == 0, "%s", d.msg);
	float v[256];
	TT_CHECK(tk_gguf_to_f32(f, tk_gguf_tensor_at(f, 0), v, &d) == TK_E_UNSUPPORTED &&
			 strstr(d.msg, "tensor 't' has type q2_k, which tk cannot dequantize"),
		 "%s", d.msg);
	tk_gguf_close(f);
	tk_buf_free(&g.b);
}

/* ---- dequantization against the gguf package ---- */

static void test_dequant_fixtures(void)
{
	struct tk_diag d;
	tk_gguf_t *f;
	struct tk_buf want = { 0 };
	char gpath[1024], fpath[1024];
	/* make parity points this at files made now with other seeds */
	const char *dir = getenv("TK_GGUF_PARITY_DIR");
	snprintf(gpath, sizeof(gpath), "%s/quants.gguf", dir ? dir : tt_fixture("gguf"));
	snprintf(fpath, sizeof(fpath), "%s/quants.f32", dir ? dir : tt_fixture("gguf"));
	TT_REQUIRE(tk_gguf_open(&f, gpath, &d) == 0, "%s", d.msg);
	TT_REQUIRE(read_all(fpath, &want) == 0, "%s", fpath);
	size_t at = 0, types_seen = 0;
	for (size_t i = 0; i < tk_gguf_tensor_count(f); i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(f, i);
		float *v = malloc(t->nelem * sizeof(float));
		TT_REQUIRE(v, "oom");
		TT_CHECK(tk_gguf_to_f32(f, t, v, &d) == 0, "%s: %s", t->name, d.msg);
		TT_REQUIRE(at + t->nelem * 4 <= want.len, "quants.f32 too short");
		size_t bad = 0, first = 0;
		for (uint64_t k = 0; k < t->nelem; k++) {
			uint32_t a, b;
			memcpy(&a, &v[k], 4);
			memcpy(&b, want.data + at + 4 * k, 4);
			if (a != b && !bad++)
				first = k;
		}
		TT_CHECK(!bad, "%s (%s): %zu of %llu values differ from gguf's, first at %zu",
			 t->name, tk_ggml_type_name(t->type), bad, (unsigned long long)t->nelem, first);
		at += t->nelem * 4;
		types_seen++;
		free(v);
	}
	TT_CHECK(at == want.len, "quants.f32 has %zu bytes, used %zu", want.len, at);
	TT_CHECK(types_seen == 11, "%zu tensors", types_seen);
	tk_buf_free(&want);
	tk_gguf_close(f);
}

/* ---- vocabularies ---- */

static void parse_ids(const char *s, struct tk_ids *ids)
{
	ids->n = 0;
	while (*s) {
		char *end;
		unsigned long v = strtoul(s, &end, 10);
		if (end == s)
			break;
		tk_ids_push(ids, (uint32_t)v);
		s = end;
	}
}

static void vectors(const char *gguf_arg, const char *name)
{
	char p[512], gguf[1024];
	struct tk_buf inp = { 0 }, out = { 0 };
	struct tk_diag d;
	tk_tokenizer_t *t;
	tk_encoder_t *e;
	struct tk_ids got = { 0 }, want = { 0 };
	const char *sep = "\n__ggml_vocab_test__\n";
	snprintf(gguf, sizeof(gguf), "%s", gguf_arg);
	snprintf(p, sizeof(p), "vectors/%s.inp", name);
	TT_REQUIRE(read_all(tt_fixture(p), &inp) == 0, "%s", p);
	snprintf(p, sizeof(p), "vectors/%s.out", name);
	TT_REQUIRE(read_all(tt_fixture(p), &out) == 0, "%s", p);
	TT_REQUIRE(tk_tokenizer_load(&t, gguf, &d) == 0, "%s: %s", d.path, d.msg);
	TT_REQUIRE(tk_encoder_new(t, &e) == 0, "encoder");
	char *s = inp.data, *o = out.data;
	int n = 0, bad = 0;
	for (char *q; (q = strstr(s, sep)); s = q + strlen(sep), n++) {
		char *nl = strchr(o, '\n');
		TT_REQUIRE(nl, "%s.out has fewer lines than strings", name);
		*nl = '\0';
		parse_ids(o, &want);
		o = nl + 1;
		got.n = 0;
		int rc = tk_encode(e, s, (size_t)(q - s), 0, &got);
		int same = rc == 0 && got.n == want.n &&
			   !memcmp(got.v, want.v, got.n * sizeof(*got.v));
		if (!same && !bad++)
			TT_CHECK(0, "%s vector %d differs (%zu ids, want %zu)", name, n, got.n, want.n);
	}
	TT_CHECK(n == 46 && !bad, "%s: %d of %d vectors differ", name, bad, n);
	tk_ids_free(&got);
	tk_ids_free(&want);
	tk_buf_free(&inp);
	tk_buf_free(&out);
	tk_encoder_free(e);
	tk_tokenizer_free(t);
}

static void test_vectors_gpt2(void)
{
	vectors(tt_fixture("gguf/ggml-vocab-gpt-2.gguf"), "gpt-2");
}

static void test_vectors_llama_spm(void)
{
	vectors(tt_fixture("gguf/ggml-vocab-llama-spm.gguf"), "llama-spm");
}

static void test_vectors_llama_bpe(void)
{
	char p[1024];
	const char *shared = getenv("TK_SHARED");
	snprintf(p, sizeof(p), "%s/data/tokenizer-vectors/ggml-vocab-llama-bpe.gguf",
		 shared ? shared : "../shared");
	if (access(p, R_OK) != 0)
		TT_SKIP("%s not found (7.8 MB, kept out of the tree)", p);
	vectors(p, "llama-bpe");
}

/* The GGUF tokenizer and the gpt2 tokenizer.json it came from are one
 * tokenizer: same fingerprint-relevant behaviour, same special ids. */
static void test_gguf_tokenizer_properties(void)
{
	struct tk_diag d;
	tk_tokenizer_t *t, *s;
	TT_REQUIRE(tk_tokenizer_load(&t, tt_fixture("gguf/ggml-vocab-llama-spm.gguf"), &d) == 0,
		   "%s", d.msg);
	TT_CHECK(tk_tokenizer_vocab_size(t) == 32000, "vocab %u", tk_tokenizer_vocab_size(t));
	TT_CHECK(tk_tokenizer_bos_id(t) == 1 && tk_tokenizer_eos_id(t) == 2, "bos/eos");
	TT_CHECK(tk_tokenizer_adds_bos(t) && !tk_tokenizer_adds_eos(t), "adds bos only");
	tk_encoder_t *e;
	struct tk_ids ids = { 0 };
	struct tk_buf txt = { 0 };
	TT_REQUIRE(tk_encoder_new(t, &e) == 0, "encoder");
	TT_CHECK(tk_encode(e, "Hello world", 11, TK_ENCODE_ADD_SPECIAL, &ids) == 0 && ids.n == 3 &&
			 ids.v[0] == 1 && ids.v[1] == 15043 && ids.v[2] == 3186, "encode");
	TT_CHECK(tk_decode(t, ids.v, ids.n, 1, &txt) == 0 && !strcmp(txt.data, "Hello world"),
		 "decode '%s'", txt.data ? txt.data : "");
	tk_buf_free(&txt);
	tk_ids_free(&ids);
	tk_encoder_free(e);
	tk_tokenizer_free(t);

	TT_REQUIRE(tk_tokenizer_load(&t, tt_fixture("gguf/ggml-vocab-gpt-2.gguf"), &d) == 0, "%s",
		   d.msg);
	TT_REQUIRE(tk_tokenizer_load(&s, tt_fixture("gpt2/tokenizer.json"), &d) == 0, "%s", d.msg);
	TT_CHECK(tk_tokenizer_vocab_size(t) == tk_tokenizer_vocab_size(s), "vocab sizes");
	TT_CHECK(tk_tokenizer_eos_id(t) == 50256 && !tk_tokenizer_adds_bos(t), "gpt-2 specials");
	TT_CHECK(!strcmp(tk_tokenizer_fingerprint(t), tk_tokenizer_fingerprint(s)),
		 "fingerprints %s %s", tk_tokenizer_fingerprint(t), tk_tokenizer_fingerprint(s));
	tk_tokenizer_free(s);
	tk_tokenizer_free(t);
}

/* A vocabulary without merges (SPM from scores) and bad vocabularies. */
static void vocab_file(struct gb *g, const char *model, const char *pre, int ntok,
		       const char *const *toks, const float *scores, int with_types)
{
	g->b.len = 0;
	put(g, "GGUF", 4);
	u32(g, 3);
	u64(g, 0);
	u64(g, 2 + (pre != NULL) + (scores != NULL) + with_types);
	kv_str(g, "tokenizer.ggml.model", model);
	if (pre)
		kv_str(g, "tokenizer.ggml.pre", pre);
	str(g, "tokenizer.ggml.tokens");
	u32(g, TK_GGUF_ARRAY);
	u32(g, TK_GGUF_STRING);
	u64(g, (uint64_t)ntok);
	for (int i = 0; i < ntok; i++)
		str(g, toks[i]);
	if (scores) {
		str(g, "tokenizer.ggml.scores");
		u32(g, TK_GGUF_ARRAY);
		u32(g, TK_GGUF_F32);
		u64(g, (uint64_t)ntok);
		put(g, scores, sizeof(float) * (size_t)ntok);
	}
	if (with_types) {
		str(g, "tokenizer.ggml.token_type");
		u32(g, TK_GGUF_ARRAY);
		u32(g, TK_GGUF_I32);
		u64(g, (uint64_t)ntok);
		for (int i = 0; i < ntok; i++)
			u32(g, i == 0 ? 3 : 1);
	}
}

static void expect_tok_error(const struct gb *g, int err, const char *want)
{
	struct tk_diag d;
	tk_tokenizer_t *t = NULL;
	const char *path = write_tmp("vocab.gguf", g);
	int rc = tk_tokenizer_load(&t, path, &d);
	TT_CHECK(rc == err && strstr(d.msg, want) && !t, "want %d '%s', got %d '%s'", err, want, rc,
		 rc ? d.msg : "");
	tk_tokenizer_free(t);
}

/* The tokenizer.json built from a GGUF is one Hugging Face tokenizers
 * loads: its TemplateProcessing needs "pair" as well as "single" (the
 * library refuses the file otherwise), laid out as transformers' converter
 * writes it: BOS $A, then BOS $B with type_id 1. */
static void test_gguf_template_has_pair(void)
{
	struct tk_diag d;
	tk_gguf_t *g;
	cJSON *tok = NULL, *cfg = NULL;
	TT_REQUIRE(tk_gguf_open(&g, tt_fixture("gguf/ggml-vocab-llama-spm.gguf"), &d) == 0, "%s", d.msg);
	TT_REQUIRE(tk_gguf_tokenizer_json(g, &tok, &cfg, &d) == 0, "%s", d.msg);
	cJSON *post = cJSON_GetObjectItemCaseSensitive(tok, "post_processor");
	cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single");
	cJSON *pair = cJSON_GetObjectItemCaseSensitive(post, "pair");
	TT_CHECK(cJSON_GetArraySize(single) == 2, "single has %d items", cJSON_GetArraySize(single));
	TT_REQUIRE(cJSON_GetArraySize(pair) == 4, "pair has %d items", cJSON_GetArraySize(pair));
	static const char *const want[4][3] = { { "SpecialToken", "<s>", "0" }, { "Sequence", "A", "0" },
						 { "SpecialToken", "<s>", "1" }, { "Sequence", "B", "1" } };
	for (int i = 0; i < 4; i++) {
		cJSON *in = cJSON_GetArrayItem(pair, i)->child;
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "id"));
		int type = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(in, "type_id"));
		TT_CHECK(!strcmp(in->string, want[i][0]) && id && !strcmp(id, want[i][1]) &&
				 type == want[i][2][0] - '0', "pair[%d] = %s %s %d", i, in->string,
			 id ? id : "?", type);
	}
	cJSON_Delete(tok);
	cJSON_Delete(cfg);
	tk_gguf_close(g);
}

static void test_vocab_errors(void)
{
	struct gb g = { 0 };
	static const char *const toks[] = { "<s>", "a", "b", "ab" };
	vocab_file(&g, "bert", NULL, 4, toks, NULL, 0);
	expect_tok_error(&g, TK_E_UNSUPPORTED, "tokenizer.ggml.model 'bert' is not supported");
	vocab_file(&g, "gpt2", "klingon", 4, toks, NULL, 0);
	expect_tok_error(&g, TK_E_UNSUPPORTED, "tokenizer.ggml.pre 'klingon' is not supported");
	vocab_file(&g, "llama", NULL, 4, toks, NULL, 0);
	expect_tok_error(&g, TK_E_FORMAT, "neither tokenizer.ggml.merges nor tokenizer.ggml.scores");
	g.b.len = 0;
	put(&g, "GGUF", 4);
	u32(&g, 3);
	u64(&g, 0);
	u64(&g, 0);
	expect_tok_error(&g, TK_E_FORMAT, "no tokenizer.ggml.model");
	tk_buf_free(&g.b);
}

/* Merges recovered from scores, as transformers' generate_merges: "ab"
 * (score -1) beats "bc" (-2), so "abc" is ab + c. */
static void test_spm_scores(void)
{
	struct gb g = { 0 };
	struct tk_diag d;
	tk_tokenizer_t *t;
	tk_encoder_t *e;
	struct tk_ids ids = { 0 };
	static const char *const toks[] = { "<unk>", "\xE2\x96\x81", "a", "b", "c", "ab", "bc",
					    "\xE2\x96\x81" "ab" };
	static const float scores[] = { 0, -10, -10, -10, -10, -1, -2, -3 };
	vocab_file(&g, "llama", NULL, 8, toks, scores, 1);
	const char *path = write_tmp("spm.gguf", &g);
	TT_REQUIRE(tk_tokenizer_load(&t, path, &d) == 0, "%s", d.msg);
	TT_REQUIRE(tk_encoder_new(t, &e) == 0, "encoder");
	TT_CHECK(tk_encode(e, "abc", 3, 0, &ids) == 0 && ids.n == 2 && ids.v[0] == 7 && ids.v[1] == 4,
		 "abc -> %zu ids [%u %u]", ids.n, ids.n ? ids.v[0] : 0, ids.n > 1 ? ids.v[1] : 0);
	ids.n = 0;
	TT_CHECK(tk_encode(e, "bc", 2, 0, &ids) == 0 && ids.n == 2 && ids.v[0] == 1 && ids.v[1] == 6,
		 "bc -> %zu ids", ids.n);
	tk_ids_free(&ids);
	tk_encoder_free(e);
	tk_tokenizer_free(t);
	tk_buf_free(&g.b);
}

int main(void)
{
	TT_RUN(test_read_small);
	TT_RUN(test_lies);
	TT_RUN(test_tensor_lies);
	TT_RUN(test_duplicates_and_overlap);
	TT_RUN(test_unsupported_dequant);
	TT_RUN(test_dequant_fixtures);
	TT_RUN(test_vectors_gpt2);
	TT_RUN(test_vectors_llama_spm);
	TT_RUN(test_vectors_llama_bpe);
	TT_RUN(test_gguf_tokenizer_properties);
	TT_RUN(test_gguf_template_has_pair);
	TT_RUN(test_vocab_errors);
	TT_RUN(test_spm_scores);
	return tt_done();
}

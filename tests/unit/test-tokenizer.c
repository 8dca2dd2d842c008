/* test-tokenizer.c - lib/tokenizer*.c against what Hugging Face `tokenizers`
 * produced (tests/fixtures/tokenizers, made by
 * tests/parity/gen-tokenizer-fixtures.py, and llama.cpp's GPT-2 vectors).
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "text/tokenizer.h"
#include "tt.h"

/* ---- fixture helpers ---- */

struct texts {
	char **s;
	size_t *n;
	size_t count;
};

static int read_all(const char *path, struct tk_buf *b)
{
	struct tk_diag d;
	b->len = 0;
	return tk_read_file(path, b, &d);
}

/* hard-text.jsonl: one JSON string per line. */
static int load_texts(struct texts *t)
{
	struct tk_buf b = { 0 };
	memset(t, 0, sizeof(*t));
	if (read_all(tt_fixture("tokenizers/hard-text.jsonl"), &b))
		return -1;
	for (char *line = strtok(b.data, "\n"); line; line = strtok(NULL, "\n")) {
		cJSON *j = cJSON_Parse(line);
		if (!cJSON_IsString(j))
			return -1;
		t->s = realloc(t->s, (t->count + 1) * sizeof(*t->s));
		t->n = realloc(t->n, (t->count + 1) * sizeof(*t->n));
		t->s[t->count] = strdup(j->valuestring);
		t->n[t->count] = strlen(j->valuestring);
		t->count++;
		cJSON_Delete(j);
	}
	tk_buf_free(&b);
	return 0;
}

static void free_texts(struct texts *t)
{
	for (size_t i = 0; i < t->count; i++)
		free(t->s[i]);
	free(t->s);
	free(t->n);
}

static void parse_ids(const char *s, struct tk_ids *ids)
{
	char *end;
	ids->n = 0;
	while (*s) {
		unsigned long v = strtoul(s, &end, 10);
		if (end == s)
			break;
		tk_ids_push(ids, (uint32_t)v);
		s = end;
		while (*s == ' ')
			s++;
	}
}

static int same_ids(const struct tk_ids *a, const struct tk_ids *b)
{
	return a->n == b->n && (!a->n || !memcmp(a->v, b->v, a->n * sizeof(*a->v)));
}

static void ids_str(const struct tk_ids *ids, char *out, size_t cap)
{
	size_t k = 0;
	out[0] = '\0';
	for (size_t i = 0; i < ids->n && k + 12 < cap; i++)
		k += (size_t)snprintf(out + k, cap - k, i ? " %u" : "%u", ids->v[i]);
}

/* Checks a tokenizer against NAME.expect over the hard text; encode_only
 * skips the decode fields.  Returns 0 or reports through TT_CHECK. */
static void check_expect(const char *tokpath_arg, const char *expect, int encode_only)
{
	char tokpath[1024]; /* tt_fixture's buffer is reused below */
	struct texts tx;
	struct tk_buf b = { 0 }, dec = { 0 };
	struct tk_diag d;
	tk_tokenizer_t *t = NULL;
	tk_encoder_t *e = NULL;
	struct tk_ids got = { 0 }, want = { 0 };
	char gs[600], ws[600];
	snprintf(tokpath, sizeof(tokpath), "%s", tokpath_arg);
	TT_REQUIRE(load_texts(&tx) == 0, "cannot read hard-text.jsonl");
	int rc = tk_tokenizer_load(&t, tokpath, &d);
	TT_REQUIRE(rc == 0, "%s: %s", d.path, d.msg);
	TT_REQUIRE(tk_encoder_new(t, &e) == 0, "encoder");
	TT_REQUIRE(read_all(tt_fixture(expect), &b) == 0, "cannot read %s", expect);
	char *save = NULL;
	size_t i = 0;
	for (char *line = strtok_r(b.data, "\n", &save); line && i < tx.count;
	     line = strtok_r(NULL, "\n", &save), i++) {
		char *f[4];
		f[0] = line;
		for (int k = 1; k < 4; k++) {
			f[k] = strchr(f[k - 1], '\t');
			TT_REQUIRE(f[k], "%s:%zu: malformed", expect, i + 1);
			*f[k]++ = '\0';
		}
		for (int add = 1; add >= 0; add--) {
			parse_ids(f[add ? 0 : 1], &want);
			got.n = 0;
			rc = tk_encode(e, tx.s[i], tx.n[i], add ? TK_ENCODE_ADD_SPECIAL : 0, &got);
			ids_str(&got, gs, sizeof(gs));
			ids_str(&want, ws, sizeof(ws));
			TT_CHECK(rc == 0 && same_ids(&got, &want),
				 "%s line %zu (add_special=%d): got [%s], want [%s]", expect, i + 1,
				 add, gs, ws);
		}
		if (encode_only)
			continue;
		parse_ids(f[0], &want);
		for (int skip = 0; skip < 2; skip++) {
			cJSON *j = cJSON_Parse(f[2 + skip]);
			dec.len = 0;
			rc = tk_decode(t, want.v, want.n, skip, &dec);
			TT_CHECK(cJSON_IsString(j) && rc == 0 && dec.data &&
				 !strcmp(dec.data, j->valuestring),
				 "%s line %zu: decode(skip=%d) = \"%.200s\", want %.200s", expect, i + 1,
				 skip, dec.data ? dec.data : "(null)", f[2 + skip]);
			cJSON_Delete(j);
		}
	}
	TT_CHECK(i == tx.count, "%s has %zu lines, hard text %zu", expect, i, tx.count);
	tk_ids_free(&got);
	tk_ids_free(&want);
	tk_buf_free(&b);
	tk_buf_free(&dec);
	tk_encoder_free(e);
	tk_tokenizer_free(t);
	free_texts(&tx);
}

#define FIXTURE_TEST(fn, name)                                              \
	static void fn(void)                                                \
	{                                                                   \
		check_expect(tt_fixture("tokenizers/" name ".json"),        \
			     "tokenizers/" name ".expect", 0);              \
	}

FIXTURE_TEST(test_gpt2_style, "gpt2-style")
FIXTURE_TEST(test_llama3_style, "llama3-style")
FIXTURE_TEST(test_qwen2_style, "qwen2-style")
FIXTURE_TEST(test_llama2_style, "llama2-style")
FIXTURE_TEST(test_tinyllama_style, "tinyllama-style")
FIXTURE_TEST(test_spm_split, "spm-split")
FIXTURE_TEST(test_added_tokens, "added-tokens")
FIXTURE_TEST(test_misc, "misc")
FIXTURE_TEST(test_affix, "affix")

static void test_gpt2_hard_text(void)
{
	check_expect(tt_fixture("gpt2/tokenizer.json"), "tokenizers/gpt2.expect", 0);
}

/* The gpt2 directory minus tokenizer.json: vocab.json + merges.txt. */
static const char *legacy_dir(void)
{
	static char dir[512];
	char cmd[2048];
	snprintf(dir, sizeof(dir), "%s/legacy-gpt2", tt_tmpdir());
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/vocab.json' '%s/merges.txt' '%s/'", dir,
		 tt_fixture("gpt2"), tt_fixture("gpt2"), dir);
	if (system(cmd) != 0)
		return NULL;
	return dir;
}

static void test_gpt2_legacy_hard_text(void)
{
	const char *dir = legacy_dir();
	TT_REQUIRE(dir, "cannot copy the legacy files");
	check_expect(dir, "tokenizers/gpt2.expect", 0);
}

/* llama.cpp's test-tokenizer-0 vectors: strings separated by
 * "\n__ggml_vocab_test__\n", one line of ids per string. */
static void check_vectors(const char *tokpath_arg)
{
	char tokpath[1024];
	struct tk_buf inp = { 0 }, out = { 0 };
	struct tk_diag d;
	tk_tokenizer_t *t;
	tk_encoder_t *e;
	struct tk_ids got = { 0 }, want = { 0 };
	const char *sep = "\n__ggml_vocab_test__\n";
	char gs[600], ws[600];
	snprintf(tokpath, sizeof(tokpath), "%s", tokpath_arg);
	TT_REQUIRE(read_all(tt_fixture("vectors/gpt-2.inp"), &inp) == 0, "gpt-2.inp");
	TT_REQUIRE(read_all(tt_fixture("vectors/gpt-2.out"), &out) == 0, "gpt-2.out");
	TT_REQUIRE(tk_tokenizer_load(&t, tokpath, &d) == 0, "%s: %s", d.path, d.msg);
	TT_REQUIRE(tk_encoder_new(t, &e) == 0, "encoder");
	char *p = inp.data, *o = out.data;
	int n = 0;
	for (char *q; (q = strstr(p, sep)); p = q + strlen(sep), n++) {
		char *nl = strchr(o, '\n');
		TT_REQUIRE(nl, "gpt-2.out has fewer lines than strings");
		*nl = '\0';
		parse_ids(o, &want);
		o = nl + 1;
		got.n = 0;
		int rc = tk_encode(e, p, (size_t)(q - p), 0, &got);
		ids_str(&got, gs, sizeof(gs));
		ids_str(&want, ws, sizeof(ws));
		TT_CHECK(rc == 0 && same_ids(&got, &want), "vector %d: got [%s], want [%s]", n, gs, ws);
	}
	TT_CHECK(n == 46, "%d vectors", n);
	tk_ids_free(&got);
	tk_ids_free(&want);
	tk_buf_free(&inp);
	tk_buf_free(&out);
	tk_encoder_free(e);
	tk_tokenizer_free(t);
}

static void test_vectors_gpt2_json(void)
{
	check_vectors(tt_fixture("gpt2/tokenizer.json"));
}

static void test_vectors_gpt2_legacy(void)
{
	const char *dir = legacy_dir();
	TT_REQUIRE(dir, "cannot copy the legacy files");
	check_vectors(dir);
}

/* ---- special ids and lookups ---- */

static tk_tokenizer_t *load(const char *rel)
{
	struct tk_diag d;
	tk_tokenizer_t *t = NULL;
	if (tk_tokenizer_load(&t, tt_fixture(rel), &d))
		return NULL;
	return t;
}

static void test_special_ids(void)
{
	tk_tokenizer_t *t = load("gpt2");
	TT_REQUIRE(t, "gpt2");
	TT_CHECK(tk_tokenizer_vocab_size(t) == 50257, "%u", tk_tokenizer_vocab_size(t));
	TT_CHECK(tk_tokenizer_eos_id(t) == 50256, "%lld", (long long)tk_tokenizer_eos_id(t));
	TT_CHECK(tk_tokenizer_bos_id(t) == 50256, "bos from tokenizer_config.json");
	TT_CHECK(tk_tokenizer_pad_id(t) == -1, "no pad");
	TT_CHECK(!tk_tokenizer_adds_bos(t) && !tk_tokenizer_adds_eos(t), "GPT-2 adds nothing");
	TT_CHECK(tk_tokenizer_token_id(t, "Ġthe") == 262, "Ġthe");
	TT_CHECK(tk_tokenizer_token_id(t, "no such token") == -1, "absent");
	TT_CHECK(tk_tokenizer_token(t, 262) && !strcmp(tk_tokenizer_token(t, 262), "Ġthe"), "262");
	TT_CHECK(tk_tokenizer_token(t, 50257) == NULL, "out of range");
	tk_tokenizer_free(t);

	t = load("tokenizers/llama2-style.json");
	TT_REQUIRE(t, "llama2-style");
	TT_CHECK(tk_tokenizer_bos_id(t) == 1 && tk_tokenizer_eos_id(t) == 2, "bos/eos");
	TT_CHECK(tk_tokenizer_adds_bos(t) && !tk_tokenizer_adds_eos(t), "adds <s> only");
	TT_CHECK(tk_tokenizer_token_id(t, "<0x0A>") == 13, "byte tokens after the specials");
	tk_tokenizer_free(t);

	t = load("tokenizers/tinyllama-style.json");
	TT_REQUIRE(t, "tinyllama-style");
	TT_CHECK(tk_tokenizer_adds_bos(t) && tk_tokenizer_adds_eos(t), "adds <s> and </s>");
	TT_CHECK(tk_tokenizer_eos_id(t) == 2, "eos from the post-processor");
	tk_tokenizer_free(t);

	t = load("tokenizers/llama3-style.json");
	TT_REQUIRE(t, "llama3-style");
	TT_CHECK(tk_tokenizer_bos_id(t) == tk_tokenizer_token_id(t, "<|begin_of_text|>"), "bos");
	TT_CHECK(tk_tokenizer_eos_id(t) == tk_tokenizer_token_id(t, "<|end_of_text|>"), "eos");
	tk_tokenizer_free(t);
}

/* ---- errors ---- */

static const char *write_tmp(const char *name, const char *content)
{
	static char path[4][600];
	static int k;
	char *p = path[k++ & 3];
	snprintf(p, 600, "%s/%s", tt_tmpdir(), name);
	FILE *f = fopen(p, "w");
	if (!f)
		return NULL;
	fputs(content, f);
	fclose(f);
	return p;
}

static void expect_fail(const char *path, int want, const char *needle)
{
	struct tk_diag d;
	tk_tokenizer_t *t = (tk_tokenizer_t *)1;
	int rc = tk_tokenizer_load(&t, path, &d);
	TT_CHECK(rc == want, "%s: rc %d, want %d (%s)", path, rc, want, d.msg);
	TT_CHECK(t == NULL, "no tokenizer on failure");
	TT_CHECK(strstr(d.msg, needle) != NULL, "message '%s' lacks '%s'", d.msg, needle);
	TT_CHECK(strstr(d.path, path) == d.path || strstr(path, d.path) != NULL,
		 "message names '%s', not %s", d.path, path);
}

static void test_errors(void)
{
	const char *p = write_tmp("bad.json", "{\"model\": {\"type\": \"BPE\",");
	expect_fail(p, TK_E_FORMAT, "not JSON");
	p = write_tmp("nomodel.json", "{\"version\": \"1.0\"}");
	expect_fail(p, TK_E_FORMAT, "no \"model\"");
	p = write_tmp("wordpiece.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
	expect_fail(p, TK_E_UNSUPPORTED, "WordPiece");
	p = write_tmp("unigram.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
	expect_fail(p, TK_E_UNSUPPORTED, "Unigram");
	p = write_tmp("pretok.json",
		      "{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"model\": {\"type\": "
		      "\"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
	expect_fail(p, TK_E_UNSUPPORTED, "BertPreTokenizer");
	p = write_tmp("norm.json",
		      "{\"normalizer\": {\"type\": \"Precompiled\"}, \"model\": {\"type\": "
		      "\"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
	expect_fail(p, TK_E_UNSUPPORTED, "Precompiled");
	p = write_tmp("dec.json",
		      "{\"decoder\": {\"type\": \"WordPiece\"}, \"model\": {\"type\": "
		      "\"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
	expect_fail(p, TK_E_UNSUPPORTED, "WordPiece");
	p = write_tmp("dropout.json", "{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, "
				      "\"vocab\": {\"a\": 0}, \"merges\": []}}");
	expect_fail(p, TK_E_UNSUPPORTED, "dropout");
	p = write_tmp("merge.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, "
				    "\"b\": 1}, \"merges\": [\"a c\"]}}");
	expect_fail(p, TK_E_FORMAT, "'c' is not in the vocabulary");
	p = write_tmp("merge2.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, "
				     "\"b\": 1}, \"merges\": [[\"a\", \"b\"]]}}");
	expect_fail(p, TK_E_FORMAT, "'ab' is not in the vocabulary");
	p = write_tmp("regex.json", "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
				    "{\"Regex\": \"(unclosed\"}, \"behavior\": \"Isolated\", "
				    "\"invert\": false}, \"model\": {\"type\": \"BPE\", \"vocab\": "
				    "{\"a\": 0}, \"merges\": []}}");
	expect_fail(p, TK_E_UNSUPPORTED, "(unclosed");

	/* a byte that starts a 3-byte sequence at the end of a vocab key (a
	 * byte flip found by tests/mutate-formats): refused, not decoded past
	 * the key (ASan: heap-buffer-overflow in finish) */
	p = write_tmp("notutf8.json", "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, "
				      "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, "
				      "\"\xE0\": 1}, \"merges\": []}}");
	expect_fail(p, TK_E_FORMAT, "not UTF-8 (a bad sequence at byte 85)");

	char missing[600];
	snprintf(missing, sizeof(missing), "%s/does-not-exist.json", tt_tmpdir());
	expect_fail(missing, TK_E_IO, "cannot open");
	char empty[600];
	snprintf(empty, sizeof(empty), "%s/emptydir", tt_tmpdir());
	mkdir(empty, 0755);
	expect_fail(empty, TK_E_IO, "no tokenizer.json");
	/* legacy directory with a broken merges.txt: names the line */
	char dir[600], cmd[2000];
	snprintf(dir, sizeof(dir), "%s/badlegacy", tt_tmpdir());
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p '%s' && cp '%s/vocab.json' '%s/' && printf '#version: 0.2\\n\\304\\240 t\\nbad\\n' > '%s/merges.txt'",
		 dir, tt_fixture("gpt2"), dir, dir);
	TT_REQUIRE(system(cmd) == 0, "setup");
	struct tk_diag d;
	tk_tokenizer_t *t;
	TT_CHECK(tk_tokenizer_load(&t, dir, &d) == TK_E_FORMAT && d.line == 3 &&
		 strstr(d.path, "merges.txt"), "legacy: %s:%lld: %s", d.path, d.line, d.msg);

	/* encode and decode errors */
	t = load("tokenizers/gpt2-style.json");
	TT_REQUIRE(t, "gpt2-style");
	tk_encoder_t *e;
	struct tk_ids ids = { 0 };
	TT_REQUIRE(tk_encoder_new(t, &e) == 0, "encoder");
	tk_ids_push(&ids, 7);
	TT_CHECK(tk_encode(e, "ok \xff bad", 8, 0, &ids) == TK_E_FORMAT, "invalid UTF-8");
	TT_CHECK(ids.n == 1, "nothing appended on failure");
	uint32_t bad_id = tk_tokenizer_vocab_size(t);
	struct tk_buf out = { 0 };
	TT_CHECK(tk_decode(t, &bad_id, 1, 0, &out) == TK_E_INVAL, "id out of range");
	tk_buf_free(&out);
	tk_ids_free(&ids);
	tk_encoder_free(e);
	tk_tokenizer_free(t);
}

/* ---- fingerprints ---- */

static void test_fingerprint(void)
{
	struct tk_diag d;
	tk_tokenizer_t *a = load("gpt2/tokenizer.json"), *b = load("gpt2/tokenizer.json");
	tk_tokenizer_t *c = NULL, *x = NULL;
	const char *dir = legacy_dir();
	TT_REQUIRE(a && b && dir, "load");
	TT_CHECK(strlen(tk_tokenizer_fingerprint(a)) == 16, "16 hex digits");
	TT_CHECK(!strcmp(tk_tokenizer_fingerprint(a), tk_tokenizer_fingerprint(b)), "same file");
	TT_REQUIRE(tk_tokenizer_load(&c, dir, &d) == 0, "%s", d.msg);
	TT_CHECK(!strcmp(tk_tokenizer_fingerprint(a), tk_tokenizer_fingerprint(c)),
		 "tokenizer.json and vocab.json+merges.txt encode alike: %s vs %s",
		 tk_tokenizer_fingerprint(a), tk_tokenizer_fingerprint(c));
	/* the same tokenizer with two merges swapped */
	struct tk_buf j = { 0 };
	TT_REQUIRE(read_all(tt_fixture("tokenizers/gpt2-style.json"), &j) == 0, "read");
	cJSON *root = cJSON_Parse(j.data);
	cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges");
	char *m0 = strdup(cJSON_GetArrayItem(merges, 0)->valuestring);
	char *m1 = strdup(cJSON_GetArrayItem(merges, 1)->valuestring);
	cJSON_ReplaceItemInArray(merges, 0, cJSON_CreateString(m1));
	cJSON_ReplaceItemInArray(merges, 1, cJSON_CreateString(m0));
	free(m0);
	free(m1);
	char *txt = cJSON_PrintUnformatted(root);
	const char *p = write_tmp("swapped.json", txt);
	free(txt);
	cJSON_Delete(root);
	tk_buf_free(&j);
	tk_tokenizer_free(b);
	b = load("tokenizers/gpt2-style.json");
	TT_REQUIRE(b && tk_tokenizer_load(&x, p, &d) == 0, "%s", d.msg);
	TT_CHECK(strcmp(tk_tokenizer_fingerprint(b), tk_tokenizer_fingerprint(x)),
		 "different merges, different fingerprint");
	TT_CHECK(strcmp(tk_tokenizer_fingerprint(a), tk_tokenizer_fingerprint(b)), "different vocab");
	tk_tokenizer_free(a);
	tk_tokenizer_free(b);
	tk_tokenizer_free(c);
	tk_tokenizer_free(x);
}

/* ---- UTF-8 helpers ---- */

static size_t unhex(const char *s, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i + 2 <= n; i += 2) {
		char h[3] = { s[i], s[i + 1], 0 };
		out[k++] = (char)strtoul(h, NULL, 16);
	}
	return k;
}

static void test_utf8_repair(void)
{
	struct tk_buf b = { 0 }, out = { 0 };
	char in[256], want[1024];
	int n = 0;
	TT_REQUIRE(read_all(tt_fixture("tokenizers/utf8-repair.txt"), &b) == 0, "utf8-repair.txt");
	for (char *line = strtok(b.data, "\n"); line; line = strtok(NULL, "\n"), n++) {
		char *tab = strchr(line, '\t');
		TT_REQUIRE(tab, "malformed line %d", n + 1);
		size_t ni = unhex(line, (size_t)(tab - line), in);
		size_t nw = unhex(tab + 1, strlen(tab + 1), want);
		out.len = 0;
		TT_CHECK(tk_utf8_repair(in, ni, &out) == 0 && out.len == nw &&
			 !memcmp(out.data, want, nw), "case %d (%.*s)", n + 1, (int)(tab - line), line);
		int valid = tk_utf8_valid(in, ni) == ni;
		TT_CHECK(valid == (nw == ni && !memcmp(in, want, ni)), "valid %d case %d", valid, n + 1);
	}
	TT_CHECK(n > 300, "%d cases", n);
	TT_CHECK(tk_utf8_valid("ab\xc3\xa9\xe2\x82", 6) == 4, "valid prefix");
	tk_buf_free(&b);
	tk_buf_free(&out);
}

/* ---- threads ---- */

struct job {
	tk_tokenizer_t *t;
	struct texts *tx;
	struct tk_ids *want; /* per text */
	int ok;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	tk_encoder_t *e;
	struct tk_ids got = { 0 };
	j->ok = tk_encoder_new(j->t, &e) == 0;
	for (int round = 0; round < 20 && j->ok; round++)
		for (size_t i = 0; i < j->tx->count && j->ok; i++) {
			got.n = 0;
			j->ok = tk_encode(e, j->tx->s[i], j->tx->n[i], TK_ENCODE_ADD_SPECIAL, &got) == 0 &&
				same_ids(&got, &j->want[i]);
		}
	tk_ids_free(&got);
	tk_encoder_free(e);
	return NULL;
}

static void test_threads(void)
{
	struct texts tx;
	tk_tokenizer_t *t = load("tokenizers/llama3-style.json");
	tk_encoder_t *e;
	TT_REQUIRE(t && load_texts(&tx) == 0 && tk_encoder_new(t, &e) == 0, "setup");
	struct tk_ids *want = calloc(tx.count, sizeof(*want));
	for (size_t i = 0; i < tx.count; i++)
		tk_encode(e, tx.s[i], tx.n[i], TK_ENCODE_ADD_SPECIAL, &want[i]);
	tk_encoder_free(e);
	struct job jobs[2] = { { t, &tx, want, 0 }, { t, &tx, want, 0 } };
	pthread_t th[2];
	for (int k = 0; k < 2; k++)
		pthread_create(&th[k], NULL, worker, &jobs[k]);
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	TT_CHECK(jobs[0].ok && jobs[1].ok, "thread results differ from single-threaded ones");
	for (size_t i = 0; i < tx.count; i++)
		tk_ids_free(&want[i]);
	free(want);
	free_texts(&tx);
	tk_tokenizer_free(t);
}

/* The cache must not change results: long input with many repeats, with
 * more distinct words than the cache holds. */
/* An empty vocabulary (model.vocab {}) loads and gives no ids for any
 * text, as tokenizers does; every piece gives none, and the piece cache
 * used to copy those none from a NULL id array (UBSan: memcpy NULL). */
static void test_empty_vocab(void)
{
	static const char *const json[] = {
		"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
		"{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
		"\"use_regex\": true}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, "
		"\"merges\": []}}",
	};
	for (int k = 0; k < 2; k++) {
		struct tk_diag d;
		tk_tokenizer_t *t = NULL;
		tk_encoder_t *e = NULL;
		struct tk_ids ids = { 0 };
		const char *p = write_tmp("empty-vocab.json", json[k]);
		int rc = tk_tokenizer_load(&t, p, &d);
		TT_REQUIRE(rc == 0, "%d: load: %s", k, d.msg);
		TT_REQUIRE(tk_encoder_new(t, &e) == 0, "encoder");
		/* twice: the second time the pieces come from the cache */
		for (int pass = 0; pass < 2; pass++) {
			TT_CHECK(tk_encode(e, "hello world hello", 17, 0, &ids) == 0, "%d: encode", k);
			TT_CHECK(ids.n == 0, "%d: %zu ids", k, ids.n);
		}
		tk_ids_free(&ids);
		tk_encoder_free(e);
		tk_tokenizer_free(t);
	}
}

static void test_cache_churn(void)
{
	tk_tokenizer_t *t = load("tokenizers/gpt2-style.json");
	tk_encoder_t *e1, *e2;
	struct tk_ids a = { 0 }, b = { 0 };
	TT_REQUIRE(t && tk_encoder_new(t, &e1) == 0 && tk_encoder_new(t, &e2) == 0, "setup");
	char word[32];
	struct tk_buf text = { 0 };
	for (int i = 0; i < 70000; i++) {
		int n = snprintf(word, sizeof(word), " w%xq%d", i * 2654435761u, i % 7);
		tk_buf_append(&text, word, (size_t)n);
	}
	TT_CHECK(tk_encode(e1, text.data, text.len, 0, &a) == 0, "encode");
	/* the same words one at a time through a fresh encoder */
	for (size_t i = 0, s = 0; i <= text.len; i++) {
		if (i == text.len || (i > s && text.data[i] == ' ')) {
			tk_encode(e2, text.data + s, i - s, 0, &b);
			s = i;
		}
	}
	TT_CHECK(same_ids(&a, &b), "%zu vs %zu ids", a.n, b.n);
	tk_buf_free(&text);
	tk_ids_free(&a);
	tk_ids_free(&b);
	tk_encoder_free(e1);
	tk_encoder_free(e2);
	tk_tokenizer_free(t);
}

int main(void)
{
	TT_RUN(test_vectors_gpt2_json);
	TT_RUN(test_vectors_gpt2_legacy);
	TT_RUN(test_gpt2_hard_text);
	TT_RUN(test_gpt2_legacy_hard_text);
	TT_RUN(test_gpt2_style);
	TT_RUN(test_llama3_style);
	TT_RUN(test_qwen2_style);
	TT_RUN(test_llama2_style);
	TT_RUN(test_tinyllama_style);
	TT_RUN(test_spm_split);
	TT_RUN(test_added_tokens);
	TT_RUN(test_misc);
	TT_RUN(test_affix);
	TT_RUN(test_special_ids);
	TT_RUN(test_errors);
	TT_RUN(test_fingerprint);
	TT_RUN(test_utf8_repair);
	TT_RUN(test_threads);
	TT_RUN(test_cache_churn);
	TT_RUN(test_empty_vocab);
	return tt_done();
}

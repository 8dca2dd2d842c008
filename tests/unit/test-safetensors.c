/* test-safetensors.c - safetensors reading, validation, conversion and
 * writing against files the Python safetensors library and transformers
 * wrote (tests/parity/gen-safetensors-fixtures.py).
 *
 * With TK_ST_PARITY_DIR=DIR set, it runs no tests: it rewrites every
 * DIR/in/NAME.safetensors to DIR/out/NAME.safetensors with tk's writer and
 * writes DIR/out/tk-made.safetensors, for tests/parity/check-safetensors.py.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "tt.h"

static struct tk_diag d;

static const char *tmp(const char *name)
{
	static char buf[8][1024];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, sizeof(buf[0]), "%s/%s", tt_tmpdir(), name);
	return b;
}

static int read_all(const char *path, unsigned char **p, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	*p = malloc(*n + 1);
	size_t got = fread(*p, 1, *n, f);
	fclose(f);
	return got == *n ? 0 : -1;
}

static int same_file(const char *a, const char *b)
{
	unsigned char *x = NULL, *y = NULL;
	size_t nx = 0, ny = 0;
	int ok = !read_all(a, &x, &nx) && !read_all(b, &y, &ny) && nx == ny && !memcmp(x, y, nx);
	free(x);
	free(y);
	return ok;
}

/* Writes a safetensors file: header text, then ndata bytes of data. */
static const char *make(const char *name, const char *header, size_t ndata)
{
	const char *path = tmp(name);
	FILE *f = fopen(path, "wb");
	uint64_t n = strlen(header);
	unsigned char len[8];
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)(n >> (8 * i));
	fwrite(len, 1, 8, f);
	fwrite(header, 1, n, f);
	for (size_t i = 0; i < ndata; i++)
		fputc((int)(i * 7), f);
	fclose(f);
	return path;
}

static int n_temps(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int n = 0;
	while (dp && (e = readdir(dp)))
		n += strstr(e->d_name, ".tmp-") != NULL;
	if (dp)
		closedir(dp);
	return n;
}

static uint32_t fbits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static const struct tk_tensor_info *need(tk_safetensors_t *st, const char *name)
{
	const struct tk_tensor_info *t = tk_safetensors_find(st, name);
	if (!t) {
		fprintf(stderr, "missing %s\n", name);
		exit(1);
	}
	return t;
}

static uint16_t u16_at(const struct tk_tensor_info *t, uint64_t i)
{
	uint16_t v;
	memcpy(&v, (const char *)t->data + 2 * i, 2);
	return v;
}

static void test_conversions_match_torch(void)
{
	tk_safetensors_t *st;
	int rc = tk_safetensors_open(&st, tt_fixture("safetensors/conv.safetensors"), &d);
	TT_REQUIRE(!rc, "%s: %s", d.path, d.msg);
	const struct tk_tensor_info *in = need(st, "f32_in"), *h = need(st, "f32_to_f16"),
				    *b = need(st, "f32_to_bf16");
	TT_REQUIRE(in->nelem == h->nelem && in->nelem == b->nelem && in->nelem > 10000, "sizes");
	/* NaN: any NaN (torch's vector and scalar paths disagree on which) */
	size_t bad16 = 0, badbf = 0, nans = 0;
	for (uint64_t i = 0; i < in->nelem; i++) {
		float x;
		memcpy(&x, (const char *)in->data + 4 * i, 4);
		if (isnan(x)) {
			nans++;
			TT_CHECK((tk_f32_to_f16(x) & 0x7fff) > 0x7c00 && (u16_at(h, i) & 0x7fff) > 0x7c00,
				 "f16 NaN");
			TT_CHECK((tk_f32_to_bf16(x) & 0x7fff) > 0x7f80 && (u16_at(b, i) & 0x7fff) > 0x7f80,
				 "bf16 NaN");
			continue;
		}
		if (tk_f32_to_f16(x) != u16_at(h, i) && !bad16++)
			TT_CHECK(0, "f16(%08x) = %04x, torch %04x", fbits(x), tk_f32_to_f16(x),
				 u16_at(h, i));
		if (tk_f32_to_bf16(x) != u16_at(b, i) && !badbf++)
			TT_CHECK(0, "bf16(%08x) = %04x, torch %04x", fbits(x), tk_f32_to_bf16(x),
				 u16_at(b, i));
	}
	TT_CHECK(!bad16 && !badbf, "%zu f16 and %zu bf16 mismatches", bad16, badbf);
	TT_CHECK(nans >= 8, "only %zu NaN inputs", nans);
	/* to fp32: every F16 pattern, a sample of BF16 ones, F64 */
	const char *pairs[][2] = { { "f16_all", "f16_all_f32" },
				   { "bf16_some", "bf16_some_f32" },
				   { "f64_in", "f64_to_f32" } };
	for (int k = 0; k < 3; k++) {
		const struct tk_tensor_info *src = need(st, pairs[k][0]), *ref = need(st, pairs[k][1]);
		TT_REQUIRE(src->nelem == ref->nelem, "%s size", pairs[k][0]);
		float *out = malloc(src->nelem * 4);
		rc = tk_safetensors_to_f32(src, out, &d);
		TT_REQUIRE(!rc, "%s", d.msg);
		size_t bad = 0;
		for (uint64_t i = 0; i < src->nelem; i++)
			if (memcmp(&out[i], (const char *)ref->data + 4 * i, 4) && !bad++)
				TT_CHECK(0, "%s[%llu]: %08x", pairs[k][0], (unsigned long long)i,
					 fbits(out[i]));
		TT_CHECK(!bad, "%s: %zu mismatches", pairs[k][0], bad);
		if (src->dtype == TK_DT_F16)
			for (uint64_t i = 0; i < src->nelem; i++)
				TT_CHECK(fbits(tk_f16_to_f32(u16_at(src, i))) == fbits(out[i]), "%llu",
					 (unsigned long long)i);
		free(out);
	}
	tk_safetensors_close(st);
}

static void test_read_mixed(void)
{
	tk_safetensors_t *st;
	int rc = tk_safetensors_open(&st, tt_fixture("safetensors/mixed.safetensors"), &d);
	TT_REQUIRE(!rc, "%s: %s", d.path, d.msg);
	TT_CHECK(tk_safetensors_count(st) == 17, "%zu tensors", tk_safetensors_count(st));
	TT_CHECK(tk_safetensors_metadata(st, "format") && !strcmp(tk_safetensors_metadata(st, "format"), "pt"),
		 "metadata");
	TT_CHECK(!tk_safetensors_metadata(st, "nope"), "absent metadata");
	const struct tk_tensor_info *t = need(st, "ids");
	TT_CHECK(t->dtype == TK_DT_I64 && t->ndim == 1 && t->shape[0] == 9, "ids");
	for (int i = 0; i < 9; i++) {
		int64_t v;
		memcpy(&v, (const char *)t->data + 8 * i, 8);
		TT_CHECK(v == i - 3, "ids[%d] = %lld", i, (long long)v);
	}
	t = need(st, "count");
	int32_t c;
	memcpy(&c, t->data, 4);
	TT_CHECK(t->ndim == 0 && t->nelem == 1 && c == 42, "scalar");
	t = need(st, "empty");
	TT_CHECK(t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 4 && t->nelem == 0 &&
			 t->nbytes == 0,
		 "empty");
	t = need(st, "u64");
	uint64_t u;
	memcpy(&u, (const char *)t->data + 8, 8);
	TT_CHECK(u == (UINT64_C(1) << 63) + 5, "u64");
	need(st, "quote\"back\\slash\ttab\x01" "ctl");
	need(st, "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd");
	TT_CHECK(need(st, "mask")->dtype == TK_DT_BOOL, "bool");
	rc = tk_safetensors_to_f32(need(st, "ids"), NULL, &d);
	TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "'ids'") && strstr(d.msg, "I64"), "%s",
		 d.msg);
	float f[6];
	TT_CHECK(!tk_safetensors_to_f32(need(st, "h.0.bf16"), f, &d), "bf16");
	for (size_t i = 0; i < tk_safetensors_count(st); i++)
		TT_CHECK(tk_safetensors_at(st, i) && tk_safetensors_find(st, tk_safetensors_at(st, i)->name) == tk_safetensors_at(st, i),
			 "at/find %zu", i);
	TT_CHECK(!tk_safetensors_at(st, tk_safetensors_count(st)), "at past the end");
	tk_safetensors_close(st);
}

/* Reads src and writes its tensors and metadata back with tk's writer. */
static int rewrite(const char *src, const char *dst, struct tk_diag *dg)
{
	tk_safetensors_t *st;
	int rc = tk_safetensors_open(&st, src, dg);
	if (rc)
		return rc;
	tk_safetensors_writer_t *w;
	if ((rc = tk_safetensors_writer_new(&w))) {
		tk_safetensors_close(st);
		return rc;
	}
	for (size_t i = 0; i < tk_safetensors_count(st) && !rc; i++) {
		const struct tk_tensor_info *t = tk_safetensors_at(st, i);
		rc = tk_safetensors_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, dg);
	}
	const char *fmt = tk_safetensors_metadata(st, "format");
	if (!rc && fmt)
		rc = tk_safetensors_writer_metadata(w, "format", fmt);
	if (rc)
		tk_safetensors_writer_free(w);
	else
		rc = tk_safetensors_writer_commit(w, dst, 1, dg);
	tk_safetensors_close(st);
	return rc;
}

static void test_writer_matches_python_bytes(void)
{
	const char *names[] = { "mixed.safetensors", "plain.safetensors" };
	for (int i = 0; i < 2; i++) {
		char src[1024];
		snprintf(src, sizeof(src), "%s/%s", tt_fixture("safetensors"), names[i]);
		const char *dst = tmp(names[i]);
		int rc = rewrite(src, dst, &d);
		TT_REQUIRE(!rc, "%s: %s", d.path, d.msg);
		TT_CHECK(same_file(src, dst), "%s: tk's bytes differ from the library's", names[i]);
	}
}

static void test_writer_round_trip(void)
{
	float a[6] = { 1, 2, 3, 4, 5, 6 };
	uint16_t hb[3] = { 0x3c00, 0xc000, 0x7c00 };
	double g[2] = { 0.1, -2.5 };
	int64_t s23[] = { 2, 3 }, s3[] = { 3 }, s2[] = { 2 };
	tk_safetensors_writer_t *w;
	const char *p1 = tmp("rt1.safetensors"), *p2 = tmp("rt2.safetensors");
	for (int pass = 0; pass < 2; pass++) {
		TT_REQUIRE(!tk_safetensors_writer_new(&w), "new");
		/* added in a different order on each pass: same bytes */
		if (pass)
			TT_REQUIRE(!tk_safetensors_writer_add(w, "b.half", TK_DT_F16, 1, s3, hb, &d), "add");
		TT_REQUIRE(!tk_safetensors_writer_add(w, "a.weight", TK_DT_F32, 2, s23, a, &d), "add");
		TT_REQUIRE(!tk_safetensors_writer_add(w, "c.f64", TK_DT_F64, 1, s2, g, &d), "add");
		if (!pass)
			TT_REQUIRE(!tk_safetensors_writer_add(w, "b.half", TK_DT_F16, 1, s3, hb, &d), "add");
		TT_REQUIRE(!tk_safetensors_writer_metadata(w, pass ? "z" : "format", pass ? "1" : "pt"), "m");
		TT_REQUIRE(!tk_safetensors_writer_metadata(w, pass ? "format" : "z", pass ? "pt" : "1"), "m");
		TT_REQUIRE(!tk_safetensors_writer_metadata(w, "z", "2"), "replace");
		int rc = tk_safetensors_writer_commit(w, pass ? p2 : p1, 0, &d);
		TT_REQUIRE(!rc, "%s", d.msg);
	}
	TT_CHECK(same_file(p1, p2), "order of adding changed the bytes");
	unsigned char *raw;
	size_t n;
	TT_REQUIRE(!read_all(p1, &raw, &n), "read");
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = (hl << 8) | raw[i];
	const char *want = "{\"__metadata__\":{\"format\":\"pt\",\"z\":\"2\"},"
			   "\"c.f64\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
			   "\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[16,40]},"
			   "\"b.half\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[40,46]}";
	TT_CHECK(hl % 8 == 0 && hl >= strlen(want) && !memcmp(raw + 8, want, strlen(want)),
		 "header %.*s", (int)hl, raw + 8);
	free(raw);
	tk_safetensors_t *st;
	TT_REQUIRE(!tk_safetensors_open(&st, p1, &d), "%s", d.msg);
	float out[6];
	TT_CHECK(!tk_safetensors_to_f32(need(st, "a.weight"), out, &d) && !memcmp(out, a, sizeof(a)), "f32");
	TT_CHECK(!tk_safetensors_to_f32(need(st, "b.half"), out, &d) && out[0] == 1 && out[1] == -2 &&
			 isinf(out[2]),
		 "f16");
	TT_CHECK(!tk_safetensors_to_f32(need(st, "c.f64"), out, &d) && out[0] == 0.1f && out[1] == -2.5f,
		 "f64");
	TT_CHECK(!strcmp(tk_safetensors_metadata(st, "z"), "2"), "metadata");
	tk_safetensors_close(st);
}

static void test_writer_errors(void)
{
	float a[2] = { 1, 2 };
	int64_t s2[] = { 2 }, neg[] = { -1 };
	tk_safetensors_writer_t *w;
	TT_REQUIRE(!tk_safetensors_writer_new(&w), "new");
	TT_CHECK(!tk_safetensors_writer_add(w, "x", TK_DT_F32, 1, s2, a, &d), "add");
	TT_CHECK(tk_safetensors_writer_add(w, "x", TK_DT_F32, 1, s2, a, &d) == TK_E_INVAL &&
			 strstr(d.msg, "'x' added twice"),
		 "duplicate: %s", d.msg);
	TT_CHECK(tk_safetensors_writer_add(w, "__metadata__", TK_DT_F32, 1, s2, a, &d) == TK_E_INVAL,
		 "reserved name");
	TT_CHECK(tk_safetensors_writer_add(w, "", TK_DT_F32, 1, s2, a, &d) == TK_E_INVAL, "empty name");
	TT_CHECK(tk_safetensors_writer_add(w, "bad\xff", TK_DT_F32, 1, s2, a, &d) == TK_E_INVAL, "utf-8");
	TT_CHECK(tk_safetensors_writer_add(w, "n", TK_DT_F32, 1, neg, a, &d) == TK_E_INVAL, "negative");
	TT_CHECK(tk_safetensors_writer_add(w, "r", TK_DT_F32, 9, s2, a, &d) == TK_E_INVAL, "rank");
	TT_CHECK(tk_safetensors_writer_add(w, "nd", TK_DT_F32, 1, s2, NULL, &d) == TK_E_INVAL, "no data");
	/* existing output without force: refused, untouched, nothing left over */
	const char *p = tmp("exists.safetensors");
	FILE *f = fopen(p, "w");
	fputs("keep", f);
	fclose(f);
	int rc = tk_safetensors_writer_commit(w, p, 0, &d);
	TT_CHECK(rc == TK_E_EXISTS && strstr(d.path, "exists.safetensors"), "exists: %d", rc);
	unsigned char *raw;
	size_t n;
	TT_CHECK(!read_all(p, &raw, &n) && n == 4 && !memcmp(raw, "keep", 4), "clobbered");
	free(raw);
	/* unwritable place: an I/O error naming it, no temporary left */
	TT_REQUIRE(!tk_safetensors_writer_new(&w), "new");
	TT_CHECK(!tk_safetensors_writer_add(w, "x", TK_DT_F32, 1, s2, a, &d), "add");
	rc = tk_safetensors_writer_commit(w, tmp("no-such-dir/out.safetensors"), 0, &d);
	TT_CHECK(rc == TK_E_IO && strstr(d.path, "no-such-dir"), "no dir: %d %s", rc, d.path);
	TT_CHECK(n_temps(tt_tmpdir()) == 0, "temporary left behind");
}

static void test_sharded_directory(void)
{
	tk_safetensors_t *st;
	const char *dir = tt_fixture("safetensors/sharded");
	char dirc[1024], index[1100], expect[1100];
	snprintf(dirc, sizeof(dirc), "%s", dir);
	snprintf(index, sizeof(index), "%s/model.safetensors.index.json", dirc);
	snprintf(expect, sizeof(expect), "%s/expect.txt", dirc);
	for (int k = 0; k < 2; k++) {
		int rc = tk_safetensors_open(&st, k ? index : dirc, &d);
		TT_REQUIRE(!rc, "%s: %s", d.path, d.msg);
		FILE *f = fopen(expect, "r");
		TT_REQUIRE(f, "%s", expect);
		char name[256], dt[16], shape[128];
		double sum;
		size_t lines = 0;
		while (fscanf(f, "%255s %15s %127s %lf", name, dt, shape, &sum) == 4) {
			lines++;
			const struct tk_tensor_info *t = tk_safetensors_find(st, name);
			TT_REQUIRE(t, "missing %s", name);
			TT_CHECK(!strcmp(tk_dtype_name(t->dtype), dt), "%s dtype", name);
			char got[128] = "";
			size_t o = 0;
			for (int i = 0; i < t->ndim; i++)
				o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%lld", i ? "," : "",
						      (long long)t->shape[i]);
			TT_CHECK(!strcmp(got, shape), "%s shape %s, expected %s", name, got, shape);
			float *v = malloc(t->nelem * 4 + 4);
			TT_REQUIRE(!tk_safetensors_to_f32(t, v, &d), "%s", d.msg);
			double s = 0;
			for (uint64_t i = 0; i < t->nelem; i++)
				s += v[i];
			TT_CHECK(fabs(s - sum) <= 1e-9 * (1 + fabs(sum)), "%s sum %.17g, expected %.17g",
				 name, s, sum);
			free(v);
		}
		fclose(f);
		TT_CHECK(lines > 10 && lines == tk_safetensors_count(st), "%zu tensors, expected %zu",
			 tk_safetensors_count(st), lines);
		/* expect: shapes, wildcards, missing tensors */
		const struct tk_tensor_info *t;
		int64_t ok[] = { 16, 48 }, any[] = { -1, 48 }, wrong[] = { 48, 16 };
		TT_CHECK(!tk_safetensors_expect(st, "transformer.h.0.attn.c_attn.weight", 2, ok, &t, &d) && t,
			 "%s", d.msg);
		TT_CHECK(!tk_safetensors_expect(st, "transformer.h.0.attn.c_attn.weight", 2, any, NULL, &d),
			 "%s", d.msg);
		int rc2 = tk_safetensors_expect(st, "transformer.h.0.attn.c_attn.weight", 2, wrong, &t, &d);
		TT_CHECK(rc2 == TK_E_FORMAT && !t &&
				 strstr(d.msg, "'transformer.h.0.attn.c_attn.weight' has shape "
					       "[16, 48], expected [48, 16]") &&
				 strstr(d.path, ".safetensors"),
			 "%s: %s", d.path, d.msg);
		rc2 = tk_safetensors_expect(st, "lm_head.weight", 2, any, &t, &d);
		TT_CHECK(rc2 == TK_E_FORMAT && strstr(d.msg, "missing tensor 'lm_head.weight'"), "%s",
			 d.msg);
		tk_safetensors_close(st);
	}
}

/* A bad file: the error code, the file named, and the words expected. */
static void bad(const char *name, const char *header, size_t ndata, int want, const char *words,
		const char *words2)
{
	const char *p = make(name, header, ndata);
	tk_safetensors_t *st = (tk_safetensors_t *)1;
	int rc = tk_safetensors_open(&st, p, &d);
	if (!want) {
		TT_CHECK(!rc && st, "%s: rc %d (%s)", name, rc, d.msg);
		if (!rc)
			tk_safetensors_close(st);
		return;
	}
	TT_CHECK(rc == want && !st, "%s: rc %d (%s)", name, rc, d.msg);
	TT_CHECK(strstr(d.path, name) != NULL, "%s: path '%s'", name, d.path);
	TT_CHECK(strstr(d.msg, words) != NULL, "%s: '%s' lacks '%s'", name, d.msg, words);
	if (words2)
		TT_CHECK(strstr(d.msg, words2) != NULL, "%s: '%s' lacks '%s'", name, d.msg, words2);
}

#define T(n, dt, sh, b, e) "\"" n "\":{\"dtype\":\"" dt "\",\"shape\":" sh ",\"data_offsets\":[" #b "," #e "]}"

static void test_bad_headers(void)
{
	bad("ok.st", "{" T("a", "F32", "[2]", 0, 8) "}", 8, 0, "", NULL);
	bad("offsets.st", "{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 8, 12) "}", 12,
	    TK_E_FORMAT, "tensor 'b'", "needs 8 bytes");
	bad("reversed.st", "{" T("a", "F32", "[0]", 8, 0) "}", 8, TK_E_FORMAT, "tensor 'a'",
	    "end before they begin");
	bad("overlap.st", "{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 4, 12) "}", 12,
	    TK_E_FORMAT, "tensors 'a' and 'b' overlap", NULL);
	bad("gap.st", "{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[1]", 12, 16) "}", 16,
	    TK_E_FORMAT, "before tensor 'b'", "belong to no tensor");
	bad("lead.st", "{" T("a", "F32", "[1]", 4, 8) "}", 8, TK_E_FORMAT, "before tensor 'a'",
	    NULL);
	bad("trailing.st", "{" T("a", "F32", "[2]", 0, 8) "}", 9, TK_E_FORMAT,
	    "after the last tensor 'a'", NULL);
	bad("truncated.st", "{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[4]", 8, 24) "}", 20,
	    TK_E_FORMAT, "truncated: tensor 'b'", NULL);
	bad("dtype.st", "{" T("a", "F17", "[2]", 0, 8) "}", 8, TK_E_FORMAT,
	    "tensor 'a': unknown dtype 'F17'", NULL);
	bad("fp8.st", "{" T("a", "F8_E4M3", "[2]", 0, 2) "}", 2, TK_E_UNSUPPORTED,
	    "tensor 'a': dtype F8_E4M3", NULL);
	bad("rank.st", "{" T("a", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1, TK_E_UNSUPPORTED,
	    "tensor 'a': 9 dimensions", NULL);
	bad("negshape.st", "{" T("a", "U8", "[-1]", 0, 1) "}", 1, TK_E_FORMAT, "tensor 'a'",
	    "shape entry 0");
	bad("fracoff.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.5]}}", 2,
	    TK_E_FORMAT, "tensor 'a'", "data_offsets");
	bad("nooffsets.st", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, TK_E_FORMAT,
	    "tensor 'a'", "data_offsets");
	bad("huge.st", "{" T("a", "F64", "[4294967296,4294967296]", 0, 8) "}", 8, TK_E_FORMAT,
	    "tensor 'a'", "too large");
	bad("dup.st", "{" T("a", "U8", "[1]", 0, 1) "," T("a", "U8", "[1]", 1, 2) "}", 2,
	    TK_E_FORMAT, "tensor 'a' appears twice", NULL);
	bad("notobj.st", "[1,2]", 0, TK_E_FORMAT, "not a JSON object", NULL);
	bad("entry.st", "{\"a\":3}", 0, TK_E_FORMAT, "tensor 'a'", "not an object");
	bad("meta.st", "{\"__metadata__\":{\"k\":1}}", 0, TK_E_FORMAT, "__metadata__", NULL);
	bad("meta2.st", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, TK_E_FORMAT,
	    "__metadata__ appears twice", NULL);
	bad("json.st", "{\"a\":{\"dtype\":\"U8\",}}  ", 0, TK_E_FORMAT,
	    "malformed header JSON at byte", NULL);
	TT_CHECK(d.offset >= 8 && d.offset < 40, "offset %lld", d.offset);
	bad("junk.st", "{} x", 0, TK_E_FORMAT, "malformed header JSON at byte 11", NULL);
	bad("ctl.st", "{\"a\x01\":1}", 0, TK_E_FORMAT, "control character at byte 11", NULL);
	bad("utf8.st", "{\"\xc3\x28\":1}", 0, TK_E_FORMAT, "not UTF-8 at byte 10", NULL);
	bad("empty-header.st", "", 0, TK_E_FORMAT, "malformed header JSON", NULL);
	/* zero tensors with an empty data area is valid */
	bad("none.st", "{\"__metadata__\":{\"a\":\"b\"}}", 0, 0, "", NULL);
	bad("none-data.st", "{}", 3, TK_E_FORMAT, "3 bytes of data after the header", NULL);
}

static void test_bad_lengths(void)
{
	const char *p = tmp("short.st");
	FILE *f = fopen(p, "wb");
	fwrite("\x05\0\0", 1, 3, f);
	fclose(f);
	tk_safetensors_t *st;
	TT_CHECK(tk_safetensors_open(&st, p, &d) == TK_E_FORMAT && strstr(d.msg, "truncated: 3 bytes") &&
			 strstr(d.path, "short.st"),
		 "%s", d.msg);
	unsigned char big[16] = { 0, 0, 0, 0, 0, 1, 0, 0, '{', '}' };
	p = tmp("absurd.st");
	f = fopen(p, "wb");
	fwrite(big, 1, 10, f);
	fclose(f);
	TT_CHECK(tk_safetensors_open(&st, p, &d) == TK_E_FORMAT && strstr(d.msg, "absurd"), "%s", d.msg);
	unsigned char beyond[10] = { 100, 0, 0, 0, 0, 0, 0, 0, '{', '}' };
	p = tmp("beyond.st");
	f = fopen(p, "wb");
	fwrite(beyond, 1, 10, f);
	fclose(f);
	TT_CHECK(tk_safetensors_open(&st, p, &d) == TK_E_FORMAT &&
			 strstr(d.msg, "header length 100 goes beyond the end of the file (10 bytes)"),
		 "%s", d.msg);
	TT_CHECK(tk_safetensors_open(&st, tmp("nonexistent.st"), &d) == TK_E_IO && d.sys_errno == ENOENT &&
			 strstr(d.path, "nonexistent.st"),
		 "%s", d.msg);
	/* a truncated copy of a real file */
	unsigned char *raw;
	size_t n;
	TT_REQUIRE(!read_all(tt_fixture("safetensors/mixed.safetensors"), &raw, &n), "read");
	p = tmp("cut.st");
	f = fopen(p, "wb");
	fwrite(raw, 1, n - 3, f);
	fclose(f);
	free(raw);
	TT_CHECK(tk_safetensors_open(&st, p, &d) == TK_E_FORMAT && strstr(d.msg, "truncated: tensor '"),
		 "%s", d.msg);
}

static void write_text(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	fputs(s, f);
	fclose(f);
}

static void test_bad_directories(void)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", tmp("model"));
	mkdir(dir, 0755);
	tk_safetensors_t *st;
	TT_CHECK(tk_safetensors_open(&st, dir, &d) == TK_E_IO && strstr(d.msg, "no model.safetensors"),
		 "%s", d.msg);
	char p[1200], s1[1200], s2[1200];
	snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
	write_text(p, "{\"weight_map\": {\"a\": \"model-1.safetensors\", \"b\": \"model-2.safetensors\"}}");
	TT_CHECK(tk_safetensors_open(&st, dir, &d) == TK_E_IO && strstr(d.path, "model-1.safetensors"),
		 "missing shard: %s %s", d.path, d.msg);
	snprintf(s1, sizeof(s1), "%s/model-1.safetensors", dir);
	snprintf(s2, sizeof(s2), "%s/model-2.safetensors", dir);
	rename(make("s1", "{" T("a", "U8", "[1]", 0, 1) "}", 1), s1);
	rename(make("s2", "{" T("c", "U8", "[1]", 0, 1) "}", 1), s2);
	TT_CHECK(tk_safetensors_open(&st, dir, &d) == TK_E_FORMAT &&
			 strstr(d.msg, "tensor 'b' is mapped to model-2.safetensors but is not there") &&
			 strstr(d.path, "index.json"),
		 "%s: %s", d.path, d.msg);
	rename(make("s2", "{" T("a", "U8", "[1]", 0, 1) "," T("b", "U8", "[1]", 1, 2) "}", 2), s2);
	TT_CHECK(tk_safetensors_open(&st, dir, &d) == TK_E_FORMAT && strstr(d.msg, "tensor 'a' is also in"),
		 "%s", d.msg);
	rename(make("s2", "{" T("b", "U8", "[1]", 0, 1) "}", 1), s2);
	TT_REQUIRE(!tk_safetensors_open(&st, dir, &d), "%s", d.msg);
	TT_CHECK(tk_safetensors_count(st) == 2 && tk_safetensors_find(st, "a") && tk_safetensors_find(st, "b"), "two shards");
	tk_safetensors_close(st);
	write_text(p, "{\"weight_map\": {\"a\": \"../model-1.safetensors\"}}");
	TT_CHECK(tk_safetensors_open(&st, dir, &d) == TK_E_FORMAT && strstr(d.msg, "tensor 'a'"), "%s",
		 d.msg);
	write_text(p, "{\"weight\": {}}");
	TT_CHECK(tk_safetensors_open(&st, dir, &d) == TK_E_FORMAT && strstr(d.msg, "weight_map"), "%s",
		 d.msg);
	write_text(p, "{\"weight_map\": ");
	TT_CHECK(tk_safetensors_open(&st, p, &d) == TK_E_FORMAT && strstr(d.msg, "malformed JSON"), "%s",
		 d.msg);
}

static void test_f16_edges(void)
{
	/* values whose roundings are known by hand */
	TT_CHECK(tk_f32_to_f16(1.0f) == 0x3c00 && tk_f32_to_f16(-2.0f) == 0xc000, "simple");
	TT_CHECK(tk_f32_to_f16(65504.0f) == 0x7bff && tk_f32_to_f16(65520.0f) == 0x7c00, "max");
	TT_CHECK(tk_f32_to_f16(ldexpf(1, -24)) == 0x0001 && tk_f32_to_f16(ldexpf(1, -25)) == 0,
		 "subnormal ties to even");
	TT_CHECK(tk_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80 &&
			 tk_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)) == 0x3f82,
		 "bf16 ties to even");
	TT_CHECK(isnan(tk_bf16_to_f32(tk_f32_to_bf16(NAN))) && isnan(tk_f16_to_f32(tk_f32_to_f16(-NAN))),
		 "NaN kept");
	TT_CHECK(tk_dtype_size(TK_DT_BF16) == 2 && !strcmp(tk_dtype_name(TK_DT_U64), "U64"), "names");
	enum tk_dtype t;
	TT_CHECK(!tk_dtype_parse("BOOL", &t) && t == TK_DT_BOOL && tk_dtype_parse("bf16", &t),
		 "parse");
}

/* ---- for tests/parity/check-safetensors.py ---- */

static int parity_mode(const char *dir)
{
	char in[1024], out[1100], src[2200], dst[2200];
	snprintf(in, sizeof(in), "%s/in", dir);
	DIR *dp = opendir(in);
	if (!dp) {
		perror(in);
		return 2;
	}
	struct dirent *e;
	int fail = 0;
	while ((e = readdir(dp))) {
		size_t n = strlen(e->d_name);
		if (n < 12 || strcmp(e->d_name + n - 12,".safetensors"))
			continue;
		snprintf(src, sizeof(src), "%s/%s", in, e->d_name);
		snprintf(dst, sizeof(dst), "%s/out/%s", dir, e->d_name);
		if (rewrite(src, dst, &d)) {
			fprintf(stderr, "%s: %s\n", d.path, d.msg);
			fail = 1;
		}
	}
	closedir(dp);
	/* a file from scratch: known values the check script recomputes */
	static float f32[4 * 6];
	static uint16_t f16[5], bf16[5];
	static int64_t i64[3] = { -1, 0, INT64_MAX };
	for (int i = 0; i < 24; i++)
		f32[i] = (float)i / 8 - 1;
	for (int i = 0; i < 5; i++) {
		f16[i] = tk_f32_to_f16((float)i * 0.3f - 0.5f);
		bf16[i] = tk_f32_to_bf16((float)i * 0.3f - 0.5f);
	}
	int64_t s46[] = { 4, 6 }, s5[] = { 5 }, s3[] = { 3 };
	tk_safetensors_writer_t *w;
	snprintf(out, sizeof(out), "%s/out/tk-made.safetensors", dir);
	if (tk_safetensors_writer_new(&w) || tk_safetensors_writer_add(w, "w.f32", TK_DT_F32, 2, s46, f32, &d) ||
	    tk_safetensors_writer_add(w, "w.f16", TK_DT_F16, 1, s5, f16, &d) ||
	    tk_safetensors_writer_add(w, "w.bf16", TK_DT_BF16, 1, s5, bf16, &d) ||
	    tk_safetensors_writer_add(w, "ids", TK_DT_I64, 1, s3, i64, &d) ||
	    tk_safetensors_writer_metadata(w, "format", "pt") || tk_safetensors_writer_metadata(w, "by", "tk") ||
	    tk_safetensors_writer_commit(w, out, 1, &d)) {
		fprintf(stderr, "%s: %s\n", out, d.msg);
		fail = 1;
	}
	return fail;
}

/* Resident pages of this process (/proc/self/statm's second field). */
static long resident_pages(void)
{
	long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res;
}

/* tk_safetensors_release drops a copied tensor's mapped pages from the
 * resident set (a 16 MiB tensor, read whole first), and its bytes read
 * back the same afterwards. */
static void test_release(void)
{
	enum { N = 4 << 20 }; /* floats */
	const long pg = sysconf(_SC_PAGESIZE);
	float *a = malloc(N * sizeof(float));
	int64_t shape[] = { N };
	tk_safetensors_writer_t *w;
	tk_safetensors_t *st;
	const char *p = tmp("release.safetensors");
	double s0 = 0, s1 = 0;

	TT_REQUIRE(a, "out of memory");
	for (int i = 0; i < N; i++)
		a[i] = (float)(i % 1000) * 0.5f;
	TT_REQUIRE(!tk_safetensors_writer_new(&w), "new");
	TT_REQUIRE(!tk_safetensors_writer_add(w, "big", TK_DT_F32, 1, shape, a, &d), "add");
	TT_REQUIRE(!tk_safetensors_writer_commit(w, p, 0, &d), "%s", d.msg);
	free(a);
	TT_REQUIRE(!tk_safetensors_open(&st, p, &d), "%s", d.msg);
	const struct tk_tensor_info *t = need(st, "big");
	for (int i = 0; i < N; i++) {
		float v;
		memcpy(&v, (const char *)t->data + (size_t)i * sizeof(v), sizeof(v));
		s0 += v;
	}
	long before = resident_pages();
	tk_safetensors_release(t);
	long after = resident_pages();
	TT_CHECK(before - after >= (long)(N * sizeof(float)) / pg * 3 / 4,
		 "resident pages %ld -> %ld, a tensor of %ld pages", before, after,
		 (long)(N * sizeof(float)) / pg);
	for (int i = 0; i < N; i++) {
		float v;
		memcpy(&v, (const char *)t->data + (size_t)i * sizeof(v), sizeof(v));
		s1 += v;
	}
	TT_CHECK(s0 == s1, "the bytes after release differ: %.17g against %.17g", s1, s0);
	tk_safetensors_close(st);
}

int main(void)
{
	const char *pd = getenv("TK_ST_PARITY_DIR");
	if (pd)
		return parity_mode(pd);
	TT_RUN(test_conversions_match_torch);
	TT_RUN(test_f16_edges);
	TT_RUN(test_read_mixed);
	TT_RUN(test_writer_matches_python_bytes);
	TT_RUN(test_writer_round_trip);
	TT_RUN(test_writer_errors);
	TT_RUN(test_sharded_directory);
	TT_RUN(test_bad_headers);
	TT_RUN(test_bad_lengths);
	TT_RUN(test_bad_directories);
	TT_RUN(test_release);
	return tt_done();
}

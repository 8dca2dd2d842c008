/* test-quant.c - 4-bit NF4/FP4 quantization against bitsandbytes.
 *
 * Fixtures: tests/fixtures/quant/, written by
 * tests/parity/gen-quant-fixtures.py from bitsandbytes' quantize_4bit and
 * dequantize_4bit on CPU tensors (format described there).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/quant-common.h"
#include "base/quant.h"
#include "tt.h"

struct qcase {
	uint32_t type, blocksize, n, nblocks;
	float *x, *absmax, *deq;
	uint8_t *packed;
	/* double quantization (compress_statistics=True) */
	float offset;
	uint32_t nblocks2;
	float *absmax2, *code2, *deq2;
	uint8_t *qabsmax;
};

static void qcase_free(struct qcase *c)
{
	free(c->x);
	free(c->absmax);
	free(c->deq);
	free(c->packed);
	free(c->absmax2);
	free(c->code2);
	free(c->deq2);
	free(c->qabsmax);
	memset(c, 0, sizeof(*c));
}

static int rd(FILE *f, void *p, size_t n)
{
	return fread(p, 1, n, f) == n;
}

/* Reads a case file; 0 on success. */
static int qcase_load(const char *name, struct qcase *c)
{
	char rel[256], magic[4];
	uint32_t hdr[5];
	FILE *f;
	int ok;

	memset(c, 0, sizeof(*c));
	snprintf(rel, sizeof(rel), "quant/%s.bin", name);
	f = fopen(tt_fixture(rel), "rb");
	if (!f)
		return -1;
	ok = rd(f, magic, 4) && !memcmp(magic, "TKQ4", 4) && rd(f, hdr, sizeof(hdr));
	if (ok) {
		c->type = hdr[0];
		c->blocksize = hdr[1];
		c->n = hdr[2];
		c->nblocks = hdr[3];
		c->x = malloc(c->n * sizeof(float));
		c->deq = malloc(c->n * sizeof(float));
		c->absmax = malloc(c->nblocks * sizeof(float));
		c->packed = malloc((c->n + 1) / 2);
		ok = c->x && c->deq && c->absmax && c->packed &&
		     rd(f, c->x, c->n * sizeof(float)) &&
		     rd(f, c->packed, (c->n + 1) / 2) &&
		     rd(f, c->absmax, c->nblocks * sizeof(float)) &&
		     rd(f, c->deq, c->n * sizeof(float));
	}
	if (ok && hdr[4]) {
		ok = rd(f, &c->offset, 4) && rd(f, &c->nblocks2, 4);
		if (ok) {
			c->absmax2 = malloc(c->nblocks2 * sizeof(float));
			c->qabsmax = malloc(c->nblocks);
			c->code2 = malloc(256 * sizeof(float));
			c->deq2 = malloc(c->n * sizeof(float));
			ok = c->absmax2 && c->qabsmax && c->code2 && c->deq2 &&
			     rd(f, c->absmax2, c->nblocks2 * sizeof(float)) &&
			     rd(f, c->qabsmax, c->nblocks) &&
			     rd(f, c->code2, 256 * sizeof(float)) &&
			     rd(f, c->deq2, c->n * sizeof(float));
		}
	}
	fclose(f);
	if (!ok)
		qcase_free(c);
	return ok ? 0 : -1;
}

static const char *const cases[] = {
	"nf4-b64",          "fp4-b64",          "nf4-b128-odd",
	"fp4-b128-odd",     "nf4-b256",         "fp4-b32",
	"nf4-b64-zerotail", "fp4-b64-zerotail", "nf4-b64-short",
	"nf4-b64-many",     "fp4-b4096",        "nf4-b32",
	"nf4-b64-ties",     "fp4-b64-ties",
};

static void test_matches_bitsandbytes(void)
{
	size_t k;

	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct qcase c;
		uint8_t *packed;
		float *absmax, *deq;
		size_t i, np;
		int err;

		TT_REQUIRE(qcase_load(cases[k], &c) == 0, "cannot read fixture %s", cases[k]);
		np = tk_q4_packed_size(c.n);
		TT_CHECK(np == (c.n + 1) / 2, "%s: packed size %zu", cases[k], np);
		TT_CHECK(tk_q4_nblocks(c.n, c.blocksize) == c.nblocks,
			 "%s: nblocks %zu vs %u", cases[k],
			 tk_q4_nblocks(c.n, c.blocksize), c.nblocks);
		packed = malloc(np);
		absmax = malloc(c.nblocks * sizeof(float));
		deq = malloc(c.n * sizeof(float));
		err = tk_q4_quantize(c.x, c.n, (enum tk_q4_type)c.type, c.blocksize,
				     packed, absmax, NULL);
		TT_CHECK(err == 0, "%s: quantize returned %d", cases[k], err);
		for (i = 0; !err && i < np; i++)
			if (packed[i] != c.packed[i]) {
				TT_CHECK(packed[i] == c.packed[i],
					 "%s: byte %zu: %02x, bitsandbytes %02x (inputs %a %a)",
					 cases[k], i, packed[i], c.packed[i],
					 c.x[2 * i], 2 * i + 1 < c.n ? c.x[2 * i + 1] : 0.0f);
				break;
			}
		for (i = 0; !err && i < c.nblocks; i++)
			if (memcmp(&absmax[i], &c.absmax[i], 4)) {
				TT_CHECK(0, "%s: absmax %zu: %a, bitsandbytes %a",
					 cases[k], i, absmax[i], c.absmax[i]);
				break;
			}
		/* dequantize bitsandbytes' own bytes: must equal its
		 * dequantize_4bit bit for bit */
		err = tk_q4_dequantize(c.packed, c.absmax, c.n, (enum tk_q4_type)c.type,
				       c.blocksize, deq, NULL);
		TT_CHECK(err == 0, "%s: dequantize returned %d", cases[k], err);
		for (i = 0; !err && i < c.n; i++)
			if (memcmp(&deq[i], &c.deq[i], 4)) {
				TT_CHECK(0, "%s: dequant %zu: %a, bitsandbytes %a",
					 cases[k], i, deq[i], c.deq[i]);
				break;
			}
		free(packed);
		free(absmax);
		free(deq);
		qcase_free(&c);
		if (tt_failed_now)
			return;
	}
}

/* The fixtures were made by torch with 2 threads (absmax vectors of
 * fewer than 32768 values do not depend on it). */
#define FIX_THREADS 2

static void test_double_quant_matches_bitsandbytes(void)
{
	size_t k;

	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct qcase c;
		uint8_t *q;
		float *a2, *am, *deq, off;
		size_t i, nb2;
		int err;

		TT_REQUIRE(qcase_load(cases[k], &c) == 0, "cannot read fixture %s", cases[k]);
		TT_REQUIRE(c.absmax2, "%s: no double-quant data", cases[k]);
		nb2 = tk_q4_nblocks(c.nblocks, TK_Q4_NESTED_BLOCKSIZE);
		TT_CHECK(nb2 == c.nblocks2, "%s: nested blocks %zu vs %u", cases[k], nb2,
			 c.nblocks2);
		TT_CHECK(!memcmp(c.code2, tk_dynamic_code, sizeof(tk_dynamic_code)),
			 "%s: dynamic map differs from bitsandbytes'", cases[k]);
		off = tk_q4_torch_mean(c.absmax, c.nblocks, FIX_THREADS);
		TT_CHECK(!memcmp(&off, &c.offset, 4), "%s: offset %a, torch %a", cases[k],
			 off, c.offset);
		q = malloc(c.nblocks);
		a2 = malloc(nb2 * sizeof(float));
		am = malloc(c.nblocks * sizeof(float));
		deq = malloc(c.n * sizeof(float));
		/* quantize with bitsandbytes' offset so a mean mismatch above
		 * does not hide the rest */
		err = tk_q4_nest(c.absmax, c.nblocks, c.offset, q, a2, NULL);
		TT_CHECK(err == 0, "%s: nest returned %d", cases[k], err);
		for (i = 0; !err && i < nb2; i++)
			if (memcmp(&a2[i], &c.absmax2[i], 4)) {
				TT_CHECK(0, "%s: nested absmax %zu: %a, bitsandbytes %a",
					 cases[k], i, a2[i], c.absmax2[i]);
				break;
			}
		for (i = 0; !err && i < c.nblocks; i++)
			if (q[i] != c.qabsmax[i]) {
				TT_CHECK(0, "%s: qabsmax %zu: %u, bitsandbytes %u (absmax %a)",
					 cases[k], i, q[i], c.qabsmax[i], c.absmax[i]);
				break;
			}
		tk_q4_unnest(c.qabsmax, c.absmax2, c.nblocks, c.offset, am);
		err = tk_q4_dequantize(c.packed, am, c.n, (enum tk_q4_type)c.type,
				       c.blocksize, deq, NULL);
		for (i = 0; !err && i < c.n; i++)
			if (memcmp(&deq[i], &c.deq2[i], 4)) {
				TT_CHECK(0, "%s: nested dequant %zu: %a, bitsandbytes %a",
					 cases[k], i, deq[i], c.deq2[i]);
				break;
			}
		free(q);
		free(a2);
		free(am);
		free(deq);
		qcase_free(&c);
		if (tt_failed_now)
			return;
	}
}

/* nest.bin: 33000 absmax values, torch's mean with 2 and 1 threads, and
 * bitsandbytes' double quantization of them (2 threads). */
static void test_nest_large(void)
{
	FILE *f = fopen(tt_fixture("quant/nest.bin"), "rb");
	uint32_t n = 0, nb2 = 0;
	float *am = NULL, *a2 = NULL, *want2 = NULL, off[2], got;
	uint8_t *q = NULL, *wantq = NULL;
	size_t i;
	int ok;

	TT_REQUIRE(f, "cannot open quant/nest.bin");
	ok = rd(f, &n, 4) && n > 0 && n < 1u << 24;
	if (ok) {
		am = malloc(n * sizeof(float));
		wantq = malloc(n);
		q = malloc(n);
		ok = am && wantq && q && rd(f, am, n * sizeof(float)) && rd(f, off, 8) &&
		     rd(f, wantq, n) && rd(f, &nb2, 4) && nb2 < n;
	}
	if (ok) {
		want2 = malloc(nb2 * sizeof(float));
		a2 = malloc(nb2 * sizeof(float));
		ok = want2 && a2 && rd(f, want2, nb2 * sizeof(float));
	}
	fclose(f);
	TT_CHECK(ok, "bad quant/nest.bin");
	if (ok) {
		TT_CHECK(tk_q4_nblocks(n, TK_Q4_NESTED_BLOCKSIZE) == nb2, "nested blocks");
		got = tk_q4_torch_mean(am, n, 2);
		TT_CHECK(!memcmp(&got, &off[0], 4), "mean, 2 threads: %a, torch %a", got, off[0]);
		got = tk_q4_torch_mean(am, n, 1);
		TT_CHECK(!memcmp(&got, &off[1], 4), "mean, 1 thread: %a, torch %a", got, off[1]);
		TT_CHECK(tk_q4_nest(am, n, off[0], q, a2, NULL) == 0, "nest");
		for (i = 0; i < n; i++)
			if (q[i] != wantq[i]) {
				TT_CHECK(0, "qabsmax %zu: %u, bitsandbytes %u", i, q[i], wantq[i]);
				break;
			}
		TT_CHECK(!memcmp(a2, want2, nb2 * sizeof(float)), "nested absmax differ");
	}
	free(am);
	free(a2);
	free(want2);
	free(q);
	free(wantq);
}

/* Reads `TYPE KIND v0 v1 ...` lines of bounds.txt into the arrays. */
static void check_table(const char *type, const char *kind, const float *want_f,
			const unsigned char *want_u, int count)
{
	char line[16384];
	FILE *f = fopen(tt_fixture("quant/bounds.txt"), "r");
	int found = 0;

	TT_REQUIRE(f, "cannot open quant/bounds.txt");
	while (fgets(line, sizeof(line), f)) {
		char t[16], k[16];
		int off, i;
		char *p;

		if (sscanf(line, "%15s %15s %n", t, k, &off) != 2 ||
		    strcmp(t, type) || strcmp(k, kind))
			continue;
		found = 1;
		p = line + off;
		for (i = 0; i < count; i++) {
			char *end;
			double v = strtod(p, &end);

			TT_CHECK(end != p, "%s %s: only %d values", type, kind, i);
			if (end == p)
				break;
			p = end;
			if (want_f)
				TT_CHECK((float)v == want_f[i] && !signbit(v) == !signbit(want_f[i]),
					 "%s %s[%d]: header %a, bitsandbytes %a",
					 type, kind, i, want_f[i], v);
			else
				TT_CHECK(v == want_u[i], "%s %s[%d]: header %u, bitsandbytes %g",
					 type, kind, i, want_u[i], v);
		}
		strtod(p, &p);
		TT_CHECK(strspn(p, " \n") == strlen(p), "%s %s: more than %d values",
			 type, kind, count);
	}
	fclose(f);
	TT_CHECK(found, "no '%s %s' line in bounds.txt", type, kind);
}

static void test_tables(void)
{
	int i;

	check_table("nf4", "code", tk_nf4_code, NULL, 16);
	check_table("nf4", "bounds", tk_nf4_bound, NULL, 15);
	check_table("nf4", "order", NULL, tk_nf4_order, 16);
	check_table("fp4", "code", tk_fp4_code, NULL, 16);
	check_table("fp4", "bounds", tk_fp4_bound, NULL, 15);
	check_table("fp4", "order", NULL, tk_fp4_order, 16);
	check_table("dynamic", "code", tk_dynamic_code, NULL, 256);
	/* the bounds are fp32 midpoints of neighbouring codes */
	for (i = 0; i < 15; i++) {
		float a = tk_nf4_code[tk_nf4_order[i]], b = tk_nf4_code[tk_nf4_order[i + 1]];
		float c = tk_fp4_code[tk_fp4_order[i]], e = tk_fp4_code[tk_fp4_order[i + 1]];

		TT_CHECK((a + b) / 2 == tk_nf4_bound[i], "nf4 bound %d", i);
		TT_CHECK((c + e) / 2 == tk_fp4_bound[i], "fp4 bound %d", i);
	}
}

static void test_bucket(void)
{
	int t, i;

	/* tk_q4_bucket counts bounds strictly below s (bucketize, right=False) */
	for (t = 0; t < 2; t++) {
		const float *bound = t ? tk_fp4_bound : tk_nf4_bound;

		for (i = 0; i < 15; i++) {
			float b = bound[i];

			TT_CHECK(tk_q4_bucket(bound, b) == (unsigned)i, "t%d tie %d", t, i);
			TT_CHECK(tk_q4_bucket(bound, nextafterf(b, 2.0f)) == (unsigned)i + 1,
				 "t%d above %d", t, i);
		}
		TT_CHECK(tk_q4_bucket(bound, -1.0f) == 0, "t%d -1", t);
		TT_CHECK(tk_q4_bucket(bound, 1.0f) == 15, "t%d 1", t);
	}
}

static void test_odd_padding_and_nibbles(void)
{
	/* 3 values: the fourth nibble is the code of 0.0 (7 nf4, 0 fp4) */
	float x[3] = {1.0f, -1.0f, 0.0f}, am;
	uint8_t p[2];

	TT_REQUIRE(tk_q4_quantize(x, 3, TK_Q4_NF4, 64, p, &am, NULL) == 0, "nf4");
	TT_CHECK(p[0] == 0xf0 && p[1] == 0x77, "nf4 bytes %02x %02x", p[0], p[1]);
	TT_CHECK(am == 1.0f, "absmax %a", am);
	TT_REQUIRE(tk_q4_quantize(x, 3, TK_Q4_FP4, 64, p, &am, NULL) == 0, "fp4");
	TT_CHECK(p[0] == 0x3b && p[1] == 0x00, "fp4 bytes %02x %02x", p[0], p[1]);
}

static void test_errors(void)
{
	float x[4] = {0.5f, NAN, 1.0f, 2.0f}, am[1], out[4];
	uint8_t p[4] = {0, 0, 0, 0};
	struct tk_diag d;
	enum tk_q4_type t;

	tk_diag_clear(&d);
	TT_CHECK(tk_q4_quantize(x, 4, TK_Q4_NF4, 64, p, am, &d) == TK_E_INVAL, "nan");
	TT_CHECK(d.offset == 1 && strstr(d.msg, "value 1 is not finite"), "msg '%s'", d.msg);
	x[1] = INFINITY;
	TT_CHECK(tk_q4_quantize(x, 4, TK_Q4_NF4, 64, p, am, NULL) == TK_E_INVAL, "inf");
	x[1] = 0.0f;
	TT_CHECK(tk_q4_quantize(x, 4, TK_Q4_NF4, 48, p, am, &d) == TK_E_INVAL, "bs 48");
	TT_CHECK(strstr(d.msg, "invalid blocksize 48") != NULL, "msg '%s'", d.msg);
	TT_CHECK(tk_q4_quantize(x, 4, TK_Q4_NF4, 16, p, am, NULL) == TK_E_INVAL, "bs 16");
	TT_CHECK(tk_q4_quantize(x, 4, TK_Q4_NF4, 8192, p, am, NULL) == TK_E_INVAL, "bs 8192");
	TT_CHECK(tk_q4_quantize(x, 0, TK_Q4_NF4, 64, p, am, NULL) == TK_E_INVAL, "n 0");
	TT_CHECK(tk_q4_quantize(x, 4, (enum tk_q4_type)7, 64, p, am, NULL) == TK_E_INVAL,
		 "type 7");
	TT_CHECK(tk_q4_dequantize(p, am, 4, TK_Q4_FP4, 100, out, NULL) == TK_E_INVAL,
		 "dequant bs 100");
	TT_CHECK(tk_q4_blocksize_ok(32) && tk_q4_blocksize_ok(4096) &&
		 !tk_q4_blocksize_ok(0) && !tk_q4_blocksize_ok(-64), "blocksize_ok");
	TT_CHECK(tk_q4_type_parse("nf4", &t, NULL) == 0 && t == TK_Q4_NF4, "parse nf4");
	TT_CHECK(tk_q4_type_parse("fp4", &t, NULL) == 0 && t == TK_Q4_FP4, "parse fp4");
	TT_CHECK(tk_q4_type_parse("int4", &t, &d) == TK_E_INVAL &&
		 strstr(d.msg, "unknown 4-bit quant type 'int4'"), "parse int4: '%s'", d.msg);
	TT_CHECK(!strcmp(tk_q4_type_name(TK_Q4_FP4), "fp4"), "name");
	x[1] = 0.5f;
	TT_CHECK(tk_q4_nest(x, 0, 0.0f, p, am, NULL) == TK_E_INVAL, "nest n 0");
	x[2] = INFINITY;
	tk_diag_clear(&d);
	TT_CHECK(tk_q4_nest(x, 4, 0.0f, p, am, &d) == TK_E_INVAL, "nest inf");
	TT_CHECK(d.offset == 2 && strstr(d.msg, "absmax 2 is not finite"), "msg '%s'", d.msg);
	TT_CHECK(tk_q4_torch_mean(x, 0, 1) == 0.0f, "mean of nothing");
}

int main(void)
{
	TT_RUN(test_tables);
	TT_RUN(test_bucket);
	TT_RUN(test_matches_bitsandbytes);
	TT_RUN(test_double_quant_matches_bitsandbytes);
	TT_RUN(test_nest_large);
	TT_RUN(test_odd_padding_and_nibbles);
	TT_RUN(test_errors);
	return tt_done();
}

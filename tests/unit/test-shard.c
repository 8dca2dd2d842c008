/* test-shard.c - token shards: round trips, streams, stat, damaged files. */
#include "formats/shard.h"
#include "tt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FP "0123456789abcdef"

/* A small deterministic generator for test data. */
static uint64_t rng_state = 12345;
static uint32_t rnd(uint32_t n)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)((rng_state >> 33) % n);
}

/* A set of records kept for comparison after a round trip. */
struct rec_set {
	int n;
	struct tk_record r[300];
	uint32_t *ids[300];
	uint8_t *mask[300];
	uint32_t *seg[300];
};

static void set_free(struct rec_set *s)
{
	for (int i = 0; i < s->n; i++) {
		free(s->ids[i]);
		free(s->mask[i]);
		free(s->seg[i]);
	}
	s->n = 0;
}

/* Makes n random records: documents of random length (blocks of seq_len
 * when seq_len > 0), masks when with_mask, segments and padding for blocks. */
static void make_records(struct rec_set *s, int n, uint32_t vocab, uint32_t seq_len,
			 int with_mask)
{
	s->n = n;
	for (int i = 0; i < n; i++) {
		uint64_t len = seq_len ? seq_len : rnd(200);
		if (i == 3 && !seq_len)
			len = 0; /* an empty document */
		s->ids[i] = malloc(4 * (len + 1));
		for (uint64_t k = 0; k < len; k++)
			s->ids[i][k] = rnd(vocab);
		if (len)
			s->ids[i][0] = vocab - 1; /* the largest id */
		s->mask[i] = NULL;
		s->seg[i] = NULL;
		struct tk_record *r = &s->r[i];
		memset(r, 0, sizeof(*r));
		r->ids = s->ids[i];
		r->n = len;
		if (with_mask && i % 3 != 1) { /* some records without a mask */
			s->mask[i] = malloc(len + 1);
			for (uint64_t k = 0; k < len; k++)
				s->mask[i][k] = k < len / 3 ? 0 : 1;
			r->mask = s->mask[i];
		}
		if (seq_len) {
			r->n_pad = i % 4 == 0 ? rnd(seq_len / 2) : 0;
			if (r->mask) /* padding is mask 0 in what we compare to */
				for (uint64_t k = len - r->n_pad; k < len; k++)
					s->mask[i][k] = 0;
			uint32_t ns = 1 + rnd(4);
			s->seg[i] = malloc(4 * ns);
			s->seg[i][0] = 0;
			for (uint32_t k = 1; k < ns; k++)
				s->seg[i][k] = s->seg[i][k - 1] + 1 + rnd(seq_len / 8);
			r->seg = s->seg[i];
			r->n_seg = i % 5 == 2 ? 0 : ns;
			if (!r->n_seg)
				r->seg = NULL;
		}
	}
}

/* Writes a shard into a malloc'ed buffer. */
static int write_shard(const struct tk_shard_info *info, const struct rec_set *s,
		       size_t chunk, char **buf, size_t *len)
{
	FILE *fp = open_memstream(buf, len);
	tk_shard_writer_t *w;
	struct tk_diag d;
	int rc = tk_shard_writer_open(&w, fp, "mem", info, &d);
	if (rc) {
		fclose(fp);
		return rc;
	}
	if (chunk)
		tk_shard_writer_set_chunk_size(w, chunk);
	for (int i = 0; i < s->n && !rc; i++)
		rc = tk_shard_write(w, &s->r[i], &d);
	if (rc)
		tk_shard_writer_free(w);
	else
		rc = tk_shard_writer_close(w, &d);
	fclose(fp);
	return rc;
}

/* Is mask m (NULL: all ones) equal to mask r over n tokens with n_pad pads? */
static int mask_eq(const uint8_t *got, const struct tk_record *want)
{
	for (uint64_t k = 0; k < want->n; k++) {
		int w = k < want->n - want->n_pad && (!want->mask || want->mask[k]);
		int g = got ? got[k] : 1;
		if (w != g)
			return 0;
	}
	return 1;
}

/* Reads every record of one shard from fp and compares with s. */
static int read_compare(FILE *fp, const struct rec_set *s, struct tk_shard_info *info_out,
			struct tk_shard_totals *tot_out, char *why, size_t whyn)
{
	tk_shard_reader_t *r;
	struct tk_diag d;
	int rc = tk_shard_reader_open(&r, fp, "mem", &d);
	if (rc) {
		snprintf(why, whyn, "open: %s", d.msg);
		return rc;
	}
	if (info_out)
		*info_out = *tk_shard_reader_info(r);
	struct tk_record rec;
	int i = 0;
	while ((rc = tk_shard_read(r, &rec, &d)) == 1) {
		if (i >= s->n) {
			snprintf(why, whyn, "extra record %d", i);
			rc = -100;
			break;
		}
		const struct tk_record *w = &s->r[i];
		if (rec.n != w->n || (w->n && memcmp(rec.ids, w->ids, 4 * w->n)) ||
		    rec.n_pad != w->n_pad || rec.n_seg != w->n_seg ||
		    (w->n_seg && memcmp(rec.seg, w->seg, 4 * w->n_seg)) || !mask_eq(rec.mask, w) ||
		    (!w->mask && !w->n_pad && rec.mask)) {
			snprintf(why, whyn, "record %d differs", i);
			rc = -100;
			break;
		}
		i++;
	}
	if (rc == 0 && i != s->n) {
		snprintf(why, whyn, "read %d records of %d", i, s->n);
		rc = -100;
	}
	if (rc < 0 && rc != -100)
		snprintf(why, whyn, "read: %s", d.msg);
	if (rc == 0 && tot_out)
		*tot_out = *tk_shard_reader_totals(r);
	tk_shard_reader_free(r);
	return rc;
}

static int roundtrip(const struct tk_shard_info *info, const struct rec_set *s, size_t chunk,
		     struct tk_shard_totals *tot, char *why, size_t whyn)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = write_shard(info, s, chunk, &buf, &len);
	if (rc) {
		snprintf(why, whyn, "write failed %d", rc);
		free(buf);
		return rc;
	}
	FILE *fp = fmemopen(buf, len, "rb");
	struct tk_shard_info got;
	rc = read_compare(fp, s, &got, tot, why, whyn);
	if (!rc && (got.kind != info->kind || strcmp(got.fingerprint, info->fingerprint) ||
		    got.vocab_size != info->vocab_size || got.token_bytes != info->token_bytes ||
		    got.eos_id != info->eos_id || got.pad_id != info->pad_id ||
		    got.bos_id != info->bos_id || got.seq_len != info->seq_len ||
		    strcmp(got.split, info->split) || got.ended != info->ended)) {
		snprintf(why, whyn, "header differs");
		rc = -100;
	}
	if (!rc && tk_shard_more(fp, "mem", NULL) != 0) {
		snprintf(why, whyn, "bytes left after the shard");
		rc = -100;
	}
	fclose(fp);
	free(buf);
	return rc;
}

static void test_documents_plain(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 50257);
	info.eos_id = 50256;
	struct rec_set s;
	make_records(&s, 50, 50257, 0, 0);
	char why[256] = "";
	struct tk_shard_totals t;
	int rc = roundtrip(&info, &s, 0, &t, why, sizeof(why));
	TT_CHECK(rc == 0, "%s", why);
	uint64_t tokens = 0;
	for (int i = 0; i < s.n; i++)
		tokens += s.r[i].n;
	TT_CHECK(t.records == 50 && t.tokens == tokens && t.masked == 0 && t.padding == 0 &&
			 t.chunks == 1,
		 "totals %llu %llu %llu", (unsigned long long)t.records,
		 (unsigned long long)t.tokens, (unsigned long long)t.chunks);
	set_free(&s);
}

/* "ended" (tk-tokenize ended each document) comes back in the info and in
 * every record; it is for documents only. */
static void test_documents_ended(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 1000);
	info.ended = 1;
	struct rec_set s;
	make_records(&s, 5, 1000, 0, 0);
	char why[256] = "";
	TT_CHECK(roundtrip(&info, &s, 0, NULL, why, sizeof(why)) == 0, "%s", why);
	char *buf = NULL;
	size_t len = 0;
	TT_REQUIRE(write_shard(&info, &s, 0, &buf, &len) == 0, "write");
	FILE *fp = fmemopen(buf, len, "rb");
	tk_shard_reader_t *r;
	struct tk_record rec;
	TT_REQUIRE(tk_shard_reader_open(&r, fp, "mem", NULL) == 0, "open");
	int n = 0;
	while (tk_shard_read(r, &rec, NULL) == 1)
		n += rec.ended == 1;
	TT_CHECK(n == 5, "%d of 5 records ended", n);
	tk_shard_reader_free(r);
	fclose(fp);
	free(buf);
	set_free(&s);
	struct tk_diag d;
	tk_shard_writer_t *w;
	tk_shard_info_init(&info, TK_SHARD_BLOCKS, FP, 1000);
	info.seq_len = 8;
	info.ended = 1;
	TT_CHECK(tk_shard_writer_open(&w, stdout, "x", &info, &d) == TK_E_INVAL, "ended blocks");
}

static void test_documents_mask(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 1000);
	struct rec_set s;
	make_records(&s, 40, 1000, 0, 1);
	char why[256] = "";
	struct tk_shard_totals t;
	TT_CHECK(roundtrip(&info, &s, 0, &t, why, sizeof(why)) == 0, "%s", why);
	uint64_t masked = 0;
	for (int i = 0; i < s.n; i++)
		if (s.r[i].mask)
			masked += s.r[i].n / 3;
	TT_CHECK(t.masked == masked, "masked %llu, want %llu", (unsigned long long)t.masked,
		 (unsigned long long)masked);
	set_free(&s);
}

static void test_blocks_seg_pad(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_BLOCKS, FP, 32000);
	info.seq_len = 128;
	info.pad_id = 0;
	snprintf(info.split, sizeof(info.split), "eval");
	for (int with_mask = 0; with_mask < 2; with_mask++) {
		struct rec_set s;
		make_records(&s, 30, 32000, 128, with_mask);
		char why[256] = "";
		struct tk_shard_totals t;
		TT_CHECK(roundtrip(&info, &s, 0, &t, why, sizeof(why)) == 0, "mask %d: %s",
			 with_mask, why);
		uint64_t pad = 0;
		for (int i = 0; i < s.n; i++)
			pad += s.r[i].n_pad;
		TT_CHECK(t.padding == pad && t.tokens == 30 * 128, "padding %llu want %llu",
			 (unsigned long long)t.padding, (unsigned long long)pad);
		set_free(&s);
	}
}

static void test_u32_ids(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 128256);
	TT_REQUIRE(info.token_bytes == 4, "token_bytes %d", info.token_bytes);
	info.bos_id = 128000;
	info.eos_id = 128001;
	struct rec_set s;
	make_records(&s, 60, 128256, 0, 1);
	char why[256] = "";
	TT_CHECK(roundtrip(&info, &s, 0, NULL, why, sizeof(why)) == 0, "%s", why);
	set_free(&s);
	/* the boundary: 65536 ids still fit two bytes */
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 65536);
	TT_CHECK(info.token_bytes == 2, "token_bytes %d", info.token_bytes);
	make_records(&s, 10, 65536, 0, 0);
	TT_CHECK(roundtrip(&info, &s, 0, NULL, why, sizeof(why)) == 0, "%s", why);
	set_free(&s);
}

static void test_empty_shard(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 50257);
	struct rec_set s = { 0 };
	char why[256] = "";
	struct tk_shard_totals t;
	TT_CHECK(roundtrip(&info, &s, 0, &t, why, sizeof(why)) == 0, "%s", why);
	TT_CHECK(t.records == 0 && t.chunks == 0, "records %llu", (unsigned long long)t.records);
}

static void test_many_chunks(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 50257);
	struct rec_set s;
	make_records(&s, 300, 50257, 0, 1);
	char why[256] = "";
	struct tk_shard_totals t;
	TT_CHECK(roundtrip(&info, &s, 1000, &t, why, sizeof(why)) == 0, "%s", why);
	TT_CHECK(t.chunks > 30, "only %llu chunks", (unsigned long long)t.chunks);
	set_free(&s);
}

static void test_stat(void)
{
	struct tk_shard_info info, got;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 50257);
	info.eos_id = 50256;
	struct rec_set s;
	make_records(&s, 200, 50257, 0, 1);
	char *buf = NULL;
	size_t len = 0;
	TT_REQUIRE(write_shard(&info, &s, 2000, &buf, &len) == 0, "write");
	char path[512];
	snprintf(path, sizeof(path), "%s/stat.tks", tt_tmpdir());
	FILE *fp = fopen(path, "wb");
	fwrite(buf, 1, len, fp);
	fclose(fp);
	struct tk_shard_totals t, t2;
	struct tk_diag d;
	int rc = tk_shard_stat(path, &got, &t, &d);
	TT_REQUIRE(rc == 0, "stat: %s", d.msg);
	fp = fmemopen(buf, len, "rb");
	char why[256] = "";
	TT_CHECK(read_compare(fp, &s, NULL, &t2, why, sizeof(why)) == 0, "%s", why);
	fclose(fp);
	TT_CHECK(!memcmp(&t, &t2, sizeof(t)), "stat totals differ from the streamed ones");
	TT_CHECK(got.eos_id == 50256 && !strcmp(got.fingerprint, FP), "header");
	/* two shards in one file: stat refuses, the streaming reader reads both */
	fp = fopen(path, "ab");
	fwrite(buf, 1, len, fp);
	fclose(fp);
	rc = tk_shard_stat(path, NULL, NULL, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "several shards"), "rc %d %s", rc, d.msg);
	/* a file cut short */
	TT_CHECK(truncate(path, (off_t)len - 1) == 0, "truncate");
	rc = tk_shard_stat(path, NULL, NULL, &d);
	TT_CHECK(rc < 0, "stat of a cut file succeeded");
	set_free(&s);
	free(buf);
}

/* Two shards written by a child process through a pipe, read back one
 * after the other with tk_shard_more between them. */
static void test_pipe_stream(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 50257);
	struct rec_set a, b;
	make_records(&a, 120, 50257, 0, 1);
	make_records(&b, 7, 50257, 0, 0);
	int fds[2];
	TT_REQUIRE(pipe(fds) == 0, "pipe");
	fflush(stdout);
	pid_t pid = fork();
	TT_REQUIRE(pid >= 0, "fork");
	if (pid == 0) {
		close(fds[0]);
		FILE *out = fdopen(fds[1], "wb");
		const struct rec_set *sets[2] = { &a, &b };
		int rc = 0;
		for (int k = 0; k < 2 && !rc; k++) {
			tk_shard_writer_t *w;
			rc = tk_shard_writer_open(&w, out, "pipe", &info, NULL);
			if (rc)
				break;
			tk_shard_writer_set_chunk_size(w, 3000);
			for (int i = 0; i < sets[k]->n && !rc; i++)
				rc = tk_shard_write(w, &sets[k]->r[i], NULL);
			rc = rc ? rc : tk_shard_writer_close(w, NULL);
		}
		fclose(out);
		_exit(rc ? 1 : 0);
	}
	close(fds[1]);
	FILE *in = fdopen(fds[0], "rb");
	char why[256] = "";
	int rc = read_compare(in, &a, NULL, NULL, why, sizeof(why));
	TT_CHECK(rc == 0, "first shard: %s", why);
	TT_CHECK(tk_shard_more(in, "pipe", NULL) == 1, "no second shard");
	rc = read_compare(in, &b, NULL, NULL, why, sizeof(why));
	TT_CHECK(rc == 0, "second shard: %s", why);
	TT_CHECK(tk_shard_more(in, "pipe", NULL) == 0, "bytes after the second shard");
	fclose(in);
	int status;
	waitpid(pid, &status, 0);
	TT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer failed");
	set_free(&a);
	set_free(&b);
}

static void test_write_errors(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_BLOCKS, FP, 100);
	info.seq_len = 4;
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	tk_shard_writer_t *w;
	struct tk_diag d;
	TT_REQUIRE(tk_shard_writer_open(&w, fp, "mem", &info, &d) == 0, "%s", d.msg);
	uint32_t ids[4] = { 1, 2, 100, 3 }, seg[2] = { 0, 0 };
	struct tk_record r = { .ids = ids, .n = 4 };
	TT_CHECK(tk_shard_write(w, &r, &d) == TK_E_INVAL && strstr(d.msg, "token id 100"), "%s",
		 d.msg);
	ids[2] = 99;
	r.n = 3;
	TT_CHECK(tk_shard_write(w, &r, &d) == TK_E_INVAL && strstr(d.msg, "not seq_len"), "%s",
		 d.msg);
	r.n = 4;
	r.n_pad = 5;
	TT_CHECK(tk_shard_write(w, &r, &d) == TK_E_INVAL, "n_pad > n accepted");
	r.n_pad = 0;
	r.seg = seg;
	r.n_seg = 2;
	TT_CHECK(tk_shard_write(w, &r, &d) == TK_E_INVAL && strstr(d.msg, "segment"), "%s", d.msg);
	r.n_seg = 1;
	TT_CHECK(tk_shard_write(w, &r, &d) == 0, "%s", d.msg);
	TT_CHECK(tk_shard_writer_close(w, &d) == 0, "%s", d.msg);
	fclose(fp);
	free(buf);
	/* a header that makes no sense */
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, "xyz", 100);
	TT_CHECK(tk_shard_writer_open(&w, stdout, "x", &info, &d) == TK_E_INVAL, "bad fingerprint");
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 100);
	info.eos_id = 100;
	TT_CHECK(tk_shard_writer_open(&w, stdout, "x", &info, &d) == TK_E_INVAL, "eos out of range");
}

/* Reads a whole shard from memory; returns the first error (or 0), and
 * whether the records equal s in *same. */
static int read_all(const char *buf, size_t len, const struct rec_set *s, int *same,
		    struct tk_diag *d)
{
	FILE *fp = len ? fmemopen((void *)buf, len, "rb") : fopen("/dev/null", "rb");
	tk_shard_reader_t *r;
	int rc = tk_shard_reader_open(&r, fp, "mem", d);
	*same = 0;
	if (!rc) {
		struct tk_record rec;
		int i = 0, eq = 1;
		while ((rc = tk_shard_read(r, &rec, d)) == 1) {
			const struct tk_record *w = i < s->n ? &s->r[i] : NULL;
			if (!w || rec.n != w->n || (w->n && memcmp(rec.ids, w->ids, 4 * w->n)) ||
			    !mask_eq(rec.mask, w))
				eq = 0;
			i++;
		}
		*same = eq && i == s->n;
		tk_shard_reader_free(r);
	}
	fclose(fp);
	return rc;
}

static void test_fuzz_truncate_flip(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 50257);
	struct rec_set s;
	make_records(&s, 40, 50257, 0, 1);
	char *buf = NULL;
	size_t len = 0;
	TT_REQUIRE(write_shard(&info, &s, 600, &buf, &len) == 0, "write");
	struct tk_diag d;
	int same, n_checksum = 0, n_cut = 0;
	TT_REQUIRE(read_all(buf, len, &s, &same, &d) == 0 && same, "intact shard: %s", d.msg);
	for (size_t cut = 0; cut < len; cut++) {
		int rc = read_all(buf, cut, &s, &same, &d);
		TT_CHECK(rc < 0, "cut at %zu read cleanly", cut);
		if (rc < 0 && strstr(d.msg, "cut short"))
			n_cut++;
		if (cut > 100 && rc < 0)
			TT_CHECK(strstr(d.msg, "offset ") == d.msg, "cut at %zu: %s", cut, d.msg);
	}
	/* every byte is covered by a checksum or a check: flipping any bit of
	 * any byte must be detected */
	char *copy = malloc(len);
	for (size_t pos = 0; pos < len; pos++) {
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(copy, buf, len);
			copy[pos] ^= (char)(1 << bit);
			int rc = read_all(copy, len, &s, &same, &d);
			TT_CHECK(rc < 0, "flip at %zu bit %d not detected", pos, bit);
			if (rc == TK_E_CHECKSUM)
				n_checksum++;
		}
	}
	/* random multi-byte damage: an error or the very same data */
	for (int k = 0; k < 3000; k++) {
		memcpy(copy, buf, len);
		int nflip = 1 + (int)rnd(8);
		for (int j = 0; j < nflip; j++)
			copy[rnd((uint32_t)len)] = (char)rnd(256);
		int rc = read_all(copy, len, &s, &same, &d);
		TT_CHECK(rc < 0 || same, "damage %d read as different data", k);
	}
	TT_CHECK(n_cut > (int)len / 2, "only %d cut-short messages", n_cut);
	TT_CHECK(n_checksum > (int)len, "only %d checksum errors", n_checksum);
	free(copy);
	free(buf);
	set_free(&s);
}

/* Rewrites the JSON header (and its CRCs) of a shard in buf. */
static size_t patch_header(char *buf, size_t len, const char *json, char *out)
{
	uint32_t hlen = (uint8_t)buf[12] | (uint8_t)buf[13] << 8 | (uint8_t)buf[14] << 16 |
			(uint32_t)(uint8_t)buf[15] << 24;
	size_t jn = strlen(json);
	char *padded = NULL;
	if (jn < hlen) { /* pad with blanks so chunk offsets stay valid */
		padded = malloc(hlen + 1);
		memset(padded, ' ', hlen);
		memcpy(padded, json, jn);
		padded[hlen] = 0;
		json = padded;
		jn = hlen;
	}
	memcpy(out, buf, 24);
	uint32_t v[2] = { (uint32_t)jn, tk_crc32c(0, json, jn) };
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 4; i++)
			out[12 + 4 * k + i] = (char)(v[k] >> (8 * i));
	uint32_t pc = tk_crc32c(0, out, 20);
	for (int i = 0; i < 4; i++)
		out[20 + i] = (char)(pc >> (8 * i));
	memcpy(out + 24, json, jn);
	memcpy(out + 24 + jn, buf + 24 + hlen, len - 24 - hlen);
	free(padded);
	return len - hlen + jn;
}

/* Hand-made headers with valid checksums: the reader's own checks. */
static void test_forged(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 50257);
	struct rec_set s;
	make_records(&s, 5, 50257, 0, 0);
	char *buf = NULL;
	size_t len = 0;
	TT_REQUIRE(write_shard(&info, &s, 0, &buf, &len) == 0, "write");
	char *out = malloc(len + 4096);
	struct tk_diag d;
	int same;
	/* a smaller vocabulary than the ids: the chunk check catches it */
	size_t n = patch_header(buf, len,
				"{\"kind\":\"documents\",\"fingerprint\":\"" FP "\","
				"\"vocab_size\":100,\"token_bytes\":2,\"bos_id\":-1,\"eos_id\":-1,"
				"\"pad_id\":-1,\"seq_len\":0,\"future_key\":[1,2]}",
				out);
	int rc = read_all(out, n, &s, &same, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "not below vocab_size 100"), "%d %s", rc, d.msg);
	/* unknown keys are ignored */
	n = patch_header(buf, len,
			 "{\"kind\":\"documents\",\"fingerprint\":\"" FP "\","
			 "\"vocab_size\":50257,\"token_bytes\":2,\"bos_id\":-1,\"eos_id\":-1,"
			 "\"pad_id\":-1,\"seq_len\":0,\"added_later\":{\"x\":1}}",
			 out);
	rc = read_all(out, n, &s, &same, &d);
	TT_CHECK(rc == 0 && same, "unknown key: %d %s", rc, d.msg);
	/* token_bytes that does not fit the vocabulary */
	n = patch_header(buf, len,
			 "{\"kind\":\"documents\",\"fingerprint\":\"" FP "\","
			 "\"vocab_size\":50257,\"token_bytes\":4,\"bos_id\":-1,\"eos_id\":-1,"
			 "\"pad_id\":-1,\"seq_len\":0}",
			 out);
	rc = read_all(out, n, &s, &same, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "token_bytes"), "%d %s", rc, d.msg);
	n = patch_header(buf, len, "[1,2,3]", out);
	rc = read_all(out, n, &s, &same, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "not a JSON object"), "%d %s", rc, d.msg);
	/* a chunk header claiming huge counts, with a valid header CRC */
	memcpy(out, buf, len);
	size_t ch = 24 + ((uint8_t)buf[12] | (uint8_t)buf[13] << 8);
	TT_REQUIRE(!memcmp(out + ch, "TKCH", 4), "no chunk at %zu", ch);
	for (int i = 0; i < 4; i++)
		out[ch + 24 + i] = (char)0xff; /* raw size */
	uint32_t c = tk_crc32c(0, out + ch, 36);
	for (int i = 0; i < 4; i++)
		out[ch + 36 + i] = (char)(c >> (8 * i));
	rc = read_all(out, len, &s, &same, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "out of range"), "%d %s", rc, d.msg);
	/* a newer format version */
	memcpy(out, buf, len);
	out[8] = 2;
	c = tk_crc32c(0, out, 20);
	for (int i = 0; i < 4; i++)
		out[20 + i] = (char)(c >> (8 * i));
	rc = read_all(out, len, &s, &same, &d);
	TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "version 2"), "%d %s", rc, d.msg);
	free(out);
	free(buf);
	set_free(&s);
}

static void test_messages(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 50257);
	struct rec_set s;
	make_records(&s, 100, 50257, 0, 0);
	char *buf = NULL;
	size_t len = 0;
	TT_REQUIRE(write_shard(&info, &s, 500, &buf, &len) == 0, "write");
	struct tk_diag d;
	int same;
	/* damage inside the data of chunk 3 (numbered from 0) */
	FILE *fp = fmemopen(buf, len, "rb");
	tk_shard_reader_t *r;
	TT_REQUIRE(tk_shard_reader_open(&r, fp, "x.tks", &d) == 0, "%s", d.msg);
	long long starts[4];
	int nchunk = 0;
	struct tk_record rec;
	uint64_t last = 0;
	while (nchunk < 4 && tk_shard_read(r, &rec, &d) == 1) {
		long long o = tk_shard_reader_offset(r);
		if ((uint64_t)o != last) { /* a chunk was just read */
			starts[nchunk++] = (long long)last;
			last = (uint64_t)o;
		}
	}
	tk_shard_reader_free(r);
	fclose(fp);
	TT_REQUIRE(nchunk == 4, "chunks %d", nchunk);
	/* starts[k] is where chunk k begins (for k >= 1) */
	buf[starts[3] + 50] ^= 0x10;
	TT_CHECK(read_all(buf, len, &s, &same, &d) == TK_E_CHECKSUM, "not a checksum error");
	char want[128];
	snprintf(want, sizeof(want), "offset %lld: chunk 3 checksum mismatch (file damaged)",
		 starts[3]);
	TT_CHECK(!strcmp(d.msg, want) && d.offset == starts[3], "'%s' want '%s'", d.msg, want);
	buf[starts[3] + 50] ^= 0x10;
	TT_CHECK(read_all(buf, (size_t)starts[3] + 60, &s, &same, &d) == TK_E_FORMAT, "cut");
	snprintf(want, sizeof(want), "offset %lld: file ends inside chunk 3 (cut short?)",
		 starts[3] + 60);
	TT_CHECK(!strcmp(d.msg, want), "'%s' want '%s'", d.msg, want);
	TT_CHECK(read_all("hello world\n", 12, &s, &same, &d) == TK_E_FORMAT &&
			 strstr(d.msg, "not a tk shard: looks like text"),
		 "%s", d.msg);
	TT_CHECK(read_all("{\"a\": 1}\n", 9, &s, &same, &d) == TK_E_FORMAT &&
			 strstr(d.msg, "looks like JSON"),
		 "%s", d.msg);
	TT_CHECK(read_all("", 0, &s, &same, &d) == TK_E_FORMAT && strstr(d.msg, "empty"), "%s",
		 d.msg);
	free(buf);
	set_free(&s);
}

static void test_check_tokenizer(void)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, FP, 50257);
	struct tk_diag d;
	TT_CHECK(tk_shard_check_tokenizer(&info, "a.tks", FP, 50257, &d) == 0, "same");
	TT_CHECK(tk_shard_check_tokenizer(&info, "a.tks", "fedcba9876543210", 50257, &d) ==
				 TK_E_MISMATCH &&
			 strstr(d.msg, FP) && strstr(d.msg, "fedcba9876543210"),
		 "%s", d.msg);
	TT_CHECK(tk_shard_check_tokenizer(&info, "a.tks", FP, 32000, &d) == TK_E_MISMATCH,
		 "vocab");
}

int main(void)
{
	TT_RUN(test_documents_plain);
	TT_RUN(test_documents_ended);
	TT_RUN(test_documents_mask);
	TT_RUN(test_blocks_seg_pad);
	TT_RUN(test_u32_ids);
	TT_RUN(test_empty_shard);
	TT_RUN(test_many_chunks);
	TT_RUN(test_stat);
	TT_RUN(test_pipe_stream);
	TT_RUN(test_write_errors);
	TT_RUN(test_fuzz_truncate_flip);
	TT_RUN(test_forged);
	TT_RUN(test_messages);
	TT_RUN(test_check_tokenizer);
	return tt_done();
}

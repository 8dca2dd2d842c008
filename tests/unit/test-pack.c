/* test-pack.c - packing documents into blocks, checked against a direct
 * re-implementation of group_texts / per-document padding in this file. */
#include "jobs/pack.h"
#include "tt.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FP "00112233aabbccdd"
#define VOCAB 1000
#define EOS 999

static uint64_t rng_state = 777;
static uint32_t rnd(uint32_t n)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)((rng_state >> 33) % n);
}

#define MAXDOC 400
struct docs {
	int n;
	uint32_t len[MAXDOC];
	uint32_t *ids[MAXDOC];
	uint8_t *mask[MAXDOC];
};

/* Random documents; some end with EOS already, some have masks. */
static void make_docs(struct docs *s, int n, uint32_t maxlen)
{
	s->n = n;
	for (int i = 0; i < n; i++) {
		uint32_t len = 1 + rnd(maxlen);
		s->len[i] = len;
		s->ids[i] = malloc(4 * len);
		for (uint32_t k = 0; k < len; k++)
			s->ids[i][k] = rnd(EOS); /* never EOS by chance */
		if (i % 4 == 0)
			s->ids[i][len - 1] = EOS;
		s->mask[i] = NULL;
		if (i % 3 == 0) {
			s->mask[i] = malloc(len);
			for (uint32_t k = 0; k < len; k++)
				s->mask[i][k] = k >= len / 2;
		}
	}
}

static void docs_free(struct docs *s)
{
	for (int i = 0; i < s->n; i++) {
		free(s->ids[i]);
		free(s->mask[i]);
	}
	s->n = 0;
}

static char *tmp_path(const char *name)
{
	static char buf[32][512];
	static int k;
	k = (k + 1) % 32;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", tt_tmpdir(), name);
	return buf[k];
}

static int write_ended; /* the next shards' header "ended" */

/* Writes docs [from, to) as one documents shard appended to path. */
static int write_docs(const char *path, const char *mode, const struct docs *s, int from, int to,
		      const char *fp_hex, int kind)
{
	FILE *fp = fopen(path, mode);
	struct tk_shard_info info;
	tk_shard_info_init(&info, kind, fp_hex, VOCAB);
	info.eos_id = EOS;
	info.ended = write_ended && kind == TK_SHARD_DOCUMENTS;
	if (kind == TK_SHARD_BLOCKS)
		info.seq_len = 8;
	tk_shard_writer_t *w;
	int rc = tk_shard_writer_open(&w, fp, path, &info, NULL);
	for (int i = from; !rc && i < to; i++) {
		struct tk_record r = { .ids = s->ids[i], .n = s->len[i], .mask = s->mask[i] };
		uint32_t block[8] = { 0 };
		if (kind == TK_SHARD_BLOCKS) { /* the first 8 ids, 0-padded: never read past */
			memcpy(block, s->ids[i], 4 * (s->len[i] < 8 ? s->len[i] : 8));
			r = (struct tk_record){ .ids = block, .n = 8 };
		}
		rc = tk_shard_write(w, &r, NULL);
	}
	rc = rc ? rc : tk_shard_writer_close(w, NULL);
	fclose(fp);
	return rc;
}

/* All blocks of DIR/PREFIX-*.tks (in name order) appended to arrays. */
struct blocks {
	uint64_t n;
	uint32_t *ids;  /* n * L */
	uint8_t *mask;  /* n * L */
	uint32_t *npad;
	uint32_t *seg;  /* n * L, per block seg offsets */
	uint32_t *nseg;
	int files;
};

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_blocks(const char *dir, const char *prefix, uint32_t L, struct blocks *b)
{
	memset(b, 0, sizeof(*b));
	DIR *dp = opendir(dir);
	if (!dp)
		return -1;
	char *names[256];
	int nn = 0;
	struct dirent *e;
	while ((e = readdir(dp)) && nn < 256)
		if (!strncmp(e->d_name, prefix, strlen(prefix)))
			names[nn++] = strdup(e->d_name);
	closedir(dp);
	qsort(names, nn, sizeof(*names), cmpstr);
	int rc = 0;
	for (int f = 0; f < nn; f++) {
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, names[f]);
		FILE *fp = fopen(path, "rb");
		tk_shard_reader_t *r;
		if (!rc)
			rc = tk_shard_reader_open(&r, fp, path, NULL);
		if (!rc && (tk_shard_reader_info(r)->kind != TK_SHARD_BLOCKS ||
			    tk_shard_reader_info(r)->seq_len != L))
			rc = -2;
		struct tk_record rec;
		while (!rc && (rc = tk_shard_read(r, &rec, NULL)) == 1) {
			uint64_t k = b->n++;
			b->ids = realloc(b->ids, 4 * L * b->n);
			b->mask = realloc(b->mask, L * b->n);
			b->seg = realloc(b->seg, 4 * L * b->n);
			b->npad = realloc(b->npad, 4 * b->n);
			b->nseg = realloc(b->nseg, 4 * b->n);
			memcpy(b->ids + k * L, rec.ids, 4 * L);
			for (uint32_t j = 0; j < L; j++)
				b->mask[k * L + j] = rec.mask ? rec.mask[j] : 1;
			b->npad[k] = rec.n_pad;
			b->nseg[k] = rec.n_seg;
			if (rec.n_seg)
				memcpy(b->seg + k * L, rec.seg, 4 * rec.n_seg);
			rc = 0;
		}
		if (!rc || rc == 0)
			tk_shard_reader_free(r);
		fclose(fp);
		free(names[f]);
		b->files++;
	}
	return rc;
}

static void blocks_free(struct blocks *b)
{
	free(b->ids);
	free(b->mask);
	free(b->npad);
	free(b->seg);
	free(b->nseg);
}

/* group_texts: concatenation of the documents (each ended by EOS unless it
 * ends with one), with per-token mask and a document-start flag. */
struct stream {
	uint64_t n;
	uint32_t *ids;
	uint8_t *mask, *start;
};

static void concat(const struct docs *s, const int *pick, int npick, struct stream *st)
{
	memset(st, 0, sizeof(*st));
	size_t cap = 0;
	for (int q = 0; q < npick; q++)
		cap += s->len[pick[q]] + 1;
	st->ids = malloc(4 * cap + 4);
	st->mask = malloc(cap + 1);
	st->start = calloc(cap + 1, 1);
	for (int q = 0; q < npick; q++) {
		int i = pick[q];
		st->start[st->n] = 1;
		for (uint32_t k = 0; k < s->len[i]; k++) {
			st->ids[st->n] = s->ids[i][k];
			st->mask[st->n++] = s->mask[i] ? s->mask[i][k] : 1;
		}
		if (s->ids[i][s->len[i] - 1] != EOS) {
			st->ids[st->n] = EOS;
			st->mask[st->n++] = 1;
		}
	}
}

static void stream_free(struct stream *st)
{
	free(st->ids);
	free(st->mask);
	free(st->start);
}

static void test_pack_group_texts(void)
{
	struct docs s;
	make_docs(&s, 200, 90);
	const char *in = tmp_path("docs.tks");
	TT_REQUIRE(write_docs(in, "wb", &s, 0, s.n, FP, TK_SHARD_DOCUMENTS) == 0, "write");
	for (int keep = 0; keep < 2; keep++) {
		struct tk_pack_opts o;
		tk_pack_opts_init(&o);
		o.seq_len = 64;
		o.keep_remainder = keep;
		o.shard_blocks = 50; /* several files */
		o.output = tmp_path(keep ? "out-keep" : "out");
		struct tk_pack_stats st;
		struct tk_diag d;
		const char *inputs[] = { in };
		int rc = tk_pack_run(&o, inputs, 1, NULL, &st, &d);
		TT_REQUIRE(rc == 0, "pack: %s", d.msg);
		struct blocks b;
		TT_REQUIRE(read_blocks(o.output, "train-", 64, &b) == 0, "read blocks");
		int pick[MAXDOC];
		for (int i = 0; i < s.n; i++)
			pick[i] = i;
		struct stream ref;
		concat(&s, pick, s.n, &ref);
		uint64_t full = ref.n / 64, rem = ref.n % 64;
		TT_CHECK(b.n == full + (keep && rem), "blocks %llu, want %llu",
			 (unsigned long long)b.n, (unsigned long long)(full + (keep && rem)));
		TT_CHECK(st.blocks[0] == b.n && st.dropped[0] == (keep ? 0 : rem) &&
				 st.shards[0] == (b.n + 49) / 50 && b.files == (int)st.shards[0],
			 "stats: dropped %llu shards %llu", (unsigned long long)st.dropped[0],
			 (unsigned long long)st.shards[0]);
		for (uint64_t k = 0; k < b.n; k++) {
			uint32_t want_seg[64], nseg = 0;
			for (uint32_t j = 0; j < 64; j++) {
				uint64_t t = k * 64 + j;
				int pad = t >= ref.n;
				uint32_t id = pad ? EOS : ref.ids[t];
				uint8_t m = pad ? 0 : ref.mask[t];
				if (b.ids[t] != id || b.mask[t] != m) {
					TT_CHECK(0, "keep %d block %llu token %u: id %u mask %u, want %u %u",
						 keep, (unsigned long long)k, j, b.ids[t], b.mask[t], id, m);
					k = b.n;
					break;
				}
				if (j == 0 || (!pad && ref.start[t]))
					want_seg[nseg++] = j;
			}
			if (k == b.n)
				break;
			uint32_t want_pad = k == full ? (uint32_t)(64 - rem) : 0;
			TT_CHECK(b.npad[k] == want_pad, "block %llu n_pad %u want %u",
				 (unsigned long long)k, b.npad[k], want_pad);
			if (nseg > 1)
				TT_CHECK(b.nseg[k] == nseg && !memcmp(b.seg + k * 64, want_seg, 4 * nseg),
					 "block %llu segments", (unsigned long long)k);
			else
				TT_CHECK(b.nseg[k] == 0, "block %llu has %u segments", (unsigned long long)k,
					 b.nseg[k]);
		}
		blocks_free(&b);
		stream_free(&ref);
	}
	docs_free(&s);
}

/* A shard marked "ended" (tk-tokenize ended its documents, conversations
 * as their template does) gets no EOS; one without the mark gets EOS after
 * each document not ending with it, streamed or held (--shuffle) alike. */
static void test_ended(void)
{
	struct docs s;
	make_docs(&s, 40, 30);
	const char *in = tmp_path("ended.tks");
	write_ended = 1;
	TT_REQUIRE(write_docs(in, "wb", &s, 0, 20, FP, TK_SHARD_DOCUMENTS) == 0, "write");
	write_ended = 0;
	TT_REQUIRE(write_docs(in, "ab", &s, 20, 40, FP, TK_SHARD_DOCUMENTS) == 0, "write");
	uint64_t tokens = 0, want_eos = 0;
	for (int i = 0; i < s.n; i++) {
		tokens += s.len[i];
		want_eos += i >= 20 && s.ids[i][s.len[i] - 1] != EOS;
	}
	for (int shuffle = 0; shuffle < 2; shuffle++) {
		struct tk_pack_opts o;
		tk_pack_opts_init(&o);
		o.seq_len = 16;
		o.keep_remainder = 1;
		o.shuffle = shuffle;
		o.output = tmp_path(shuffle ? "ended-shuf" : "ended-out");
		struct tk_pack_stats st;
		struct tk_diag d;
		const char *inputs[] = { in };
		TT_REQUIRE(tk_pack_run(&o, inputs, 1, NULL, &st, &d) == 0, "pack: %s", d.msg);
		struct blocks b;
		TT_REQUIRE(read_blocks(o.output, "train-", 16, &b) == 0, "read blocks");
		uint64_t real = 0;
		for (uint64_t k = 0; k < b.n; k++)
			real += 16 - b.npad[k];
		TT_CHECK(st.eos_added[0] == want_eos && real == tokens + want_eos,
			 "shuffle %d: %llu EOS added, want %llu; %llu tokens, want %llu", shuffle,
			 (unsigned long long)st.eos_added[0], (unsigned long long)want_eos,
			 (unsigned long long)real, (unsigned long long)(tokens + want_eos));
		blocks_free(&b);
	}
	docs_free(&s);
}

static void test_pad_mode(void)
{
	struct docs s;
	make_docs(&s, 50, 100);
	const char *in = tmp_path("pad-docs.tks");
	TT_REQUIRE(write_docs(in, "wb", &s, 0, s.n, FP, TK_SHARD_DOCUMENTS) == 0, "write");
	struct tk_pack_opts o;
	tk_pack_opts_init(&o);
	o.seq_len = 48;
	o.pad = 1;
	o.output = tmp_path("pad-out");
	struct tk_pack_stats st;
	struct tk_diag d;
	const char *inputs[] = { in };
	TT_REQUIRE(tk_pack_run(&o, inputs, 1, NULL, &st, &d) == 0, "%s", d.msg);
	struct blocks b;
	TT_REQUIRE(read_blocks(o.output, "train-", 48, &b) == 0, "read");
	/* a document with no token in the loss once truncated is dropped, as
	 * SFTTrainer drops it (its first half is masked: any longer than 96) */
	uint64_t trunc = 0, pad = 0, kept = 0, masked = 0;
	for (int i = 0; i < 50; i++) {
		uint32_t m = s.len[i] < 48 ? s.len[i] : 48;
		if (s.mask[i] && !memchr(s.mask[i], 1, m)) {
			masked++;
			trunc += s.len[i] - m;
			continue;
		}
		uint64_t k = kept++;
		trunc += s.len[i] - m;
		pad += 48 - m;
		if (k >= b.n)
			continue;
		TT_CHECK(b.npad[k] == 48 - m && b.nseg[k] == 0, "doc %d n_pad %u", i, b.npad[k]);
		for (uint32_t j = 0; j < 48; j++) {
			uint32_t id = j < m ? s.ids[i][j] : EOS; /* no pad id: EOS pads */
			uint8_t mk = j < m ? (s.mask[i] ? s.mask[i][j] : 1) : 0;
			if (b.ids[k * 48 + j] != id || b.mask[k * 48 + j] != mk) {
				TT_CHECK(0, "doc %d token %u", i, j);
				break;
			}
		}
	}
	TT_CHECK(masked > 0 && b.n == kept && st.masked_docs[0] == masked,
		 "blocks %llu, want %llu; %llu dropped, want %llu (> 0)", (unsigned long long)b.n,
		 (unsigned long long)kept, (unsigned long long)st.masked_docs[0],
		 (unsigned long long)masked);
	TT_CHECK(st.truncated[0] == trunc && st.padding[0] == pad && st.eos_added[0] == 0,
		 "truncated %llu/%llu padding %llu/%llu", (unsigned long long)st.truncated[0],
		 (unsigned long long)trunc, (unsigned long long)st.padding[0],
		 (unsigned long long)pad);
	blocks_free(&b);
	docs_free(&s);
}

/* Which input documents ended up in a split (pad mode, seq_len large:
 * one block per document, identified by its first 8 ids). */
static int find_doc(const struct docs *s, const uint32_t *ids)
{
	for (int i = 0; i < s->n; i++)
		if (!memcmp(s->ids[i], ids, 4 * (s->len[i] < 8 ? s->len[i] : 8)))
			return i;
	return -1;
}

static int split_run(const char *const *inputs, int n, const char *out, int shuffle,
		     uint64_t seed, long long eval_docs, double frac, const struct docs *s,
		     int *where, int *order)
{
	struct tk_pack_opts o;
	tk_pack_opts_init(&o);
	o.seq_len = 128;
	o.pad = 1;
	o.shuffle = shuffle;
	o.seed = seed;
	o.eval_docs = eval_docs;
	o.eval_fraction = frac;
	o.output = out;
	o.force = 1;
	struct tk_pack_stats st;
	struct tk_diag d;
	int rc = tk_pack_run(&o, inputs, n, NULL, &st, &d);
	if (rc) {
		printf("# %s\n", d.msg);
		return rc;
	}
	for (int i = 0; i < s->n; i++)
		where[i] = -1;
	int k = 0;
	for (int split = 0; split < 2; split++) {
		struct blocks b;
		if (read_blocks(out, split ? "eval-" : "train-", 128, &b))
			return -1;
		for (uint64_t j = 0; j < b.n; j++) {
			int i = find_doc(s, b.ids + j * 128);
			if (i < 0 || where[i] != -1)
				return -1;
			where[i] = split;
			order[k++] = i;
		}
		blocks_free(&b);
	}
	return k == s->n ? 0 : -1;
}

static void test_split(void)
{
	struct docs s;
	make_docs(&s, 300, 100);
	const char *a = tmp_path("split-a.tks"), *b = tmp_path("split-b.tks"),
		   *ab = tmp_path("split-ab.tks");
	TT_REQUIRE(write_docs(a, "wb", &s, 0, 120, FP, 0) == 0 &&
			   write_docs(b, "wb", &s, 120, 300, FP, 0) == 0 &&
			   write_docs(ab, "wb", &s, 0, 120, FP, 0) == 0 &&
			   write_docs(ab, "ab", &s, 120, 300, FP, 0) == 0,
		   "write");
	const char *two[] = { a, b }, *one[] = { ab };
	int w1[MAXDOC], w2[MAXDOC], o1[MAXDOC], o2[MAXDOC];
	/* streaming (counts from the trailers) and held (a file of two shards)
	 * agree, and the eval count is exact */
	TT_REQUIRE(split_run(two, 2, tmp_path("s1"), 0, 42, 30, 0, &s, w1, o1) == 0, "run 1");
	TT_REQUIRE(split_run(one, 1, tmp_path("s2"), 0, 42, 30, 0, &s, w2, o2) == 0, "run 2");
	int n_eval = 0, spread = 0;
	for (int i = 0; i < s.n; i++) {
		n_eval += w1[i] == 1;
		spread += w1[i] == 1 && i >= 150;
	}
	TT_CHECK(!memcmp(w1, w2, sizeof(int) * s.n) && !memcmp(o1, o2, sizeof(int) * s.n),
		 "streamed and held splits differ");
	TT_CHECK(n_eval == 30, "%d eval docs", n_eval);
	TT_CHECK(spread > 5 && spread < 25, "eval docs not spread: %d of 30 in the 2nd half", spread);
	/* without shuffle the order within a split is the input order */
	for (int k = 1; k < s.n; k++)
		if (w1[o1[k]] == w1[o1[k - 1]])
			TT_CHECK(o1[k] > o1[k - 1], "order changed at %d", k);
	/* a fraction: ceil(0.05 * 300) = 15, another seed gives another set */
	TT_REQUIRE(split_run(two, 2, tmp_path("s3"), 0, 7, 0, 0.05, &s, w2, o2) == 0, "run 3");
	n_eval = 0;
	for (int i = 0; i < s.n; i++)
		n_eval += w2[i] == 1;
	TT_CHECK(n_eval == 15, "%d eval docs for 5%%", n_eval);
	/* shuffle: deterministic for a seed, order changes with the seed */
	TT_REQUIRE(split_run(two, 2, tmp_path("s4"), 1, 5, 20, 0, &s, w1, o1) == 0, "run 4");
	TT_REQUIRE(split_run(one, 1, tmp_path("s5"), 1, 5, 20, 0, &s, w2, o2) == 0, "run 5");
	TT_CHECK(!memcmp(o1, o2, sizeof(int) * s.n), "shuffle not deterministic");
	int inorder = 1;
	for (int k = 1; k < s.n; k++)
		inorder &= w1[o1[k]] != w1[o1[k - 1]] || o1[k] > o1[k - 1];
	TT_CHECK(!inorder, "shuffle kept the input order");
	TT_REQUIRE(split_run(two, 2, tmp_path("s6"), 1, 6, 20, 0, &s, w2, o2) == 0, "run 6");
	TT_CHECK(memcmp(o1, o2, sizeof(int) * s.n), "seed has no effect");
	docs_free(&s);
	/* a fraction whose product is not a whole number rounds up, as
	 * datasets' train_test_split (n_test = ceil(test_size * n)): 0.1 of 33
	 * documents is 3.3, so 4 go to eval; 0.15 of 33 is 4.95, so 5 (a
	 * truncation would give 3 and 4) */
	struct docs s33;
	make_docs(&s33, 33, 100);
	const char *c = tmp_path("split-33.tks"), *c1[] = { c };
	TT_REQUIRE(write_docs(c, "wb", &s33, 0, 33, FP, 0) == 0, "write");
	const struct { int shuffle; double frac; int want; } cases[] = {
		{ 0, 0.1, 4 }, { 1, 0.1, 4 }, { 0, 0.15, 5 }, { 1, 0.15, 5 },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		TT_REQUIRE(split_run(c1, 1, tmp_path("s7"), cases[k].shuffle, 42, 0, cases[k].frac,
				     &s33, w1, o1) == 0, "run 7.%zu", k);
		n_eval = 0;
		for (int i = 0; i < s33.n; i++)
			n_eval += w1[i] == 1;
		TT_CHECK(n_eval == cases[k].want, "%d eval docs of 33 at %g (shuffle %d), want %d",
			 n_eval, cases[k].frac, cases[k].shuffle, cases[k].want);
	}
	docs_free(&s33);
}

static int exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* Nothing named PREFIX* left in the temporary directory. */
static int leftovers(const char *prefix)
{
	DIR *dp = opendir(tt_tmpdir());
	struct dirent *e;
	int n = 0;
	while ((e = readdir(dp)))
		n += !strncmp(e->d_name, prefix, strlen(prefix));
	closedir(dp);
	return n;
}

static void test_errors(void)
{
	struct docs s;
	make_docs(&s, 20, 30);
	const char *a = tmp_path("e-a.tks"), *b = tmp_path("e-b.tks"), *bl = tmp_path("e-bl.tks");
	TT_REQUIRE(write_docs(a, "wb", &s, 0, 10, FP, 0) == 0 &&
			   write_docs(b, "wb", &s, 10, 20, "ffffffffffffffff", 0) == 0 &&
			   write_docs(bl, "wb", &s, 0, 3, FP, TK_SHARD_BLOCKS) == 0,
		   "write");
	struct tk_pack_opts o;
	tk_pack_opts_init(&o);
	o.seq_len = 16;
	o.output = tmp_path("e-out");
	struct tk_pack_stats st;
	struct tk_diag d;
	const char *mixed[] = { a, b }, *blocks[] = { bl }, *good[] = { a };
	int rc = tk_pack_run(&o, mixed, 2, NULL, &st, &d);
	TT_CHECK(rc == TK_E_MISMATCH && strstr(d.msg, "ffffffffffffffff") && strstr(d.msg, FP) &&
			 !strcmp(d.path, b),
		 "%d %s", rc, d.msg);
	rc = tk_pack_run(&o, blocks, 1, NULL, &st, &d);
	TT_CHECK(rc == TK_E_MISMATCH && strstr(d.msg, "not documents"), "%d %s", rc, d.msg);
	o.tok_fingerprint = "0000000000000000";
	o.tok_vocab = VOCAB;
	rc = tk_pack_run(&o, good, 1, NULL, &st, &d);
	TT_CHECK(rc == TK_E_MISMATCH && strstr(d.msg, "0000000000000000"), "%d %s", rc, d.msg);
	o.tok_fingerprint = FP;
	o.seq_len = 100000; /* far more than the data */
	rc = tk_pack_run(&o, good, 1, NULL, &st, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "--keep-remainder"), "%d %s", rc, d.msg);
	TT_CHECK(!exists(o.output) && leftovers("e-out") == 0, "partial output left");
	o.seq_len = 16;
	TT_CHECK(tk_pack_run(&o, good, 1, NULL, &st, &d) == 0, "%s", d.msg);
	rc = tk_pack_run(&o, good, 1, NULL, &st, &d);
	TT_CHECK(rc == TK_E_EXISTS, "overwrote without force: %d", rc);
	o.force = 1;
	o.eval_docs = 10; /* all of them */
	rc = tk_pack_run(&o, good, 1, NULL, &st, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "leaves none"), "%d %s", rc, d.msg);
	TT_CHECK(exists(o.output) && leftovers("e-out") == 1, "old output lost on failure");
	o.eval_docs = 0;
	o.output = NULL;
	o.eval_fraction = 0.5;
	TT_CHECK(tk_pack_run(&o, good, 1, stdout, &st, &d) == TK_E_INVAL, "eval to stdout");
	docs_free(&s);
}

int main(void)
{
	TT_RUN(test_pack_group_texts);
	TT_RUN(test_ended);
	TT_RUN(test_pad_mode);
	TT_RUN(test_split);
	TT_RUN(test_errors);
	return tt_done();
}

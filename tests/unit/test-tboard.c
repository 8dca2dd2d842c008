/* test-tboard.c - TensorBoard event files.
 *
 * Fixture: tests/fixtures/tboard/events.bin, written by
 * tests/parity/gen-tboard-fixture.py with the tensorboard package's own
 * protobufs and RecordWriter; lib/formats/tboard.c must write the same bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "formats/tboard.h"
#include "tt.h"

#define T0 1700000000.25

/* The events of gen-tboard-fixture.py. */
static char long_tag[201];
struct sc {
	const char *tag;
	double v;
};
static const struct {
	long long step;
	int n;
	struct sc v[4];
} events[] = {
	{ 1, 4, { { "train/loss", 5.1632 }, { "train/grad_norm", 1.25 },
		  { "train/learning_rate", 4.5e-05 }, { "train/epoch", 0.125 } } },
	{ 2, 1, { { "eval/loss", 5.0 } } },
	{ 300, 2, { { "train/loss", -0.0 }, { "train/tokens_per_s", 123456.789 } } },
	{ 1LL << 40, 1, { { long_tag, 3.4e38 } } },
};
#define NEV ((int)(sizeof(events) / sizeof(events[0])))

/* All records of an event file, as raw bytes (framing included). */
struct recs {
	int n;
	struct tk_buf raw[16];
	struct tk_buf data[16];
};

static void recs_free(struct recs *r)
{
	for (int i = 0; i < r->n; i++) {
		tk_buf_free(&r->raw[i]);
		tk_buf_free(&r->data[i]);
	}
	r->n = 0;
}

/* Reads path's records through tk_tboard_read_record (which checks the CRCs)
 * and keeps each one's bytes.  Returns the reader's last status. */
static int read_all(const char *path, struct recs *r, struct tk_diag *d)
{
	memset(r, 0, sizeof(*r));
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return tk_diag_sys(d, path, "cannot open");
	int rc;
	long start = 0;
	struct tk_buf rec = { 0 };
	while ((rc = tk_tboard_read_record(fp, path, &rec, d)) == 1 && r->n < 16) {
		long end = ftell(fp);
		struct tk_buf *raw = &r->raw[r->n];
		tk_buf_reserve(raw, (size_t)(end - start));
		fseek(fp, start, SEEK_SET);
		raw->len = fread(raw->data, 1, (size_t)(end - start), fp);
		tk_buf_append(&r->data[r->n], rec.data, rec.len);
		r->n++;
		start = end;
	}
	tk_buf_free(&rec);
	fclose(fp);
	return rc;
}

/* The single events.out.tfevents.* file in dir (static buffer). */
static const char *event_file(const char *dir, int *count)
{
	static char path[2048];
	path[0] = 0;
	*count = 0;
	DIR *dp = opendir(dir);
	if (!dp)
		return path;
	struct dirent *e;
	while ((e = readdir(dp))) {
		if (!strncmp(e->d_name, "events.out.tfevents.", 20)) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			(*count)++;
		}
	}
	closedir(dp);
	return path;
}

static int write_events(const char *dir, struct tk_diag *d)
{
	struct tk_tb w;
	int rc = tk_tboard_open(&w, dir, d);
	if (rc)
		return rc;
	for (int i = 0; i < NEV && !rc; i++) {
		tk_tboard_begin(&w, events[i].step, T0 + (double)events[i].step);
		for (int k = 0; k < events[i].n && !rc; k++)
			rc = tk_tboard_scalar(&w, events[i].v[k].tag, events[i].v[k].v);
		if (!rc)
			rc = tk_tboard_end(&w, d);
		if (!rc && i == 0)
			rc = tk_tboard_flush(&w, d);
	}
	/* an event without scalars writes nothing */
	tk_tboard_begin(&w, 7, 0);
	if (!rc)
		rc = tk_tboard_end(&w, d);
	int rc2 = tk_tboard_close(&w, d);
	return rc ? rc : rc2;
}

/* Byte for byte what tensorboard's RecordWriter wrote, but the wall time
 * of the file_version event (tk writes the time the file was made). */
static void test_matches_tensorboard(void)
{
	struct recs want, got;
	struct tk_diag d;
	int rc = read_all(tt_fixture("tboard/events.bin"), &want, &d);
	TT_REQUIRE(rc == 0 && want.n == NEV + 1, "fixture: rc %d (%s), %d records", rc, d.msg,
		   want.n);
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/match/a/b", tt_tmpdir());
	rc = write_events(dir, &d);
	TT_REQUIRE(rc == 0, "write: %s", d.msg);
	int count;
	const char *path = event_file(dir, &count);
	TT_REQUIRE(count == 1, "%d event files in %s", count, dir);
	rc = read_all(path, &got, &d);
	TT_CHECK(rc == 0 && got.n == want.n, "read back: rc %d (%s), %d records", rc, d.msg,
		 got.n);
	for (int i = 0; i < got.n && i < want.n; i++) {
		struct tk_buf *a = &got.raw[i], *b = &want.raw[i];
		if (i == 0) {
			/* key 0x09, 8 bytes of wall time, then the same bytes */
			struct tk_buf *x = &got.data[0], *y = &want.data[0];
			TT_CHECK(x->len == y->len && x->len > 9 && !memcmp(x->data, y->data, 1) &&
					 !memcmp(x->data + 9, y->data + 9, x->len - 9),
				 "file_version record differs");
			continue;
		}
		TT_CHECK(a->len == b->len && !memcmp(a->data, b->data, a->len),
			 "record %d differs (%zu vs %zu bytes)", i, a->len, b->len);
	}
	/* and the decoder sees what was written */
	struct tk_tboard_event ev;
	TT_CHECK(!tk_tboard_decode_event(got.data[0].data, got.data[0].len, &ev) &&
			 !strcmp(ev.file_version, "brain.Event:2") && ev.step == 0 &&
			 fabs(ev.wall_time - (double)time(NULL)) < 600,
		 "file_version event: '%s' step %lld wall %f", ev.file_version, ev.step,
		 ev.wall_time);
	for (int i = 1; i < got.n && i <= NEV; i++) {
		rc = tk_tboard_decode_event(got.data[i].data, got.data[i].len, &ev);
		TT_CHECK(rc == 0 && ev.step == events[i - 1].step &&
				 ev.wall_time == T0 + (double)ev.step && ev.nvals == events[i - 1].n,
			 "event %d: rc %d step %lld nvals %d", i, rc, ev.step, ev.nvals);
		for (int k = 0; k < ev.nvals && k < events[i - 1].n; k++) {
			const struct sc *s = &events[i - 1].v[k];
			TT_CHECK(ev.vals[k].tag_len == strlen(s->tag) &&
					 !memcmp(ev.vals[k].tag, s->tag, ev.vals[k].tag_len) &&
					 ev.vals[k].value == (float)s->v,
				 "event %d value %d: %g", i, k, (double)ev.vals[k].value);
		}
	}
	recs_free(&want);
	recs_free(&got);
}

/* File name: events.out.tfevents.TIME.HOST.PID.N; a second writer in the
 * same directory and second gets the next N. */
static void test_file_names(void)
{
	char dir[512], host[256] = "";
	snprintf(dir, sizeof(dir), "%s/names", tt_tmpdir());
	gethostname(host, sizeof(host) - 1);
	struct tk_tb w1, w2;
	struct tk_diag d;
	time_t before = time(NULL);
	TT_REQUIRE(!tk_tboard_open(&w1, dir, &d), "%s", d.msg);
	TT_REQUIRE(!tk_tboard_open(&w2, dir, &d), "%s", d.msg);
	time_t after = time(NULL);
	const char *base = strrchr(w1.path, '/') + 1;
	long long t;
	char rest[512];
	TT_CHECK(sscanf(base, "events.out.tfevents.%10lld.%511s", &t, rest) == 2 &&
			 t >= before && t <= after && strlen(base) > 31 && base[30] == '.',
		 "name %s", base);
	char want[600];
	snprintf(want, sizeof(want), "%s.%ld.", host, (long)getpid());
	TT_CHECK(!strncmp(rest, want, strlen(want)), "name %s, want host.pid %s", base, want);
	TT_CHECK(strcmp(w1.path, w2.path) != 0, "two writers share %s", w1.path);
	TT_CHECK(!tk_tboard_close(&w1, &d) && !tk_tboard_close(&w2, &d), "%s", d.msg);
	int count;
	event_file(dir, &count);
	TT_CHECK(count == 2, "%d files", count);
}

/* A directory that cannot be made: TK_E_IO naming it, no file. */
static void test_open_fails(void)
{
	char file[512], dir[600];
	snprintf(file, sizeof(file), "%s/plain-file", tt_tmpdir());
	FILE *fp = fopen(file, "w");
	TT_REQUIRE(fp, "cannot make %s", file);
	fclose(fp);
	snprintf(dir, sizeof(dir), "%s/runs", file);
	struct tk_tb w;
	struct tk_diag d;
	tk_diag_clear(&d);
	int rc = tk_tboard_open(&w, dir, &d);
	TT_CHECK(rc == TK_E_IO && d.sys_errno == ENOTDIR && !strcmp(d.path, file) &&
			 !strcmp(d.msg, "cannot create directory"),
		 "rc %d errno %d path %s msg %s", rc, d.sys_errno, d.path, d.msg);
	TT_CHECK(w.fp == NULL && w.path == NULL, "writer left open");
	TT_CHECK(!tk_tboard_close(&w, &d), "close of a failed writer");
	rc = tk_tboard_open(&w, "", &d);
	TT_CHECK(rc == TK_E_INVAL, "empty dir: rc %d", rc);
	if (geteuid() != 0) { /* root may write anywhere */
		snprintf(dir, sizeof(dir), "%s/ro", tt_tmpdir());
		mkdir(dir, 0555);
		rc = tk_tboard_open(&w, dir, &d);
		int count;
		event_file(dir, &count);
		TT_CHECK(rc == TK_E_IO && d.sys_errno == EACCES && count == 0,
			 "read-only dir: rc %d errno %d, %d files", rc, d.sys_errno, count);
	}
}

/* Damaged files: a flipped bit in the data or the length, a cut record. */
static void test_damage(void)
{
	struct tk_buf b = { 0 };
	struct tk_diag d;
	TT_REQUIRE(!tk_read_file(tt_fixture("tboard/events.bin"), &b, &d), "%s", d.msg);
	size_t first = 12 + 24 + 4; /* the file_version record */
	TT_REQUIRE(b.len > first + 40, "fixture too short");
	struct {
		size_t at;     /* byte to flip, or (cut) new length */
		int cut, want; /* expected status of the second read */
	} cases[] = {
		{ first + 20, 0, TK_E_CHECKSUM }, /* data */
		{ first + 1, 0, TK_E_CHECKSUM },  /* length */
		{ first + 9, 0, TK_E_CHECKSUM },  /* length crc */
		{ first + 30, 1, TK_E_FORMAT },   /* cut in the data */
		{ first + 5, 1, TK_E_FORMAT },    /* cut in the header */
	};
	char path[512];
	snprintf(path, sizeof(path), "%s/damaged", tt_tmpdir());
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *fp = fopen(path, "w+b");
		TT_REQUIRE(fp, "cannot make %s", path);
		b.data[cases[i].at] ^= cases[i].cut ? 0 : 0x10;
		fwrite(b.data, 1, cases[i].cut ? cases[i].at : b.len, fp);
		b.data[cases[i].at] ^= cases[i].cut ? 0 : 0x10;
		rewind(fp);
		struct tk_buf rec = { 0 };
		int r1 = tk_tboard_read_record(fp, path, &rec, &d);
		tk_diag_clear(&d);
		int r2 = tk_tboard_read_record(fp, path, &rec, &d);
		TT_CHECK(r1 == 1 && r2 == cases[i].want && !strcmp(d.path, path) &&
				 strstr(d.msg, "record at byte 40"),
			 "case %zu: %d %d %s", i, r1, r2, d.msg);
		tk_buf_free(&rec);
		fclose(fp);
	}
	tk_buf_free(&b);
}

/* Malformed protobuf: every prefix of a real event and some junk decode
 * to an error or to fewer fields, never out of bounds (run under asan). */
static void test_decode_malformed(void)
{
	struct recs r;
	struct tk_diag d;
	TT_REQUIRE(!read_all(tt_fixture("tboard/events.bin"), &r, &d) && r.n > 1, "fixture");
	struct tk_buf *x = &r.data[1];
	struct tk_tboard_event ev;
	int bad = 0;
	for (size_t n = 0; n < x->len; n++) {
		char *p = malloc(n ? n : 1);
		memcpy(p, x->data, n);
		bad += tk_tboard_decode_event(p, n, &ev) == TK_E_FORMAT;
		free(p);
	}
	TT_CHECK(bad > 0, "no prefix was rejected");
	const unsigned char junk[][4] = { { 0x0b, 0, 0, 0 },     /* group wire type */
					  { 0x2a, 0x7f, 0, 0 },  /* length past the end */
					  { 0x00, 0, 0, 0 } };   /* field 0 */
	for (int i = 0; i < 3; i++)
		TT_CHECK(tk_tboard_decode_event(junk[i], 4, &ev) == TK_E_FORMAT, "junk %d accepted", i);
	recs_free(&r);
}

int main(void)
{
	memset(long_tag, 'x', 200);
	TT_RUN(test_matches_tensorboard);
	TT_RUN(test_file_names);
	TT_RUN(test_open_fails);
	TT_RUN(test_damage);
	TT_RUN(test_decode_malformed);
	return tt_done();
}

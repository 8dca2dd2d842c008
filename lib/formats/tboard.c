/* tboard.c - TensorBoard event files (see tboard.h).
 *
 * The few protobuf fields are encoded by hand (tensorflow/core/util/
 * event.proto and framework/summary.proto):
 *
 *	Event    { double wall_time = 1; int64 step = 2;
 *		   string file_version = 3; Summary summary = 5; }
 *	Summary  { repeated Value value = 1; }
 *	Value    { string tag = 1; float simple_value = 2; }
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "formats/tboard.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static uint32_t masked_crc(const void *p, size_t n)
{
	uint32_t c = tk_crc32c(0, p, n);
	return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static size_t put_varint(unsigned char *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int append_varint(struct tk_buf *b, uint64_t v)
{
	unsigned char tmp[10];
	return tk_buf_append(b, tmp, put_varint(tmp, v));
}

/* A field key and, for length-delimited fields, the length. */
static int append_key(struct tk_buf *b, int field, int wt)
{
	return append_varint(b, (uint64_t)(field << 3 | wt));
}

static double now_wall(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* Writes one TFRecord holding data. */
static int write_record(struct tk_tb *w, const void *data, size_t n, struct tk_diag *d)
{
	unsigned char head[12], tail[4];
	put_le(head, n, 8);
	put_le(head + 8, masked_crc(head, 8), 4);
	put_le(tail, masked_crc(data, n), 4);
	if (fwrite(head, 1, 12, w->fp) != 12 || fwrite(data, 1, n, w->fp) != n ||
	    fwrite(tail, 1, 4, w->fp) != 4)
		return tk_diag_sys(d, w->path, "write failed");
	return 0;
}

/* Serializes an event with wall_time, step and either file_version (vers)
 * or a summary (the w->rec bytes) into out. */
static int encode_event(struct tk_buf *out, double wall_time, long long step, const char *vers,
			const struct tk_buf *summary)
{
	unsigned char t[8];
	uint64_t bits;
	memcpy(&bits, &wall_time, 8);
	put_le(t, bits, 8);
	int rc = append_key(out, 1, WT_I64);
	if (!rc)
		rc = tk_buf_append(out, t, 8);
	if (!rc && step)
		if (!(rc = append_key(out, 2, WT_VARINT)))
			rc = append_varint(out, (uint64_t)step);
	const void *p = vers ? (const void *)vers : summary->data;
	size_t n = vers ? strlen(vers) : summary->len;
	if (!rc)
		rc = append_key(out, vers ? 3 : 5, WT_LEN);
	if (!rc)
		rc = append_varint(out, n);
	if (!rc)
		rc = tk_buf_append(out, p, n);
	return rc;
}

/* mkdir -p: creates dir and its missing parents. */
static int make_dirs(const char *dir, struct tk_diag *d)
{
	size_t n = strlen(dir);
	char *p = malloc(n + 1);
	if (!p)
		return tk_diag_set(d, TK_E_NOMEM, dir, -1, "out of memory");
	memcpy(p, dir, n + 1);
	int rc = 0;
	for (size_t i = 1; i <= n && !rc; i++) {
		if (p[i] != '/' && p[i] != 0)
			continue;
		if (p[i - 1] == '/')
			continue;
		char c = p[i];
		p[i] = 0;
		struct stat st;
		if (mkdir(p, 0755) && errno != EEXIST)
			rc = tk_diag_sys(d, p, "cannot create directory");
		else if (stat(p, &st))
			rc = tk_diag_sys(d, p, "cannot create directory");
		else if (!S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			rc = tk_diag_sys(d, p, "cannot create directory");
		}
		p[i] = c;
	}
	free(p);
	return rc;
}

int tk_tboard_open(struct tk_tb *w, const char *dir, struct tk_diag *d)
{
	memset(w, 0, sizeof(*w));
	if (!dir || !*dir || strlen(dir) > 3000)
		return tk_diag_set(d, TK_E_INVAL, dir, -1, "bad logging directory name");
	int rc = make_dirs(dir, d);
	if (rc)
		return rc;
	char host[256] = "localhost";
	if (gethostname(host, sizeof(host) - 1) || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = 0;
	for (char *c = host; *c; c++)
		if (*c == '/')
			*c = '_';
	double now = now_wall();
	size_t cap = strlen(dir) + strlen(host) + 96;
	if (!(w->path = malloc(cap)))
		return tk_diag_set(d, TK_E_NOMEM, dir, -1, "out of memory");
	int fd = -1;
	for (int n = 0; fd < 0 && n < 1000; n++) {
		snprintf(w->path, cap, "%s/events.out.tfevents.%010lld.%s.%ld.%d", dir,
			 (long long)now, host, (long)getpid(), n);
		fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		rc = tk_diag_sys(d, w->path, "cannot create event file");
		free(w->path);
		w->path = NULL;
		return rc;
	}
	if (!(w->fp = fdopen(fd, "wb"))) {
		rc = tk_diag_sys(d, w->path, "cannot create event file");
		close(fd);
		goto fail;
	}
	struct tk_buf ev = { 0 };
	rc = encode_event(&ev, now, 0, "brain.Event:2", NULL);
	if (rc)
		tk_diag_set(d, rc, w->path, -1, "out of memory");
	else
		rc = write_record(w, ev.data, ev.len, d);
	tk_buf_free(&ev);
	if (!rc && (rc = tk_tboard_flush(w, d)) == 0)
		return 0;
fail:
	unlink(w->path);
	if (w->fp)
		fclose(w->fp);
	w->fp = NULL;
	free(w->path);
	w->path = NULL;
	return rc;
}

void tk_tboard_begin(struct tk_tb *w, long long step, double wall_time)
{
	w->rec.len = 0;
	w->nvals = 0;
	w->step = step;
	w->wall_time = wall_time > 0 ? wall_time : now_wall();
}

int tk_tboard_scalar(struct tk_tb *w, const char *tag, double v)
{
	size_t n = strlen(tag);
	float f = (float)v;
	uint32_t bits;
	memcpy(&bits, &f, 4);
	unsigned char val[4];
	put_le(val, bits, 4);
	/* Value: tag (key, length, bytes) and simple_value (key, 4 bytes) */
	unsigned char tmp[10];
	size_t vlen = 1 + put_varint(tmp, n) + n + 1 + 4;
	size_t keep = w->rec.len;
	int rc = append_key(&w->rec, 1, WT_LEN);
	if (!rc)
		rc = append_varint(&w->rec, vlen);
	if (!rc)
		rc = append_key(&w->rec, 1, WT_LEN);
	if (!rc)
		rc = append_varint(&w->rec, n);
	if (!rc)
		rc = tk_buf_append(&w->rec, tag, n);
	if (!rc)
		rc = append_key(&w->rec, 2, WT_I32);
	if (!rc)
		rc = tk_buf_append(&w->rec, val, 4);
	if (rc) {
		w->rec.len = keep;
		return rc;
	}
	w->nvals++;
	return 0;
}

int tk_tboard_end(struct tk_tb *w, struct tk_diag *d)
{
	if (!w->nvals)
		return 0;
	struct tk_buf ev = { 0 };
	int rc = encode_event(&ev, w->wall_time, w->step, NULL, &w->rec);
	if (rc)
		tk_diag_set(d, rc, w->path, -1, "out of memory");
	else
		rc = write_record(w, ev.data, ev.len, d);
	tk_buf_free(&ev);
	w->rec.len = 0;
	w->nvals = 0;
	return rc;
}

int tk_tboard_flush(struct tk_tb *w, struct tk_diag *d)
{
	if (w->fp && fflush(w->fp))
		return tk_diag_sys(d, w->path, "write failed");
	return 0;
}

int tk_tboard_close(struct tk_tb *w, struct tk_diag *d)
{
	int rc = 0;
	if (w->fp) {
		if (fflush(w->fp) || fsync(fileno(w->fp)))
			rc = tk_diag_sys(d, w->path, "write failed");
		if (fclose(w->fp) && !rc)
			rc = tk_diag_sys(d, w->path, "write failed");
	}
	free(w->path);
	tk_buf_free(&w->rec);
	memset(w, 0, sizeof(*w));
	return rc;
}

int tk_tboard_read_record(FILE *fp, const char *path, struct tk_buf *rec, struct tk_diag *d)
{
	long long off = ftello(fp);
	unsigned char head[12], tail[4];
	size_t got = fread(head, 1, 12, fp);
	if (got == 0 && feof(fp))
		return 0;
	if (ferror(fp))
		return tk_diag_sys(d, path, "read failed");
	if (got < 12)
		goto cut;
	uint64_t n = get_le(head, 8);
	if ((uint32_t)get_le(head + 8, 4) != masked_crc(head, 8)) {
		return tk_diag_set(d, TK_E_CHECKSUM, path, -1,
				   "record at byte %lld: length crc mismatch", off);
	}
	if (n > (1u << 30))
		return tk_diag_set(d, TK_E_FORMAT, path, -1, "record at byte %lld: too long", off);
	rec->len = 0;
	if (tk_buf_reserve(rec, (size_t)n + 1))
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	if (fread(rec->data, 1, (size_t)n, fp) != n || fread(tail, 1, 4, fp) != 4) {
		if (ferror(fp))
			return tk_diag_sys(d, path, "read failed");
		goto cut;
	}
	rec->len = (size_t)n;
	if ((uint32_t)get_le(tail, 4) != masked_crc(rec->data, rec->len))
		return tk_diag_set(d, TK_E_CHECKSUM, path, -1,
				   "record at byte %lld: data crc mismatch", off);
	return 1;
cut:
	return tk_diag_set(d, TK_E_FORMAT, path, -1, "record at byte %lld: cut short", off);
}

/* Protobuf wire reading: a cursor over [p, end). */
struct pb {
	const unsigned char *p, *end;
};

static int pb_varint(struct pb *b, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (b->p >= b->end)
			return TK_E_FORMAT;
		unsigned char c = *b->p++;
		*v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return 0;
	}
	return TK_E_FORMAT;
}

/* Reads a key; for WT_LEN fields sets *sub to the field's bytes, for the
 * fixed ones *fixed to the value; skips nothing. */
static int pb_field(struct pb *b, int *field, int *wt, uint64_t *num, struct pb *sub)
{
	uint64_t key;
	if (pb_varint(b, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
		return TK_E_FORMAT;
	*field = (int)(key >> 3);
	*wt = (int)(key & 7);
	switch (*wt) {
	case WT_VARINT:
		return pb_varint(b, num);
	case WT_I64:
	case WT_I32: {
		int n = *wt == WT_I64 ? 8 : 4;
		if (b->end - b->p < n)
			return TK_E_FORMAT;
		*num = get_le(b->p, n);
		b->p += n;
		return 0;
	}
	case WT_LEN:
		if (pb_varint(b, num) || *num > (uint64_t)(b->end - b->p))
			return TK_E_FORMAT;
		sub->p = b->p;
		sub->end = b->p + *num;
		b->p += *num;
		return 0;
	default:
		return TK_E_FORMAT;
	}
}

static int decode_value(struct pb v, struct tk_tboard_event *ev)
{
	const char *tag = "";
	size_t tag_len = 0;
	float value = 0;
	int have = 0, field, wt;
	uint64_t num;
	struct pb sub;
	while (v.p < v.end) {
		if (pb_field(&v, &field, &wt, &num, &sub))
			return TK_E_FORMAT;
		if (field == 1 && wt == WT_LEN) {
			tag = (const char *)sub.p;
			tag_len = (size_t)(sub.end - sub.p);
		} else if (field == 2 && wt == WT_I32) {
			uint32_t bits = (uint32_t)num;
			memcpy(&value, &bits, 4);
			have = 1;
		}
	}
	if (have && ev->nvals < (int)(sizeof(ev->vals) / sizeof(ev->vals[0]))) {
		ev->vals[ev->nvals].tag = tag;
		ev->vals[ev->nvals].tag_len = tag_len;
		ev->vals[ev->nvals].value = value;
		ev->nvals++;
	}
	return 0;
}

int tk_tboard_decode_event(const void *data, size_t n, struct tk_tboard_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	struct pb b = { data, (const unsigned char *)data + n }, sub;
	int field, wt;
	uint64_t num;
	while (b.p < b.end) {
		if (pb_field(&b, &field, &wt, &num, &sub))
			return TK_E_FORMAT;
		if (field == 1 && wt == WT_I64) {
			memcpy(&ev->wall_time, &num, 8);
		} else if (field == 2 && wt == WT_VARINT) {
			ev->step = (long long)num;
		} else if (field == 3 && wt == WT_LEN) {
			size_t len = (size_t)(sub.end - sub.p);
			if (len >= sizeof(ev->file_version))
				len = sizeof(ev->file_version) - 1;
			memcpy(ev->file_version, sub.p, len);
			ev->file_version[len] = 0;
		} else if (field == 5 && wt == WT_LEN) {
			struct pb s = sub, v;
			while (s.p < s.end) {
				if (pb_field(&s, &field, &wt, &num, &v))
					return TK_E_FORMAT;
				if (field == 1 && wt == WT_LEN && decode_value(v, ev))
					return TK_E_FORMAT;
			}
		}
	}
	return 0;
}

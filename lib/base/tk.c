/* tk.c - error strings, diagnostics, small memory and hashing helpers. */
#include "base/tk.h"

#include "base/rng.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tk_strerror(int err)
{
	switch (err) {
	case TK_OK: return "success";
	case TK_E_IO: return "input/output error";
	case TK_E_FORMAT: return "malformed data";
	case TK_E_NOMEM: return "out of memory";
	case TK_E_DEVICE: return "device error";
	case TK_E_UNSUPPORTED: return "not supported";
	case TK_E_INVAL: return "invalid argument";
	case TK_E_MISMATCH: return "inputs do not match";
	case TK_E_CHECKSUM: return "checksum mismatch";
	case TK_E_EXISTS: return "output exists";
	}
	return "unknown error";
}

void tk_diag_clear(struct tk_diag *d)
{
	if (!d)
		return;
	d->path[0] = '\0';
	d->line = -1;
	d->offset = -1;
	d->sys_errno = 0;
	d->msg[0] = '\0';
}

static void diag_vset(struct tk_diag *d, const char *path, long long line,
		      const char *fmt, va_list ap)
{
	tk_diag_clear(d);
	if (path)
		snprintf(d->path, sizeof(d->path), "%s", path);
	d->line = line;
	vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
}

int tk_diag_set(struct tk_diag *d, int err, const char *path, long long line,
		const char *fmt, ...)
{
	if (d) {
		va_list ap;
		va_start(ap, fmt);
		diag_vset(d, path, line, fmt, ap);
		va_end(ap);
	}
	return err;
}

int tk_diag_sys(struct tk_diag *d, const char *path, const char *fmt, ...)
{
	int e = errno;
	if (d) {
		va_list ap;
		va_start(ap, fmt);
		diag_vset(d, path, -1, fmt, ap);
		va_end(ap);
		d->sys_errno = e;
	}
	errno = e;
	return TK_E_IO;
}

size_t tk_str_escape(char *dst, size_t n, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		char esc[8];
		size_t m = 0;
		if (*p == '\n' || *p == '\r' || *p == '\t') {
			esc[m++] = '\\';
			esc[m++] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
		} else if (*p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)) {
			int two = *p == 0xc2;
			for (int b = 0; b <= two; b++) {
				esc[m++] = '\\';
				esc[m++] = 'x';
				esc[m++] = hex[p[b] >> 4];
				esc[m++] = hex[p[b] & 15];
			}
			p += two;
		} else {
			esc[m++] = (char)*p;
		}
		for (size_t i = 0; i < m; i++, k++)
			if (k + 1 < n)
				dst[k] = esc[i];
	}
	if (n)
		dst[k < n ? k : n - 1] = '\0';
	return k;
}

void *tk_mallocn(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return malloc((n && size) ? n * size : 1);
}

void *tk_reallocn(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return realloc(p, (n && size) ? n * size : 1);
}

int tk_grow(void *pp, size_t *cap, size_t n, size_t sz)
{
	void **p = pp;
	if (n <= *cap)
		return 0;
	size_t c = *cap ? *cap : 64;
	while (c < n)
		c = c > SIZE_MAX / 4 ? n : c * 2;
	void *q = tk_reallocn(*p, c, sz);
	if (!q)
		return TK_E_NOMEM;
	*p = q;
	*cap = c;
	return 0;
}

int tk_buf_reserve(struct tk_buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len - 1)
		return TK_E_NOMEM;
	size_t need = b->len + extra + 1; /* room for a NUL */
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return TK_E_NOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int tk_buf_append(struct tk_buf *b, const void *p, size_t n)
{
	int rc = tk_buf_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

void tk_buf_free(struct tk_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int tk_read_file(const char *path, struct tk_buf *out, struct tk_diag *d)
{
	int is_stdin = strcmp(path, "-") == 0;
	FILE *fp = is_stdin ? stdin : fopen(path, "rb");
	if (!fp)
		return tk_diag_sys(d, path, "cannot open");
	out->len = 0;
	int rc = tk_buf_reserve(out, 0);
	for (;;) {
		if (rc)
			break;
		if ((rc = tk_buf_reserve(out, 1 << 16)))
			break;
		size_t n = fread(out->data + out->len, 1, out->cap - out->len - 1, fp);
		out->len += n;
		out->data[out->len] = '\0';
		if (n == 0)
			break;
	}
	if (!rc && ferror(fp))
		rc = tk_diag_sys(d, path, "read failed");
	else if (rc)
		tk_diag_set(d, rc, path, -1, "out of memory reading the file");
	if (!is_stdin)
		fclose(fp);
	return rc;
}

uint64_t tk_fnv1a64(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint64_t tk_splitmix64(uint64_t *x)
{
	return tk_mix64(*x += TK_SPLITMIX64_GAMMA);
}

void tk_rng_seed(struct tk_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = tk_splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t tk_rng_next(struct tk_rng *r)
{
	uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

double tk_rng_double(struct tk_rng *r)
{
	return (double)(tk_rng_next(r) >> 11) * 0x1.0p-53;
}

static uint32_t crc32c_table[8][256];

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
		crc32c_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc32c_table[t][i] = (crc32c_table[t - 1][i] >> 8) ^
					     crc32c_table[0][crc32c_table[t - 1][i] & 0xff];
}

uint32_t tk_crc32c(uint32_t crc, const void *p, size_t n)
{
	static int ready; /* the table is written identically by every racer */
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		crc32c_init();
		__atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
	}
	const unsigned char *s = p;
	crc = ~crc;
	while (n >= 8) { /* slicing-by-8 */
		uint32_t lo = crc ^ ((uint32_t)s[0] | (uint32_t)s[1] << 8 |
				     (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24);
		crc = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
		      crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
		      crc32c_table[3][s[4]] ^ crc32c_table[2][s[5]] ^
		      crc32c_table[1][s[6]] ^ crc32c_table[0][s[7]];
		s += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *s++) & 0xff];
	return ~crc;
}

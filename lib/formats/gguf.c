/* gguf.c - reading GGUF v2/v3 files (mmap, validated before use).
 * Dequantization is in gguf-quant.c, the tokenizer.json builder in
 * gguf-vocab.c.
 */
#include "formats/gguf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAX_NAME 65535
#define GGUF_DEFAULT_ALIGNMENT 32

struct tk_gguf {
	char *path;
	const uint8_t *map;
	size_t size;
	uint32_t version, alignment;
	struct tk_gguf_kv *kv;
	size_t nkv;
	struct tk_gguf_tensor *t;
	size_t nt;
	size_t *kv_sorted, *t_sorted; /* indices sorted by name, for lookups */
	uint64_t data_start;
};

struct cur {
	const tk_gguf_t *g;
	uint64_t pos;
	struct tk_diag *d;
};

/* TK_E_FORMAT at the current position. */
__attribute__((format(printf, 2, 3)))
static int lie(struct cur *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int rc = tk_diag_set(c->d, TK_E_FORMAT, c->g->path, -1, "%s", msg);
	if (c->d)
		c->d->offset = (long long)c->pos;
	return rc;
}

static int need(struct cur *c, uint64_t n, const char *what)
{
	if (n > c->g->size - c->pos)
		return lie(c, "truncated: %s at byte %llu runs past the end of the file", what,
			   (unsigned long long)c->pos);
	return 0;
}

static uint64_t rd(struct cur *c, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)c->g->map[c->pos + i] << (8 * i);
	c->pos += (uint64_t)n;
	return v;
}

static int rd_u32(struct cur *c, uint32_t *v, const char *what)
{
	int rc = need(c, 4, what);
	if (!rc)
		*v = (uint32_t)rd(c, 4);
	return rc;
}

static int rd_u64(struct cur *c, uint64_t *v, const char *what)
{
	int rc = need(c, 8, what);
	if (!rc)
		*v = rd(c, 8);
	return rc;
}

/* A string: u64 length and bytes, checked against the bytes left. */
static int rd_str(struct cur *c, struct tk_gguf_str *s, const char *what)
{
	uint64_t n;
	int rc = rd_u64(c, &n, what);
	if (rc)
		return rc;
	if (n > c->g->size - c->pos) {
		c->pos -= 8;
		return lie(c, "%s length %llu runs past the end of the file", what,
			   (unsigned long long)n);
	}
	s->p = (const char *)c->g->map + c->pos;
	s->n = n;
	c->pos += n;
	return 0;
}

/* A name (key or tensor): a string without NULs, copied. */
static int rd_name(struct cur *c, char **out, const char *what)
{
	struct tk_gguf_str s;
	uint64_t at = c->pos;
	int rc = rd_str(c, &s, what);
	if (rc)
		return rc;
	if (!s.n || s.n > GGUF_MAX_NAME || memchr(s.p, 0, s.n)) {
		c->pos = at;
		return lie(c, "%s is empty, too long or holds a NUL byte", what);
	}
	*out = malloc(s.n + 1);
	if (!*out)
		return tk_diag_set(c->d, TK_E_NOMEM, c->g->path, -1, "out of memory");
	memcpy(*out, s.p, s.n);
	(*out)[s.n] = '\0';
	return 0;
}

static const int scalar_size[TK_GGUF_VTYPE_COUNT] = {
	[TK_GGUF_U8] = 1, [TK_GGUF_I8] = 1, [TK_GGUF_U16] = 2, [TK_GGUF_I16] = 2,
	[TK_GGUF_U32] = 4, [TK_GGUF_I32] = 4, [TK_GGUF_F32] = 4, [TK_GGUF_BOOL] = 1,
	[TK_GGUF_U64] = 8, [TK_GGUF_I64] = 8, [TK_GGUF_F64] = 8,
};

static int is_int_type(int t)
{
	return t == TK_GGUF_U8 || t == TK_GGUF_I8 || t == TK_GGUF_U16 || t == TK_GGUF_I16 ||
	       t == TK_GGUF_U32 || t == TK_GGUF_I32 || t == TK_GGUF_U64 || t == TK_GGUF_I64 ||
	       t == TK_GGUF_BOOL;
}

/* Decodes a scalar of type t at p into kv's i/u/f. */
static void scalar(struct tk_gguf_kv *kv, int t, const uint8_t *p)
{
	uint64_t raw = 0;
	float f32;
	double f64;
	for (int i = 0; i < scalar_size[t]; i++)
		raw |= (uint64_t)p[i] << (8 * i);
	switch (t) {
	case TK_GGUF_I8: kv->i = (int8_t)raw; break;
	case TK_GGUF_I16: kv->i = (int16_t)raw; break;
	case TK_GGUF_I32: kv->i = (int32_t)raw; break;
	case TK_GGUF_I64: kv->i = (int64_t)raw; break;
	case TK_GGUF_BOOL: kv->i = raw != 0; break;
	case TK_GGUF_F32:
		memcpy(&f32, p, 4);
		kv->f = f32;
		return;
	case TK_GGUF_F64:
		memcpy(&f64, p, 8);
		kv->f = f64;
		return;
	default: /* unsigned */
		kv->u = raw;
		kv->i = raw > INT64_MAX ? INT64_MAX : (int64_t)raw;
		kv->f = (double)raw;
		return;
	}
	kv->u = kv->i < 0 ? 0 : (uint64_t)kv->i;
	kv->f = (double)kv->i;
}

static int rd_value(struct cur *c, struct tk_gguf_kv *kv)
{
	int rc;
	uint32_t t;
	if ((rc = rd_u32(c, &t, "value type")))
		return rc;
	if (t >= TK_GGUF_VTYPE_COUNT) {
		c->pos -= 4;
		return lie(c, "key '%s' has unknown value type %u", kv->key, t);
	}
	kv->type = (int)t;
	if (t == TK_GGUF_STRING) {
		struct tk_gguf_str s;
		if ((rc = rd_str(c, &s, "string value")))
			return rc;
		char *copy = malloc(s.n + 1);
		if (!copy)
			return tk_diag_set(c->d, TK_E_NOMEM, c->g->path, -1, "out of memory");
		memcpy(copy, s.p, s.n);
		copy[s.n] = '\0';
		kv->s = copy;
		kv->sn = s.n;
		return 0;
	}
	if (t != TK_GGUF_ARRAY) {
		if ((rc = need(c, (uint64_t)scalar_size[t], "value")))
			return rc;
		scalar(kv, (int)t, c->g->map + c->pos);
		c->pos += (uint64_t)scalar_size[t];
		return 0;
	}
	uint32_t at;
	uint64_t n;
	if ((rc = rd_u32(c, &at, "array type")) || (rc = rd_u64(c, &n, "array length")))
		return rc;
	if (at >= TK_GGUF_VTYPE_COUNT || at == TK_GGUF_ARRAY) {
		c->pos -= 12;
		return lie(c, "key '%s' is an array of unsupported type %u", kv->key, at);
	}
	kv->arr_type = (int)at;
	kv->n = n;
	uint64_t left = c->g->size - c->pos;
	if (at == TK_GGUF_STRING) {
		if (n > left / 8) {
			c->pos -= 8;
			return lie(c, "array '%s' claims %llu strings, more than the file holds",
				   kv->key, (unsigned long long)n);
		}
		struct tk_gguf_str *s = tk_mallocn(n ? n : 1, sizeof(*s));
		if (!s)
			return tk_diag_set(c->d, TK_E_NOMEM, c->g->path, -1, "out of memory");
		kv->strs = s;
		for (uint64_t i = 0; i < n; i++)
			if ((rc = rd_str(c, &s[i], "array string")))
				return rc;
		return 0;
	}
	if (n > left / (uint64_t)scalar_size[at]) {
		c->pos -= 8;
		return lie(c, "array '%s' claims %llu elements, more than the file holds", kv->key,
			   (unsigned long long)n);
	}
	kv->data = c->g->map + c->pos;
	c->pos += n * (uint64_t)scalar_size[at];
	return 0;
}

static const tk_gguf_t *sort_ctx;

static int cmp_kv(const void *a, const void *b)
{
	return strcmp(sort_ctx->kv[*(const size_t *)a].key, sort_ctx->kv[*(const size_t *)b].key);
}

static int cmp_t(const void *a, const void *b)
{
	return strcmp(sort_ctx->t[*(const size_t *)a].name, sort_ctx->t[*(const size_t *)b].name);
}

static int cmp_off(const void *a, const void *b)
{
	const struct tk_gguf_tensor *x = &sort_ctx->t[*(const size_t *)a];
	const struct tk_gguf_tensor *y = &sort_ctx->t[*(const size_t *)b];
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int sorted_index(tk_gguf_t *g, size_t n, size_t **out, int (*cmp)(const void *, const void *))
{
	size_t *v = tk_mallocn(n ? n : 1, sizeof(*v));
	if (!v)
		return TK_E_NOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = i;
	sort_ctx = g; /* qsort has no context argument in C11 */
	qsort(v, n, sizeof(*v), cmp);
	*out = v;
	return 0;
}

static int rd_tensor(struct cur *c, struct tk_gguf_tensor *t)
{
	uint32_t nd, type;
	int rc;
	if ((rc = rd_name(c, (char **)&t->name, "tensor name")))
		return rc;
	if ((rc = rd_u32(c, &nd, "tensor rank")))
		return rc;
	if (nd < 1 || nd > 4) {
		c->pos -= 4;
		return lie(c, "tensor '%s' has rank %u (1 to 4 allowed)", t->name, nd);
	}
	t->ndim = (int)nd;
	uint64_t nelem = 1;
	for (uint32_t i = 0; i < 4; i++)
		t->ne[i] = 1;
	for (uint32_t i = 0; i < nd; i++) {
		uint64_t v;
		if ((rc = rd_u64(c, &v, "tensor dimension")))
			return rc;
		if (v > INT64_MAX || (v && nelem > INT64_MAX / v)) {
			c->pos -= 8;
			return lie(c, "tensor '%s' has a dimension of %llu: too many elements",
				   t->name, (unsigned long long)v);
		}
		t->ne[i] = (int64_t)v;
		nelem *= v;
	}
	t->nelem = nelem;
	if ((rc = rd_u32(c, &type, "tensor type")))
		return rc;
	t->type = (int)type;
	int bs = tk_ggml_block_size((int)type);
	if (!bs) {
		c->pos -= 4;
		rc = tk_diag_set(c->d, TK_E_UNSUPPORTED, c->g->path, -1,
				 "tensor '%s' has unknown ggml type %u", t->name, type);
		if (c->d)
			c->d->offset = (long long)c->pos;
		return rc;
	}
	if (t->ne[0] % bs) {
		c->pos -= 4;
		return lie(c, "tensor '%s': row length %llu is not a whole number of blocks",
			   t->name, (unsigned long long)t->ne[0]);
	}
	t->nbytes = nelem / (uint64_t)bs * (uint64_t)tk_ggml_type_size((int)type);
	if (nelem / (uint64_t)bs > UINT64_MAX / 1024) /* cannot fit any file */
		return lie(c, "tensor '%s' is larger than any file (%llu elements)", t->name,
			   (unsigned long long)nelem);
	return rd_u64(c, &t->offset, "tensor offset");
}

static int parse(tk_gguf_t *g, struct tk_diag *d)
{
	struct cur c = { g, 0, d };
	uint32_t magic;
	uint64_t nt, nkv;
	int rc;
	if ((rc = rd_u32(&c, &magic, "magic")))
		return rc;
	if (magic != 0x46554747) /* "GGUF" */ {
		c.pos = 0;
		return lie(&c, "not a GGUF file (bad magic)");
	}
	if ((rc = rd_u32(&c, &g->version, "version")))
		return rc;
	if (g->version != 2 && g->version != 3)
		return tk_diag_set(d, TK_E_UNSUPPORTED, g->path, -1,
				   "GGUF version %u is not supported (only 2 and 3)", g->version);
	if ((rc = rd_u64(&c, &nt, "tensor count")) || (rc = rd_u64(&c, &nkv, "key/value count")))
		return rc;
	uint64_t left = g->size - c.pos;
	/* a key/value takes at least 13 bytes, a tensor info 32 */
	if (nkv > left / 13) {
		c.pos -= 8;
		return lie(&c, "key/value count %llu is more than the file can hold",
			   (unsigned long long)nkv);
	}
	if (nt > left / 32) {
		c.pos -= 16;
		return lie(&c, "tensor count %llu is more than the file can hold",
			   (unsigned long long)nt);
	}
	g->kv = calloc(nkv ? nkv : 1, sizeof(*g->kv));
	g->t = calloc(nt ? nt : 1, sizeof(*g->t));
	if (!g->kv || !g->t)
		return tk_diag_set(d, TK_E_NOMEM, g->path, -1, "out of memory");
	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	for (uint64_t i = 0; i < nkv; i++) {
		struct tk_gguf_kv *kv = &g->kv[i];
		g->nkv++;
		if ((rc = rd_name(&c, (char **)&kv->key, "key")) || (rc = rd_value(&c, kv)))
			return rc;
		if (!strcmp(kv->key, "general.alignment")) {
			if (kv->type != TK_GGUF_U32 || !kv->u || (kv->u & (kv->u - 1)))
				return lie(&c, "general.alignment is not a power of two u32 (%llu)",
					   (unsigned long long)kv->u);
			g->alignment = (uint32_t)kv->u;
		}
	}
	if ((rc = sorted_index(g, g->nkv, &g->kv_sorted, cmp_kv)))
		return tk_diag_set(d, rc, g->path, -1, "out of memory");
	for (size_t i = 1; i < g->nkv; i++)
		if (!strcmp(g->kv[g->kv_sorted[i]].key, g->kv[g->kv_sorted[i - 1]].key))
			return tk_diag_set(d, TK_E_FORMAT, g->path, -1, "key '%s' appears twice",
					   g->kv[g->kv_sorted[i]].key);
	for (uint64_t i = 0; i < nt; i++) {
		g->nt++;
		if ((rc = rd_tensor(&c, &g->t[i])))
			return rc;
	}
	if ((rc = sorted_index(g, g->nt, &g->t_sorted, cmp_t)))
		return tk_diag_set(d, rc, g->path, -1, "out of memory");
	for (size_t i = 1; i < g->nt; i++)
		if (!strcmp(g->t[g->t_sorted[i]].name, g->t[g->t_sorted[i - 1]].name))
			return tk_diag_set(d, TK_E_FORMAT, g->path, -1, "tensor '%s' appears twice",
					   g->t[g->t_sorted[i]].name);
	uint64_t a = g->alignment;
	g->data_start = (c.pos + a - 1) / a * a;
	if (!g->nt)
		return 0;
	if (g->data_start > g->size)
		return tk_diag_set(d, TK_E_FORMAT, g->path, -1,
				   "truncated: the tensor data would start at byte %llu, past the end",
				   (unsigned long long)g->data_start);
	uint64_t room = g->size - g->data_start;
	for (size_t i = 0; i < g->nt; i++) {
		struct tk_gguf_tensor *t = &g->t[i];
		if (t->offset % a)
			return tk_diag_set(d, TK_E_FORMAT, g->path, -1,
					   "tensor '%s' has offset %llu, not a multiple of the alignment %u",
					   t->name, (unsigned long long)t->offset, g->alignment);
		if (t->offset > room || t->nbytes > room - t->offset)
			return tk_diag_set(d, TK_E_FORMAT, g->path, -1,
					   "tensor '%s' (%s, %llu bytes at offset %llu) runs past the end of the file",
					   t->name, tk_ggml_type_name(t->type),
					   (unsigned long long)t->nbytes, (unsigned long long)t->offset);
		t->data = g->map + g->data_start + t->offset;
	}
	size_t *by_off;
	if ((rc = sorted_index(g, g->nt, &by_off, cmp_off)))
		return tk_diag_set(d, rc, g->path, -1, "out of memory");
	for (size_t i = 1; i < g->nt && !rc; i++) {
		const struct tk_gguf_tensor *p = &g->t[by_off[i - 1]], *q = &g->t[by_off[i]];
		if (p->offset + p->nbytes > q->offset)
			rc = tk_diag_set(d, TK_E_FORMAT, g->path, -1, "tensors '%s' and '%s' overlap",
					 p->name, q->name);
	}
	free(by_off);
	return rc;
}

int tk_gguf_open(tk_gguf_t **out, const char *path, struct tk_diag *d)
{
	struct stat st;
	*out = NULL;
	tk_diag_clear(d);
	tk_gguf_t *g = calloc(1, sizeof(*g));
	if (!g || !(g->path = strdup(path))) {
		free(g);
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		int rc = tk_diag_sys(d, path, "cannot open");
		if (fd >= 0)
			close(fd);
		tk_gguf_close(g);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		tk_gguf_close(g);
		return tk_diag_set(d, TK_E_INVAL, path, -1, "not a regular file");
	}
	g->size = (size_t)st.st_size;
	if (g->size) {
		void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			int rc = tk_diag_sys(d, path, "cannot map");
			close(fd);
			g->size = 0;
			tk_gguf_close(g);
			return rc;
		}
		g->map = m;
	}
	close(fd);
	int rc = parse(g, d);
	if (rc) {
		tk_gguf_close(g);
		return rc;
	}
	*out = g;
	return 0;
}

void tk_gguf_close(tk_gguf_t *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nkv; i++) {
		free((char *)g->kv[i].key);
		free((char *)g->kv[i].s);
		free((void *)g->kv[i].strs);
	}
	for (size_t i = 0; i < g->nt; i++)
		free((char *)g->t[i].name);
	free(g->kv);
	free(g->t);
	free(g->kv_sorted);
	free(g->t_sorted);
	if (g->map)
		munmap((void *)g->map, g->size);
	free(g->path);
	free(g);
}

uint32_t tk_gguf_version(const tk_gguf_t *g)
{
	return g->version;
}

const char *tk_gguf_path(const tk_gguf_t *g)
{
	return g->path;
}

size_t tk_gguf_kv_count(const tk_gguf_t *g)
{
	return g->nkv;
}

const struct tk_gguf_kv *tk_gguf_kv_at(const tk_gguf_t *g, size_t i)
{
	return i < g->nkv ? &g->kv[i] : NULL;
}

const struct tk_gguf_kv *tk_gguf_find(const tk_gguf_t *g, const char *key)
{
	size_t lo = 0, hi = g->nkv;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(g->kv[g->kv_sorted[mid]].key, key);
		if (!c)
			return &g->kv[g->kv_sorted[mid]];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int wrong_type(const tk_gguf_t *g, const char *key, const char *want, struct tk_diag *d)
{
	return tk_diag_set(d, TK_E_FORMAT, g->path, -1, "key '%s' is not %s", key, want);
}

int tk_gguf_get_int(const tk_gguf_t *g, const char *key, int64_t def, int64_t *out,
		    struct tk_diag *d)
{
	const struct tk_gguf_kv *kv = tk_gguf_find(g, key);
	*out = def;
	if (!kv)
		return 0;
	if (!is_int_type(kv->type))
		return wrong_type(g, key, "an integer", d);
	*out = kv->i;
	return 0;
}

int tk_gguf_get_float(const tk_gguf_t *g, const char *key, double def, double *out,
		      struct tk_diag *d)
{
	const struct tk_gguf_kv *kv = tk_gguf_find(g, key);
	*out = def;
	if (!kv)
		return 0;
	if (kv->type == TK_GGUF_STRING || kv->type == TK_GGUF_ARRAY || kv->type == TK_GGUF_BOOL)
		return wrong_type(g, key, "a number", d);
	*out = kv->f;
	return 0;
}

int tk_gguf_get_str(const tk_gguf_t *g, const char *key, const char **out, struct tk_diag *d)
{
	const struct tk_gguf_kv *kv = tk_gguf_find(g, key);
	*out = NULL;
	if (!kv)
		return 0;
	if (kv->type != TK_GGUF_STRING)
		return wrong_type(g, key, "a string", d);
	*out = kv->s;
	return 0;
}

size_t tk_gguf_tensor_count(const tk_gguf_t *g)
{
	return g->nt;
}

const struct tk_gguf_tensor *tk_gguf_tensor_at(const tk_gguf_t *g, size_t i)
{
	return i < g->nt ? &g->t[i] : NULL;
}

const struct tk_gguf_tensor *tk_gguf_tensor_find(const tk_gguf_t *g, const char *name)
{
	size_t lo = 0, hi = g->nt;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(g->t[g->t_sorted[mid]].name, name);
		if (!c)
			return &g->t[g->t_sorted[mid]];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int tk_gguf_to_f32(const tk_gguf_t *g, const struct tk_gguf_tensor *t, float *dst,
		   struct tk_diag *d)
{
	if (!tk_ggml_can_dequantize(t->type))
		return tk_diag_set(d, TK_E_UNSUPPORTED, g->path, -1,
				   "tensor '%s' has type %s, which tk cannot dequantize "
				   "(supported: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k)",
				   t->name, tk_ggml_type_name(t->type));
	return tk_ggml_dequantize(t->type, t->data, dst, t->nelem);
}

int tk_gguf_is_gguf(const char *path)
{
	char m[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, m, 4);
	close(fd);
	return n == 4 && !memcmp(m, "GGUF", 4);
}

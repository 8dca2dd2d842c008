/* safetensors.c - see safetensors.h.
 *
 * Reading follows the rules of the safetensors library (Rust crate 0.8):
 * a header length of at most 100,000,000 bytes, a UTF-8 JSON object, and
 * tensors whose byte ranges, sorted by offset, tile the data area from its
 * first to its last byte with no gap, no overlap and nothing after.
 *
 * Writing produces the bytes that library's serialize() produces: tensors
 * ordered by dtype (largest alignment first, in the library's enum order)
 * and then by name, the header keys in that same order after
 * "__metadata__", compact JSON escaped as serde_json escapes, padded with
 * spaces to a multiple of 8 bytes.
 */
#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/afile.h"
#include "base/path.h"

#define ST_MAX_HEADER 100000000ULL

static const struct {
	const char *name;
	size_t size;
	int rank; /* position in the safetensors library's Dtype enum */
} dtypes[TK_DT_COUNT] = {
	[TK_DT_F32] = { "F32", 4, 17 },   [TK_DT_F16] = { "F16", 2, 13 },
	[TK_DT_BF16] = { "BF16", 2, 14 }, [TK_DT_F64] = { "F64", 8, 19 },
	[TK_DT_I8] = { "I8", 1, 5 },      [TK_DT_U8] = { "U8", 1, 4 },
	[TK_DT_I16] = { "I16", 2, 11 },   [TK_DT_U16] = { "U16", 2, 12 },
	[TK_DT_I32] = { "I32", 4, 15 },   [TK_DT_U32] = { "U32", 4, 16 },
	[TK_DT_I64] = { "I64", 8, 20 },   [TK_DT_U64] = { "U64", 8, 21 },
	[TK_DT_BOOL] = { "BOOL", 1, 0 },
};

/* Dtypes the safetensors format knows and tk does not read. */
static const char *const foreign_dtypes[] = {
	"F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0",
	"F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64",
};

const char *tk_dtype_name(enum tk_dtype t)
{
	return (unsigned)t < TK_DT_COUNT ? dtypes[t].name : "?";
}

size_t tk_dtype_size(enum tk_dtype t)
{
	return (unsigned)t < TK_DT_COUNT ? dtypes[t].size : 0;
}

int tk_dtype_parse(const char *name, enum tk_dtype *t)
{
	for (int i = 0; i < TK_DT_COUNT; i++)
		if (!strcmp(name, dtypes[i].name)) {
			*t = (enum tk_dtype)i;
			return 0;
		}
	return TK_E_FORMAT;
}

/* ---- fp16 / bf16 ---- */

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

float tk_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	if (exp == 31) /* NaN payload kept, quieted, as torch (F16C) does */
		return bits_f32(sign | 0x7f800000 | (man ? 0x400000 : 0) | (man << 13));
	if (exp)
		return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
	if (!man)
		return bits_f32(sign);
	/* subnormal: man * 2^-24, renormalised */
	uint32_t e = 113;
	while (!(man & 0x400)) {
		man <<= 1;
		e--;
	}
	return bits_f32(sign | (e << 23) | ((man & 0x3ff) << 13));
}

float tk_bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

/* As torch: NaN becomes the quiet NaN 0x7e00 with its sign. */
uint16_t tk_f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	x &= 0x7fffffff;
	if (x > 0x7f800000)
		return sign | 0x7e00;
	if (x >= 0x477ff000) /* 65520 and above round to infinity */
		return sign | 0x7c00;
	if (x >= 0x38800000) { /* normal: 2^-14 and above */
		uint32_t r = x + 0xfff + ((x >> 13) & 1);
		return sign | (uint16_t)((r - (112u << 23)) >> 13);
	}
	if (x <= 0x33000000) /* 2^-25 and below round to zero */
		return sign;
	/* subnormal: round man * 2^(exp - 126) to an integer, ties to even */
	uint32_t exp = x >> 23, man = (x & 0x7fffff) | 0x800000;
	uint32_t shift = 126 - exp;
	uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
	if (rem > half || (rem == half && (q & 1)))
		q++;
	return sign | (uint16_t)q;
}

/* As torch: NaN becomes the quiet NaN 0x7fc0 (its sign dropped). */
uint16_t tk_f32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);
	if ((x & 0x7fffffff) > 0x7f800000)
		return 0x7fc0;
	return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* ---- reading ---- */

struct st_file {
	char *path;
	void *map;
	size_t size;
};

struct tk_st {
	char *path;
	struct st_file *files;
	size_t nfiles;
	struct tk_tensor_info *t;
	uint64_t *begin;  /* data offset of each tensor, while parsing */
	size_t n, cap, bcap;
	size_t *by_name; /* indices of t sorted by name */
	char **meta;     /* key, value pairs of the first file's __metadata__ */
	size_t nmeta;
};

static int utf8_check(const unsigned char *s, size_t n, size_t *bad)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			goto bad;
		}
		if (i + len > n)
			goto bad;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				goto bad;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		i += len;
	}
	return 1;
bad:
	*bad = i;
	return 0;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_u64(const cJSON *v, uint64_t *out)
{
	if (!cJSON_IsNumber(v))
		return 0;
	double x = v->valuedouble;
	if (!(x >= 0 && x <= 9007199254740992.0) || x != floor(x))
		return 0;
	*out = (uint64_t)x;
	return 1;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
	size_t k = (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < ndim && k < n; i++) {
		if (shape[i] < 0)
			k += (size_t)snprintf(buf + k, n - k, "%s*", i ? ", " : "");
		else
			k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "",
					      (long long)shape[i]);
	}
	if (k < n)
		snprintf(buf + k, n - k, "]");
}

static int add_tensor(tk_safetensors_t *st, const char *file, const char *name, const cJSON *info,
		      struct tk_diag *d)
{
	if (!cJSON_IsObject(info))
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "tensor '%s': header entry is not an object", name);
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(info, "dtype");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(info, "shape");
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(info, "data_offsets");
	if (!cJSON_IsString(dt))
		return tk_diag_set(d, TK_E_FORMAT, file, -1, "tensor '%s': no dtype string", name);
	if (!cJSON_IsArray(sh))
		return tk_diag_set(d, TK_E_FORMAT, file, -1, "tensor '%s': no shape array", name);
	if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "tensor '%s': data_offsets is not an array of two numbers", name);
	enum tk_dtype dtype;
	if (tk_dtype_parse(dt->valuestring, &dtype)) {
		for (size_t i = 0; i < sizeof(foreign_dtypes) / sizeof(foreign_dtypes[0]); i++)
			if (!strcmp(dt->valuestring, foreign_dtypes[i]))
				return tk_diag_set(d, TK_E_UNSUPPORTED, file, -1,
						   "tensor '%s': dtype %s is not supported "
						   "(tk reads F32, F16, BF16, F64 and integers)",
						   name, dt->valuestring);
		return tk_diag_set(d, TK_E_FORMAT, file, -1, "tensor '%s': unknown dtype '%s'",
				   name, dt->valuestring);
	}
	int ndim = cJSON_GetArraySize(sh);
	if (ndim > TK_ST_MAX_DIMS)
		return tk_diag_set(d, TK_E_UNSUPPORTED, file, -1,
				   "tensor '%s': %d dimensions (tk reads at most %d)", name, ndim,
				   TK_ST_MAX_DIMS);
	struct tk_tensor_info t;
	memset(&t, 0, sizeof(t));
	t.dtype = dtype;
	t.ndim = ndim;
	t.nelem = 1;
	int overflow = 0;
	for (int i = 0; i < ndim; i++) {
		uint64_t v;
		if (!json_u64(cJSON_GetArrayItem(sh, i), &v))
			return tk_diag_set(d, TK_E_FORMAT, file, -1,
					   "tensor '%s': shape entry %d is not a non-negative integer",
					   name, i);
		t.shape[i] = (int64_t)v;
		if (v && t.nelem > UINT64_MAX / v)
			overflow = 1;
		else
			t.nelem *= v;
	}
	uint64_t begin, end;
	if (!json_u64(cJSON_GetArrayItem(off, 0), &begin) ||
	    !json_u64(cJSON_GetArrayItem(off, 1), &end))
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "tensor '%s': data_offsets are not non-negative integers", name);
	if (begin > end)
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "tensor '%s': data_offsets [%llu, %llu] end before they begin",
				   name, (unsigned long long)begin, (unsigned long long)end);
	char sbuf[256];
	shape_str(sbuf, sizeof(sbuf), ndim, t.shape);
	if (overflow || t.nelem > UINT64_MAX / dtypes[dtype].size)
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "tensor '%s': shape %s is too large", name, sbuf);
	t.nbytes = t.nelem * dtypes[dtype].size;
	if (t.nbytes != end - begin)
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "tensor '%s': shape %s of %s needs %llu bytes but data_offsets "
				   "[%llu, %llu] hold %llu",
				   name, sbuf, dtypes[dtype].name, (unsigned long long)t.nbytes,
				   (unsigned long long)begin, (unsigned long long)end,
				   (unsigned long long)(end - begin));
	t.name = strdup(name);
	if (!t.name)
		return TK_E_NOMEM;
	t.file = file;
	/* t.data is set once the ranges are checked against the file size */
	if (tk_grow(&st->t, &st->cap, st->n + 1, sizeof(*st->t)) ||
	    tk_grow(&st->begin, &st->bcap, st->n + 1, sizeof(*st->begin))) {
		free((char *)t.name);
		return TK_E_NOMEM;
	}
	st->begin[st->n] = begin;
	st->t[st->n++] = t;
	return 0;
}

static int by_offset(const void *a, const void *b, void *arg)
{
	const tk_safetensors_t *st = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	uint64_t x = st->begin[i], y = st->begin[j];
	if (x != y)
		return x < y ? -1 : 1;
	x = st->t[i].nbytes;
	y = st->t[j].nbytes;
	return x < y ? -1 : x > y;
}

/* The tensors first..st->n-1 (one file) must tile [data, data + size). */
static int check_ranges(tk_safetensors_t *st, size_t first, const char *file, const uint8_t *data,
			uint64_t size, struct tk_diag *d)
{
	size_t n = st->n - first;
	if (!n) {
		if (size)
			return tk_diag_set(d, TK_E_FORMAT, file, -1,
					   "%llu bytes of data after the header belong to no tensor",
					   (unsigned long long)size);
		return 0;
	}
	size_t *ix = tk_mallocn(n, sizeof(*ix));
	if (!ix)
		return TK_E_NOMEM;
	for (size_t i = 0; i < n; i++)
		ix[i] = first + i;
	qsort_r(ix, n, sizeof(*ix), by_offset, st);
	uint64_t pos = 0;
	const char *prev = NULL;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const struct tk_tensor_info *t = &st->t[ix[i]];
		uint64_t b = st->begin[ix[i]];
		if (b < pos)
			rc = tk_diag_set(d, TK_E_FORMAT, file, -1,
					 "tensors '%s' and '%s' overlap at data byte %llu", prev,
					 t->name, (unsigned long long)b);
		else if (b > pos)
			rc = tk_diag_set(d, TK_E_FORMAT, file, -1,
					 "%llu bytes of data before tensor '%s' (at data byte %llu) "
					 "belong to no tensor",
					 (unsigned long long)(b - pos), t->name,
					 (unsigned long long)pos);
		else if (b + t->nbytes > size)
			rc = tk_diag_set(d, TK_E_FORMAT, file, -1,
					 "truncated: tensor '%s' ends at data byte %llu but the file "
					 "holds %llu bytes of data",
					 t->name, (unsigned long long)(b + t->nbytes),
					 (unsigned long long)size);
		pos = b + t->nbytes;
		prev = t->name;
	}
	if (!rc && pos < size)
		rc = tk_diag_set(d, TK_E_FORMAT, file, -1,
				 "%llu bytes of data after the last tensor '%s' belong to no tensor",
				 (unsigned long long)(size - pos), prev);
	for (size_t i = first; i < st->n && !rc; i++)
		st->t[i].data = data + st->begin[i];
	free(ix);
	return rc;
}

static int store_metadata(tk_safetensors_t *st, const char *file, const cJSON *m, struct tk_diag *d)
{
	if (cJSON_IsNull(m))
		return 0;
	if (!cJSON_IsObject(m))
		return tk_diag_set(d, TK_E_FORMAT, file, -1, "__metadata__ is not an object");
	const cJSON *e;
	size_t n = 0;
	cJSON_ArrayForEach(e, m) {
		if (!cJSON_IsString(e))
			return tk_diag_set(d, TK_E_FORMAT, file, -1,
					   "__metadata__ value '%s' is not a string", e->string);
		n++;
	}
	if (st->nfiles != 1) /* only the first file's metadata is kept */
		return 0;
	st->meta = calloc(2 * n + 1, sizeof(*st->meta));
	if (!st->meta)
		return TK_E_NOMEM;
	cJSON_ArrayForEach(e, m) {
		st->meta[2 * st->nmeta] = strdup(e->string);
		st->meta[2 * st->nmeta + 1] = strdup(e->valuestring);
		st->nmeta++;
		if (!st->meta[2 * st->nmeta - 2] || !st->meta[2 * st->nmeta - 1])
			return TK_E_NOMEM;
	}
	return 0;
}

static int parse_header(tk_safetensors_t *st, const char *file, const uint8_t *map, uint64_t size,
			struct tk_diag *d)
{
	if (size < 8)
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "truncated: %llu bytes, too short for the 8-byte header length",
				   (unsigned long long)size);
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | map[i];
	if (n > ST_MAX_HEADER)
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "header length %llu is absurd (the limit is %llu bytes)",
				   (unsigned long long)n, ST_MAX_HEADER);
	if (n > size - 8)
		return tk_diag_set(d, TK_E_FORMAT, file, -1,
				   "header length %llu goes beyond the end of the file (%llu bytes)",
				   (unsigned long long)n, (unsigned long long)size);
	const char *h = (const char *)map + 8;
	size_t bad;
	if (!utf8_check((const unsigned char *)h, n, &bad)) {
		tk_diag_set(d, TK_E_FORMAT, file, -1, "header is not UTF-8 at byte %llu",
			    (unsigned long long)(8 + bad));
		if (d)
			d->offset = (long long)(8 + bad);
		return TK_E_FORMAT;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)h[i] < 0x20 && h[i] != '\t' && h[i] != '\n' && h[i] != '\r') {
			tk_diag_set(d, TK_E_FORMAT, file, -1,
				    "malformed header JSON: control character at byte %llu",
				    (unsigned long long)(8 + i));
			if (d)
				d->offset = (long long)(8 + i);
			return TK_E_FORMAT;
		}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(h, n, &end, 0);
	if (root && end) {
		while (end < h + n && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
			end++;
		if (end < h + n) {
			cJSON_Delete(root);
			root = NULL;
		}
	}
	if (!root) {
		long long at = 8 + (end ? (long long)(end - h) : 0);
		tk_diag_set(d, TK_E_FORMAT, file, -1, "malformed header JSON at byte %lld", at);
		if (d)
			d->offset = at;
		return TK_E_FORMAT;
	}
	int rc = 0;
	if (!cJSON_IsObject(root)) {
		rc = tk_diag_set(d, TK_E_FORMAT, file, -1, "header is not a JSON object");
		goto out;
	}
	size_t first = st->n;
	const uint8_t *data = map + 8 + n;
	int seen_meta = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, root) {
		if (!strcmp(e->string, "__metadata__")) {
			if (seen_meta++) {
				rc = tk_diag_set(d, TK_E_FORMAT, file, -1, "__metadata__ appears twice");
				goto out;
			}
			rc = store_metadata(st, file, e, d);
		} else {
			rc = add_tensor(st, file, e->string, e, d);
		}
		if (rc)
			goto out;
	}
	rc = check_ranges(st, first, file, data, size - 8 - n, d);
out:
	cJSON_Delete(root);
	return rc;
}

static int open_file(tk_safetensors_t *st, const char *path, struct tk_diag *d)
{
	struct st_file *nf = tk_reallocn(st->files, st->nfiles + 1, sizeof(*nf));
	if (!nf)
		return TK_E_NOMEM;
	st->files = nf;
	struct st_file *f = &st->files[st->nfiles];
	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	if (!f->path)
		return TK_E_NOMEM;
	st->nfiles++;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tk_diag_sys(d, path, "cannot open");
	struct stat sb;
	if (fstat(fd, &sb)) {
		int rc = tk_diag_sys(d, path, "cannot stat");
		close(fd);
		return rc;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return tk_diag_set(d, TK_E_FORMAT, path, -1, "not a regular file");
	}
	f->size = (size_t)sb.st_size;
	if (f->size) {
		f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (f->map == MAP_FAILED) {
			f->map = NULL;
			int rc = tk_diag_sys(d, path, "cannot map");
			close(fd);
			return rc;
		}
	}
	close(fd);
	return parse_header(st, f->path, f->map, f->size, d);
}

static int by_name(const void *a, const void *b, void *arg)
{
	const tk_safetensors_t *st = arg;
	return strcmp(st->t[*(const size_t *)a].name, st->t[*(const size_t *)b].name);
}

static int index_names(tk_safetensors_t *st, struct tk_diag *d)
{
	st->by_name = tk_mallocn(st->n, sizeof(*st->by_name));
	if (!st->by_name)
		return TK_E_NOMEM;
	for (size_t i = 0; i < st->n; i++)
		st->by_name[i] = i;
	qsort_r(st->by_name, st->n, sizeof(*st->by_name), by_name, st);
	for (size_t i = 1; i < st->n; i++) {
		const struct tk_tensor_info *a = &st->t[st->by_name[i - 1]];
		const struct tk_tensor_info *b = &st->t[st->by_name[i]];
		if (!strcmp(a->name, b->name)) {
			if (a->file == b->file)
				return tk_diag_set(d, TK_E_FORMAT, b->file, -1,
						   "tensor '%s' appears twice", b->name);
			return tk_diag_set(d, TK_E_FORMAT, b->file, -1,
					   "tensor '%s' is also in %s", b->name, a->file);
		}
	}
	return 0;
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* model.safetensors.index.json: {"weight_map": {"NAME": "FILE", ...}} */
static int open_index(tk_safetensors_t *st, const char *path, struct tk_diag *d)
{
	struct tk_buf b = { 0 };
	int rc = tk_read_file(path, &b, d);
	if (rc) {
		tk_buf_free(&b);
		return rc;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(b.data, b.len, &end, 0);
	char **files = NULL;
	size_t nfiles = 0;
	char *dir = NULL;
	if (!root) {
		long long at = end ? (long long)(end - b.data) : 0;
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "malformed JSON at byte %lld", at);
		if (d)
			d->offset = at;
		goto out;
	}
	const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	if (!cJSON_IsObject(wm)) {
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "no \"weight_map\" object");
		goto out;
	}
	int nw = cJSON_GetArraySize(wm);
	files = calloc((size_t)nw + 1, sizeof(*files));
	if (!files) {
		rc = TK_E_NOMEM;
		goto out;
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, wm) {
		const char *f = cJSON_IsString(e) ? e->valuestring : NULL;
		if (!f || !*f || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, "..")) {
			rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
					 "weight_map: tensor '%s' is not mapped to a file name in "
					 "this directory",
					 e->string);
			goto out;
		}
		files[nfiles++] = e->valuestring;
	}
	qsort(files, nfiles, sizeof(*files), by_str);
	const char *slash = strrchr(path, '/');
	dir = slash ? strndup(path, (size_t)(slash - path + 1)) : strdup("");
	if (!dir) {
		rc = TK_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < nfiles; i++) {
		if (i && !strcmp(files[i], files[i - 1]))
			continue;
		char *fp = malloc(strlen(dir) + strlen(files[i]) + 1);
		if (!fp) {
			rc = TK_E_NOMEM;
			goto out;
		}
		strcpy(fp, dir);
		strcat(fp, files[i]);
		rc = open_file(st, fp, d);
		free(fp);
		if (rc)
			goto out;
	}
	rc = index_names(st, d);
	if (rc)
		goto out;
	cJSON_ArrayForEach(e, wm) {
		const struct tk_tensor_info *t = tk_safetensors_find(st, e->string);
		const char *f = t ? strrchr(t->file, '/') : NULL;
		f = f ? f + 1 : t ? t->file : NULL;
		if (!t || strcmp(f, e->valuestring)) {
			rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
					 "tensor '%s' is mapped to %s but is not there", e->string,
					 e->valuestring);
			goto out;
		}
	}
out:
	free(dir);
	free(files);
	cJSON_Delete(root);
	tk_buf_free(&b);
	return rc;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

int tk_safetensors_open(tk_safetensors_t **out, const char *path, struct tk_diag *d)
{
	*out = NULL;
	tk_safetensors_t *st = calloc(1, sizeof(*st));
	if (!st)
		return TK_E_NOMEM;
	st->path = strdup(path);
	if (!st->path) {
		free(st);
		return TK_E_NOMEM;
	}
	struct stat sb;
	int rc;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		char *single = tk_path_dup_join(path, "model.safetensors");
		char *index = tk_path_dup_join(path, "model.safetensors.index.json");
		if (!single || !index)
			rc = TK_E_NOMEM;
		else if (access(single, F_OK) == 0)
			rc = open_file(st, single, d);
		else if (access(index, F_OK) == 0)
			rc = open_index(st, index, d);
		else
			rc = tk_diag_set(d, TK_E_IO, path, -1,
					 "no model.safetensors or model.safetensors.index.json in "
					 "this directory");
		if (!rc && st->nfiles == 1 && !st->by_name)
			rc = index_names(st, d);
		free(single);
		free(index);
	} else if (ends_with(path, ".json")) {
		rc = open_index(st, path, d);
	} else {
		rc = open_file(st, path, d);
		if (!rc)
			rc = index_names(st, d);
	}
	free(st->begin);
	st->begin = NULL;
	if (rc) {
		tk_safetensors_close(st);
		return rc;
	}
	*out = st;
	return 0;
}

void tk_safetensors_close(tk_safetensors_t *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++)
		free((char *)st->t[i].name);
	for (size_t i = 0; i < st->nfiles; i++) {
		if (st->files[i].map)
			munmap(st->files[i].map, st->files[i].size);
		free(st->files[i].path);
	}
	for (size_t i = 0; i < 2 * st->nmeta; i++)
		free(st->meta[i]);
	free(st->meta);
	free(st->files);
	free(st->t);
	free(st->begin);
	free(st->by_name);
	free(st->path);
	free(st);
}

size_t tk_safetensors_count(const tk_safetensors_t *st)
{
	return st->n;
}

const struct tk_tensor_info *tk_safetensors_at(const tk_safetensors_t *st, size_t i)
{
	return i < st->n ? &st->t[i] : NULL;
}

const struct tk_tensor_info *tk_safetensors_find(const tk_safetensors_t *st, const char *name)
{
	size_t lo = 0, hi = st->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(st->t[st->by_name[mid]].name, name);
		if (!c)
			return &st->t[st->by_name[mid]];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *tk_safetensors_metadata(const tk_safetensors_t *st, const char *key)
{
	for (size_t i = 0; i < st->nmeta; i++)
		if (!strcmp(st->meta[2 * i], key))
			return st->meta[2 * i + 1];
	return NULL;
}

static int convert_f32(const struct tk_tensor_info *t, float *dst, struct tk_diag *d)
{
	const uint8_t *p = t->data;
	int64_t n = (int64_t)t->nelem;
	switch (t->dtype) {
	case TK_DT_F32:
		if (n)
			memcpy(dst, p, (size_t)n * 4);
		return 0;
	case TK_DT_F16:
#pragma omp parallel for if (n > 65536) schedule(static)
		for (int64_t i = 0; i < n; i++) {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			dst[i] = tk_f16_to_f32(h);
		}
		return 0;
	case TK_DT_BF16:
#pragma omp parallel for if (n > 65536) schedule(static)
		for (int64_t i = 0; i < n; i++) {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			dst[i] = tk_bf16_to_f32(h);
		}
		return 0;
	case TK_DT_F64:
#pragma omp parallel for if (n > 65536) schedule(static)
		for (int64_t i = 0; i < n; i++) {
			double x;
			memcpy(&x, p + 8 * i, 8);
			dst[i] = (float)x;
		}
		return 0;
	default:
		return tk_diag_set(d, TK_E_UNSUPPORTED, t->file, -1,
				   "tensor '%s': cannot convert %s to F32", t->name,
				   tk_dtype_name(t->dtype));
	}
}

/* The whole pages of the mapped bytes [p, p + n) leave this process's
 * memory: a model loaded into fp32 buffers would otherwise keep its file's
 * pages resident too, twice its size at the peak.  The mapping is private
 * and never written, so a later read faults the same bytes back in from
 * the page cache: only the resident set changes. */
static void release(const void *p, size_t n)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), b = ((uintptr_t)p + n) & ~(pg - 1);
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

void tk_safetensors_release(const struct tk_tensor_info *t)
{
	release(t->data, t->nbytes);
}

int tk_safetensors_to_f32(const struct tk_tensor_info *t, float *dst, struct tk_diag *d)
{
	int rc = convert_f32(t, dst, d);
	if (!rc)
		release(t->data, t->nbytes);
	return rc;
}

int tk_safetensors_expect(const tk_safetensors_t *st, const char *name, int ndim, const int64_t *shape,
		 const struct tk_tensor_info **out, struct tk_diag *d)
{
	if (out)
		*out = NULL;
	const struct tk_tensor_info *t = tk_safetensors_find(st, name);
	if (!t)
		return tk_diag_set(d, TK_E_FORMAT, st->path, -1, "missing tensor '%s'", name);
	int ok = t->ndim == ndim;
	for (int i = 0; ok && i < ndim; i++)
		ok = shape[i] < 0 || shape[i] == t->shape[i];
	if (!ok) {
		char want[256], got[256];
		shape_str(want, sizeof(want), ndim, shape);
		shape_str(got, sizeof(got), t->ndim, t->shape);
		return tk_diag_set(d, TK_E_FORMAT, t->file, -1,
				   "tensor '%s' has shape %s, expected %s", name, got, want);
	}
	if (out)
		*out = t;
	return 0;
}

/* ---- writing ---- */

struct st_entry {
	char *name;
	enum tk_dtype dtype;
	int ndim;
	int64_t shape[TK_ST_MAX_DIMS];
	const void *data;
	uint64_t nbytes;
};

struct tk_safetensors_writer {
	struct st_entry *e;
	size_t n, cap;
	char **meta; /* key, value pairs */
	size_t nmeta, mcap;
};

int tk_safetensors_writer_new(tk_safetensors_writer_t **w)
{
	*w = calloc(1, sizeof(**w));
	return *w ? 0 : TK_E_NOMEM;
}

void tk_safetensors_writer_free(tk_safetensors_writer_t *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++)
		free(w->e[i].name);
	for (size_t i = 0; i < 2 * w->nmeta; i++)
		free(w->meta[i]);
	free(w->e);
	free(w->meta);
	free(w);
}

int tk_safetensors_writer_add(tk_safetensors_writer_t *w, const char *name, enum tk_dtype dtype, int ndim,
		     const int64_t *shape, const void *data, struct tk_diag *d)
{
	size_t bad;
	if (!*name || !strcmp(name, "__metadata__") ||
	    !utf8_check((const unsigned char *)name, strlen(name), &bad))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "'%s' cannot name a tensor", name);
	if ((unsigned)dtype >= TK_DT_COUNT)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "tensor '%s': bad dtype", name);
	if (ndim < 0 || ndim > TK_ST_MAX_DIMS)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "tensor '%s': %d dimensions", name,
				   ndim);
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->e[i].name, name))
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "tensor '%s' added twice",
					   name);
	struct st_entry e;
	memset(&e, 0, sizeof(e));
	e.dtype = dtype;
	e.ndim = ndim;
	uint64_t nelem = 1;
	int overflow = 0;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "tensor '%s': negative size",
					   name);
		e.shape[i] = shape[i];
		uint64_t v = (uint64_t)shape[i];
		if (v && nelem > UINT64_MAX / v)
			overflow = 1;
		else
			nelem *= v;
	}
	if (overflow || nelem > UINT64_MAX / dtypes[dtype].size)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "tensor '%s': too large", name);
	e.nbytes = nelem * dtypes[dtype].size;
	if (e.nbytes && !data)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "tensor '%s': no data", name);
	e.data = data;
	e.name = strdup(name);
	if (!e.name || tk_grow(&w->e, &w->cap, w->n + 1, sizeof(*w->e))) {
		free(e.name);
		return TK_E_NOMEM;
	}
	w->e[w->n++] = e;
	return 0;
}

int tk_safetensors_writer_metadata(tk_safetensors_writer_t *w, const char *key, const char *value)
{
	size_t bad;
	if (!utf8_check((const unsigned char *)key, strlen(key), &bad) ||
	    !utf8_check((const unsigned char *)value, strlen(value), &bad))
		return TK_E_INVAL;
	char *v = strdup(value);
	if (!v)
		return TK_E_NOMEM;
	for (size_t i = 0; i < w->nmeta; i++)
		if (!strcmp(w->meta[2 * i], key)) {
			free(w->meta[2 * i + 1]);
			w->meta[2 * i + 1] = v;
			return 0;
		}
	char *k = strdup(key);
	if (!k || tk_grow(&w->meta, &w->mcap, 2 * w->nmeta + 2, sizeof(*w->meta))) {
		free(k);
		free(v);
		return TK_E_NOMEM;
	}
	w->meta[2 * w->nmeta] = k;
	w->meta[2 * w->nmeta + 1] = v;
	w->nmeta++;
	return 0;
}

/* A JSON string as serde_json writes it. */
static int json_str(struct tk_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int rc = tk_buf_append(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
		char esc[7] = { '\\', 0 };
		size_t n = 2;
		switch (*p) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			if (*p >= 0x20) {
				rc = tk_buf_append(b, p, 1);
				continue;
			}
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			n = 6;
		}
		rc = tk_buf_append(b, esc, n);
	}
	return rc ? rc : tk_buf_append(b, "\"", 1);
}

static int by_meta_key(const void *a, const void *b)
{
	return strcmp(**(char **const *)a, **(char **const *)b);
}

static int by_dtype_name(const void *a, const void *b)
{
	const struct st_entry *x = a, *y = b;
	if (x->dtype != y->dtype)
		return dtypes[y->dtype].rank - dtypes[x->dtype].rank;
	return strcmp(x->name, y->name);
}

static int build_header(tk_safetensors_writer_t *w, struct tk_buf *b)
{
	int rc = tk_buf_append(b, "{", 1);
	if (w->nmeta && !rc) {
		/* metadata keys sorted (the library's order is a hash order) */
		char ***ord = tk_mallocn(w->nmeta, sizeof(*ord));
		if (!ord)
			return TK_E_NOMEM;
		for (size_t i = 0; i < w->nmeta; i++)
			ord[i] = &w->meta[2 * i];
		qsort(ord, w->nmeta, sizeof(*ord), by_meta_key);
		rc = tk_buf_append(b, "\"__metadata__\":{", 16);
		for (size_t i = 0; i < w->nmeta && !rc; i++) {
			if (i)
				rc = tk_buf_append(b, ",", 1);
			rc = rc ? rc : json_str(b, ord[i][0]);
			rc = rc ? rc : tk_buf_append(b, ":", 1);
			rc = rc ? rc : json_str(b, ord[i][1]);
		}
		rc = rc ? rc : tk_buf_append(b, "}", 1);
		free(ord);
	}
	qsort(w->e, w->n, sizeof(*w->e), by_dtype_name);
	uint64_t off = 0;
	for (size_t i = 0; i < w->n && !rc; i++) {
		const struct st_entry *e = &w->e[i];
		char num[64];
		if (i || w->nmeta)
			rc = tk_buf_append(b, ",", 1);
		rc = rc ? rc : json_str(b, e->name);
		snprintf(num, sizeof(num), ":{\"dtype\":\"%s\",\"shape\":[", dtypes[e->dtype].name);
		rc = rc ? rc : tk_buf_append(b, num, strlen(num));
		for (int k = 0; k < e->ndim && !rc; k++) {
			snprintf(num, sizeof(num), "%s%lld", k ? "," : "", (long long)e->shape[k]);
			rc = tk_buf_append(b, num, strlen(num));
		}
		snprintf(num, sizeof(num), "],\"data_offsets\":[%llu,%llu]}",
			 (unsigned long long)off, (unsigned long long)(off + e->nbytes));
		rc = rc ? rc : tk_buf_append(b, num, strlen(num));
		off += e->nbytes;
	}
	rc = rc ? rc : tk_buf_append(b, "}", 1);
	while (!rc && b->len % 8)
		rc = tk_buf_append(b, " ", 1);
	return rc;
}

int tk_safetensors_writer_commit(tk_safetensors_writer_t *w, const char *path, int force, struct tk_diag *d)
{
	struct tk_buf h = { 0 };
	struct tk_afile f;
	int rc = build_header(w, &h);
	if (rc)
		goto out;
	if (h.len > ST_MAX_HEADER) {
		rc = tk_diag_set(d, TK_E_INVAL, path, -1, "header of %zu bytes is too large", h.len);
		goto out;
	}
	rc = tk_afile_open(&f, path, force, d);
	if (rc)
		goto out;
	uint8_t len[8];
	for (int i = 0; i < 8; i++)
		len[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
	int ok = fwrite(len, 1, 8, f.fp) == 8 && fwrite(h.data, 1, h.len, f.fp) == h.len;
	for (size_t i = 0; i < w->n && ok; i++)
		ok = !w->e[i].nbytes ||
		     fwrite(w->e[i].data, 1, w->e[i].nbytes, f.fp) == w->e[i].nbytes;
	if (!ok) {
		rc = tk_diag_sys(d, path, "cannot write");
		tk_afile_abort(&f);
		goto out;
	}
	rc = tk_afile_commit(&f, d);
out:
	tk_buf_free(&h);
	tk_safetensors_writer_free(w);
	return rc;
}

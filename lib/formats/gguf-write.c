/* gguf-write.c - writing GGUF v3 files and quantizing to ggml types (see
 * gguf.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/afile.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

#define ALIGN 32

struct wtensor {
	char *name;
	int type, ndim;
	int64_t ne[4];
	void *data;
	uint64_t nbytes;
	int own;
};

struct tk_gguf_writer {
	struct tk_buf kv;          /* the serialized pairs */
	uint64_t n_kv;
	char **keys;
	size_t nkeys, kcap;
	struct wtensor *t;
	size_t nt, tcap;
	int err;
};

tk_gguf_writer_t *tk_gguf_writer_new(void)
{
	return calloc(1, sizeof(struct tk_gguf_writer));
}

void tk_gguf_writer_free(tk_gguf_writer_t *w)
{
	if (!w)
		return;
	tk_buf_free(&w->kv);
	for (size_t i = 0; i < w->nkeys; i++)
		free(w->keys[i]);
	free(w->keys);
	for (size_t i = 0; i < w->nt; i++) {
		free(w->t[i].name);
		if (w->t[i].own)
			free(w->t[i].data);
	}
	free(w->t);
	free(w);
}

static void put(tk_gguf_writer_t *w, const void *p, size_t n)
{
	if (!w->err && tk_buf_append(&w->kv, p, n))
		w->err = TK_E_NOMEM;
}

static void put_u32(tk_gguf_writer_t *w, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8),
			       (unsigned char)(v >> 16), (unsigned char)(v >> 24) };
	put(w, b, 4);
}

static void put_u64(tk_gguf_writer_t *w, uint64_t v)
{
	put_u32(w, (uint32_t)v);
	put_u32(w, (uint32_t)(v >> 32));
}

static void put_str(tk_gguf_writer_t *w, const char *s, size_t n)
{
	put_u64(w, n);
	put(w, s, n);
}

/* Starts a pair: the key and the value type. */
static void key(tk_gguf_writer_t *w, const char *k, int type)
{
	char *c = strdup(k);
	if (!c || tk_grow(&w->keys, &w->kcap, w->nkeys + 1, sizeof(*w->keys))) {
		free(c);
		w->err = TK_E_NOMEM;
		return;
	}
	w->keys[w->nkeys++] = c;
	w->n_kv++;
	put_str(w, k, strlen(k));
	put_u32(w, (uint32_t)type);
}

void tk_gguf_add_str(tk_gguf_writer_t *w, const char *k, const char *val)
{
	key(w, k, TK_GGUF_STRING);
	put_str(w, val, strlen(val));
}

void tk_gguf_add_u32(tk_gguf_writer_t *w, const char *k, uint32_t val)
{
	key(w, k, TK_GGUF_U32);
	put_u32(w, val);
}

void tk_gguf_add_f32(tk_gguf_writer_t *w, const char *k, float val)
{
	uint32_t u;
	memcpy(&u, &val, 4);
	key(w, k, TK_GGUF_F32);
	put_u32(w, u);
}

void tk_gguf_add_bool(tk_gguf_writer_t *w, const char *k, int val)
{
	unsigned char b = val != 0;
	key(w, k, TK_GGUF_BOOL);
	put(w, &b, 1);
}

static size_t vsize(int t)
{
	switch (t) {
	case TK_GGUF_U8: case TK_GGUF_I8: case TK_GGUF_BOOL: return 1;
	case TK_GGUF_U16: case TK_GGUF_I16: return 2;
	case TK_GGUF_U32: case TK_GGUF_I32: case TK_GGUF_F32: return 4;
	case TK_GGUF_U64: case TK_GGUF_I64: case TK_GGUF_F64: return 8;
	}
	return 0;
}

void tk_gguf_add_arr(tk_gguf_writer_t *w, const char *k, int vtype, uint64_t n, const void *data)
{
	size_t es = vsize(vtype);
	if (!es) {
		w->err = w->err ? w->err : TK_E_INVAL;
		return;
	}
	key(w, k, TK_GGUF_ARRAY);
	put_u32(w, (uint32_t)vtype);
	put_u64(w, n);
	put(w, data, (size_t)n * es);
}

void tk_gguf_add_strs(tk_gguf_writer_t *w, const char *k, uint64_t n, const char *const *strs,
		      const size_t *len)
{
	key(w, k, TK_GGUF_ARRAY);
	put_u32(w, TK_GGUF_STRING);
	put_u64(w, n);
	for (uint64_t i = 0; i < n; i++)
		put_str(w, strs[i], len ? len[i] : strlen(strs[i]));
}

void tk_gguf_add_tensor(tk_gguf_writer_t *w, const char *name, int type, int ndim,
			const int64_t *ne, void *data, uint64_t nbytes, int own)
{
	char *c = strdup(name);
	if (!c || tk_grow(&w->t, &w->tcap, w->nt + 1, sizeof(*w->t))) {
		free(c);
		if (own)
			free(data);
		w->err = TK_E_NOMEM;
		return;
	}
	struct wtensor *t = &w->t[w->nt++];
	memset(t, 0, sizeof(*t));
	t->name = c;
	t->type = type;
	t->ndim = ndim;
	for (int i = 0; i < 4; i++)
		t->ne[i] = i < ndim ? ne[i] : 1;
	t->data = data;
	t->nbytes = nbytes;
	t->own = own;
}

static uint64_t pad_to(uint64_t x)
{
	return (x + ALIGN - 1) / ALIGN * ALIGN;
}

/* The bytes a tensor of its type and dims needs, 0 if they do not fit. */
static uint64_t tensor_bytes(const struct wtensor *t)
{
	int bs = tk_ggml_block_size(t->type), ts = tk_ggml_type_size(t->type);
	if (!bs || t->ndim < 1 || t->ndim > 4 || t->ne[0] % bs)
		return 0;
	uint64_t n = 1;
	for (int i = 0; i < t->ndim; i++) {
		if (t->ne[i] <= 0 || n > UINT64_MAX / (uint64_t)t->ne[i])
			return 0;
		n *= (uint64_t)t->ne[i];
	}
	return n / (uint64_t)bs * (uint64_t)ts;
}

static int check(tk_gguf_writer_t *w, const char *path, struct tk_diag *d)
{
	if (w->err)
		return tk_diag_set(d, w->err, path, -1, w->err == TK_E_NOMEM ? "out of memory"
				   : "invalid metadata value type");
	for (size_t i = 0; i < w->nkeys; i++)
		for (size_t k = i + 1; k < w->nkeys; k++)
			if (!strcmp(w->keys[i], w->keys[k]))
				return tk_diag_set(d, TK_E_INVAL, path, -1, "duplicate key '%s'",
						   w->keys[i]);
	for (size_t i = 0; i < w->nt; i++) {
		uint64_t nb = tensor_bytes(&w->t[i]);
		if (!nb || nb != w->t[i].nbytes)
			return tk_diag_set(d, TK_E_INVAL, path, -1,
					   "tensor '%s': %llu bytes do not fit type %s and its dims",
					   w->t[i].name, (unsigned long long)w->t[i].nbytes,
					   tk_ggml_type_name(w->t[i].type));
		for (size_t k = i + 1; k < w->nt; k++)
			if (!strcmp(w->t[i].name, w->t[k].name))
				return tk_diag_set(d, TK_E_INVAL, path, -1,
						   "duplicate tensor '%s'", w->t[i].name);
	}
	return 0;
}

int tk_gguf_writer_commit(tk_gguf_writer_t *w, const char *path, int force, struct tk_diag *d)
{
	struct tk_buf head = { 0 };
	struct tk_afile f;
	static const char zeros[ALIGN];
	int rc = check(w, path, d);
	if (rc)
		goto out;
	/* header and tensor infos, built in w->kv's place */
	struct tk_buf kv = w->kv;
	w->kv = head;
	put(w, "GGUF", 4);
	put_u32(w, 3);
	put_u64(w, w->nt);
	put_u64(w, w->n_kv);
	put(w, kv.data, kv.len);
	tk_buf_free(&kv);
	uint64_t off = 0;
	for (size_t i = 0; i < w->nt; i++) {
		const struct wtensor *t = &w->t[i];
		put_str(w, t->name, strlen(t->name));
		put_u32(w, (uint32_t)t->ndim);
		for (int k = 0; k < t->ndim; k++)
			put_u64(w, (uint64_t)t->ne[k]);
		put_u32(w, (uint32_t)t->type);
		put_u64(w, off);
		off = pad_to(off + t->nbytes);
	}
	put(w, zeros, (size_t)(pad_to(w->kv.len) - w->kv.len));
	if (w->err) {
		rc = tk_diag_set(d, w->err, path, -1, "out of memory");
		goto out;
	}
	if ((rc = tk_afile_open(&f, path, force, d)))
		goto out;
	int bad = fwrite(w->kv.data, 1, w->kv.len, f.fp) != w->kv.len;
	for (size_t i = 0; i < w->nt && !bad; i++) {
		const struct wtensor *t = &w->t[i];
		size_t pad = (size_t)(pad_to(t->nbytes) - t->nbytes);
		bad = fwrite(t->data, 1, (size_t)t->nbytes, f.fp) != t->nbytes ||
		      fwrite(zeros, 1, pad, f.fp) != pad;
	}
	if (bad) {
		int e = errno; /* the reason (ENOSPC), before the abort's unlink */
		tk_afile_abort(&f);
		errno = e;
		rc = tk_diag_sys(d, path, "write failed");
		goto out;
	}
	rc = tk_afile_commit(&f, d);
out:
	tk_gguf_writer_free(w);
	return rc;
}

/* ---- quantization ---- */

static uint16_t bf16_gguf(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)(((x & 0xffff0000) | (64u << 16)) >> 16);
	return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* numpy's np_roundf of gguf-py: half away from zero, in fp32. */
static float roundf_gguf(float x)
{
	float a = fabsf(x), fl = floorf(a), b = fl + floorf(2.0f * (a - fl));
	return x < 0 ? -b : x > 0 ? b : 0.0f;
}

static void put_f16(unsigned char *p, float f)
{
	uint16_t h = tk_f32_to_f16(f);
	p[0] = (unsigned char)h;
	p[1] = (unsigned char)(h >> 8);
}

static void q8_0(const float *x, unsigned char *out)
{
	float amax = 0;
	for (int i = 0; i < 32; i++)
		amax = fmaxf(amax, fabsf(x[i]));
	float dd = amax / 127.0f, id = dd == 0 ? 0.0f : 1.0f / dd;
	put_f16(out, dd);
	for (int i = 0; i < 32; i++)
		out[2 + i] = (unsigned char)(int8_t)roundf_gguf(x[i] * id);
}

static void q4_0(const float *x, unsigned char *out)
{
	float amax = 0, max = 0;
	for (int i = 0; i < 32; i++)
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			max = x[i];
		}
	float dd = max / -8.0f, id = dd == 0 ? 0.0f : 1.0f / dd;
	unsigned char q[32];
	for (int i = 0; i < 32; i++) {
		float v = truncf(x[i] * id + 8.5f);
		q[i] = v >= 15 ? 15 : (unsigned char)v;
	}
	put_f16(out, dd);
	for (int i = 0; i < 16; i++)
		out[2 + i] = (unsigned char)(q[i] | q[16 + i] << 4);
}

int tk_ggml_quantize(int type, const float *src, void *dst, uint64_t n)
{
	unsigned char *o = dst;
	switch (type) {
	case TK_GGML_F32:
		memcpy(dst, src, (size_t)n * 4);
		return 0;
	case TK_GGML_F16:
		for (uint64_t i = 0; i < n; i++)
			put_f16(o + 2 * i, src[i]);
		return 0;
	case TK_GGML_BF16:
		for (uint64_t i = 0; i < n; i++) {
			uint16_t h = bf16_gguf(src[i]);
			o[2 * i] = (unsigned char)h;
			o[2 * i + 1] = (unsigned char)(h >> 8);
		}
		return 0;
	case TK_GGML_Q8_0:
	case TK_GGML_Q4_0:
		if (n % 32)
			return TK_E_UNSUPPORTED;
		for (uint64_t b = 0; b < n / 32; b++) {
			if (type == TK_GGML_Q8_0)
				q8_0(src + 32 * b, o + 34 * b);
			else
				q4_0(src + 32 * b, o + 18 * b);
		}
		return 0;
	}
	return TK_E_UNSUPPORTED;
}

/* adamw8.c - bitsandbytes' 8-bit AdamW state for a training run (adamw8.h). */
#include "train/adamw8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t up64(size_t x)
{
	return (x + 63) / 64 * 64;
}

/* The next bytes of mem from *at on (advanced). */
static void *part(void *mem, size_t *at, size_t bytes)
{
	void *p = (unsigned char *)mem + *at;
	*at += bytes;
	return p;
}

int tk_adamw8_state_init(struct tk_adamw8_state *o, struct tk_backend *be,
			 const struct tk_param *tp, int n_tp, struct tk_diag *d)
{
	memset(o, 0, sizeof(*o));
	o->be = be;
	o->s = calloc((size_t)n_tp + 1, sizeof(*o->s));
	if (!o->s)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	o->n = n_tp;
	for (int i = 0; i < n_tp; i++) {
		struct tk_adamw8_slot *s = &o->s[i];
		s->n = tp[i].n;
		s->nb = (s->n + TK_ADAMW8_BLOCK - 1) / TK_ADAMW8_BLOCK;
		s->eight = tk_adamw8_eight(tp[i].name, s->n);
		if (s->eight && tp[i].t && tp[i].t->conv1d) {
			s->rows = (size_t)tp[i].t->shape[0];
			s->cols = (size_t)tp[i].t->shape[1];
		}
		o->bytes += tk_adamw8_state_bytes(s->n, s->eight);
	}
	o->mem = tk_backend_alloc(be, o->bytes ? o->bytes : 1);
	if (!o->mem)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	memset(o->mem, 0, o->bytes ? o->bytes : 1);
	size_t at = 0; /* each buffer 64-byte aligned, as the backend's alloc */
	for (int i = 0; i < n_tp; i++) {
		struct tk_adamw8_slot *s = &o->s[i];
		if (s->eight) {
			s->q1 = part(o->mem, &at, up64(s->n));
			s->q2 = part(o->mem, &at, up64(s->n));
			s->absmax1 = part(o->mem, &at, up64(s->nb * sizeof(float)));
			s->absmax2 = part(o->mem, &at, up64(s->nb * sizeof(float)));
		} else {
			s->m = part(o->mem, &at, up64(s->n * sizeof(float)));
			s->v = part(o->mem, &at, up64(s->n * sizeof(float)));
		}
	}
	return 0;
}

int tk_adamw8_state_step(struct tk_adamw8_state *o, const struct tk_param *tp, double lr,
			 double beta1, double beta2, double eps, double weight_decay, int step,
			 struct tk_diag *d)
{
	for (int i = 0; i < o->n; i++) {
		struct tk_adamw8_slot *s = &o->s[i];
		int rc = tk_adamw8(o->be, tp[i].p, tp[i].g, s->q1, s->q2, s->absmax1, s->absmax2,
				   s->m, s->v, s->n, s->rows, s->cols, lr, beta1, beta2, eps,
				   tp[i].decay ? weight_decay : 0.0, step);
		if (rc)
			return tk_diag_set(d, rc, NULL, -1, "optimizer step: %s: %s", tp[i].name,
					   tk_strerror(rc));
	}
	return 0;
}

/* The fp32 state x of parameter p in its checkpoint layout: x itself, or
 * transposed into *at (advanced past it). */
static const float *ckpt_layout(const struct tk_model *m, const struct tk_param *p,
				const float *x, float **at)
{
	if (!p->t || !p->t->conv1d)
		return x;
	float *dst = *at;
	tk_model_export(m, p->t, x - p->t->off, dst);
	*at += p->n;
	return dst;
}

int tk_adamw8_state_save(const struct tk_adamw8_state *o, const struct tk_model *m,
			 const struct tk_param *tp, tk_safetensors_writer_t *w, float **tmp,
			 struct tk_diag *d)
{
	size_t need = 0;
	for (int i = 0; i < o->n; i++)
		if (!o->s[i].eight && tp[i].t && tp[i].t->conv1d)
			need += 2 * o->s[i].n;
	*tmp = malloc(need ? need * sizeof(float) : 1);
	if (!*tmp)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	float *at = *tmp;
	char name[256];
	int rc = 0;
	for (int i = 0; i < o->n && !rc; i++) {
		const struct tk_adamw8_slot *s = &o->s[i];
		const struct tk_param *p = &tp[i];
		int64_t nb = (int64_t)s->nb;
		for (int k = 1; k <= 2 && !rc; k++) {
			snprintf(name, sizeof(name), "%s.state%d", p->name, k);
			if (s->eight)
				rc = tk_safetensors_writer_add(w, name, TK_DT_U8, p->ndim, p->shape,
							       k == 1 ? s->q1 : s->q2, d);
			else
				rc = tk_safetensors_writer_add(
					w, name, TK_DT_F32, p->ndim, p->shape,
					ckpt_layout(m, p, k == 1 ? s->m : s->v, &at), d);
			if (!rc && s->eight) {
				snprintf(name, sizeof(name), "%s.absmax%d", p->name, k);
				rc = tk_safetensors_writer_add(w, name, TK_DT_F32, 1, &nb,
							       k == 1 ? s->absmax1 : s->absmax2, d);
			}
		}
	}
	return rc;
}

/* name in st with ndim/shape and dtype, else TK_E_FORMAT naming it. */
static int expect(const tk_safetensors_t *st, const char *path, const char *name, int ndim,
		  const int64_t *shape, enum tk_dtype dt, const struct tk_tensor_info **ti,
		  struct tk_diag *d)
{
	int rc = tk_safetensors_expect(st, name, ndim, shape, ti, d);
	if (!rc && (*ti)->dtype != dt)
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tensor %s: %s, not %s", name,
				 tk_dtype_name((*ti)->dtype), tk_dtype_name(dt));
	return rc;
}

/* n fp32 values of tensor ti into dst, each finite and, with nonneg, not
 * negative: what the state can hold. */
static int read_f32(const struct tk_tensor_info *ti, const char *path, size_t n, int nonneg,
		    float *dst, struct tk_diag *d)
{
	int rc = tk_safetensors_to_f32(ti, dst, d);
	for (size_t j = 0; j < n && !rc; j++)
		if (!isfinite(dst[j]) || (nonneg && dst[j] < 0))
			rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
					 "tensor %s: element %zu is %g, which the 8-bit AdamW "
					 "state cannot hold", ti->name, j, (double)dst[j]);
	return rc;
}

int tk_adamw8_state_load(struct tk_adamw8_state *o, const struct tk_model *m,
			 const struct tk_param *tp, const tk_safetensors_t *st, const char *path,
			 struct tk_diag *d)
{
	size_t want = 0, cap = 0;
	for (int i = 0; i < o->n; i++) {
		want += o->s[i].eight ? 4 : 2;
		cap = o->s[i].n > cap ? o->s[i].n : cap;
	}
	if (tk_safetensors_count(st) != want)
		return tk_diag_set(d, TK_E_FORMAT, path, -1, "holds %zu tensors, not the %zu of "
				   "the %d trained parameters' 8-bit AdamW state",
				   tk_safetensors_count(st), want, o->n);
	float *tmp = malloc(cap ? cap * sizeof(float) : 1);
	if (!tmp)
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	char name[256];
	int rc = 0;
	for (int i = 0; i < o->n && !rc; i++) {
		struct tk_adamw8_slot *s = &o->s[i];
		const struct tk_param *p = &tp[i];
		int64_t nb = (int64_t)s->nb;
		const struct tk_tensor_info *ti;
		for (int k = 1; k <= 2 && !rc; k++) {
			snprintf(name, sizeof(name), "%s.state%d", p->name, k);
			if (s->eight) {
				if (!(rc = expect(st, path, name, p->ndim, p->shape, TK_DT_U8, &ti, d)))
					memcpy(k == 1 ? s->q1 : s->q2, ti->data, s->n);
				snprintf(name, sizeof(name), "%s.absmax%d", p->name, k);
				if (!rc && !(rc = expect(st, path, name, 1, &nb, TK_DT_F32, &ti, d)))
					rc = read_f32(ti, path, s->nb, 1,
						      k == 1 ? s->absmax1 : s->absmax2, d);
				continue;
			}
			float *dst = k == 1 ? s->m : s->v;
			if ((rc = expect(st, path, name, p->ndim, p->shape, TK_DT_F32, &ti, d)) ||
			    (rc = read_f32(ti, path, s->n, k == 2, tmp, d)))
				break;
			if (p->t && p->t->conv1d)
				tk_model_import(m, p->t, tmp, dst - p->t->off);
			else
				memcpy(dst, tmp, s->n * sizeof(float));
		}
	}
	free(tmp);
	return rc;
}

void tk_adamw8_state_free(struct tk_adamw8_state *o)
{
	if (o->mem)
		tk_backend_free_mem(o->be, o->mem);
	free(o->s);
	memset(o, 0, sizeof(*o));
}

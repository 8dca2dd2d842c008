/* quant.c - bitsandbytes-compatible 4-bit quantization on the CPU. */
#include "base/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/math-common.h"
#include "base/quant-common.h"

const struct tk_opt_choice tk_q4_types[] = {
	{ "nf4", TK_Q4_NF4 }, { "fp4", TK_Q4_FP4 }, { NULL, 0 },
};

int tk_q4_type_parse(const char *name, enum tk_q4_type *type, struct tk_diag *d)
{
	for (const struct tk_opt_choice *c = tk_q4_types; c->word; c++)
		if (!strcmp(name, c->word)) {
			*type = (enum tk_q4_type)c->value;
			return 0;
		}
	return tk_diag_set(d, TK_E_INVAL, NULL, -1,
			   "unknown 4-bit quant type '%s' (use nf4 or fp4)", name);
}

const char *tk_q4_type_name(enum tk_q4_type type)
{
	return type == TK_Q4_FP4 ? "fp4" : "nf4";
}

const float *tk_q4_code(enum tk_q4_type type)
{
	return type == TK_Q4_FP4 ? tk_fp4_code : tk_nf4_code;
}

int tk_q4_blocksize_ok(long long blocksize)
{
	return blocksize >= 32 && blocksize <= 4096 &&
	       (blocksize & (blocksize - 1)) == 0;
}

size_t tk_q4_nblocks(size_t n, size_t blocksize)
{
	return n / blocksize + (n % blocksize != 0);
}

size_t tk_q4_packed_size(size_t n)
{
	return n / 2 + (n & 1);
}

static int check_args(size_t n, enum tk_q4_type type, size_t blocksize,
		      struct tk_diag *d)
{
	if (type != TK_Q4_NF4 && type != TK_Q4_FP4)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "unknown 4-bit quant type %d", (int)type);
	if (!tk_q4_blocksize_ok((long long)blocksize))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "invalid blocksize %zu (use a power of two from 32 to 4096)",
				   blocksize);
	if (n == 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "nothing to quantize");
	return 0;
}

/* bitsandbytes clamps absmax to at least 1e-38 (an fp32 subnormal) before
 * scaling, so an all-zero block scales by 1e38 and maps to the code of 0. */
#define Q4_ABSMAX_MIN 1e-38f

static inline unsigned q4_code_of(const float *bound, const unsigned char *order,
				  float s)
{
	s = s < -1.0f ? -1.0f : s > 1.0f ? 1.0f : s;
	return order[tk_q4_bucket(bound, s)];
}

int tk_q4_quantize(const float *x, size_t n, enum tk_q4_type type,
		   size_t blocksize, uint8_t *packed, float *absmax,
		   struct tk_diag *d)
{
	const float *bound = type == TK_Q4_FP4 ? tk_fp4_bound : tk_nf4_bound;
	const unsigned char *order = type == TK_Q4_FP4 ? tk_fp4_order : tk_nf4_order;
	size_t nb, b, i;
	int err = check_args(n, type, blocksize, d);

	if (err)
		return err;
	nb = tk_q4_nblocks(n, blocksize);
	memset(packed, 0, tk_q4_packed_size(n));
	for (b = 0; b < nb; b++) {
		size_t lo = b * blocksize;
		size_t hi = lo + blocksize < n ? lo + blocksize : n;
		float am = 0.0f, r;

		for (i = lo; i < hi; i++) {
			float a = fabsf(x[i]);

			if (!isfinite(a)) {
				err = tk_diag_set(d, TK_E_INVAL, NULL, -1,
						  "value %zu is not finite", i);
				if (d)
					d->offset = (long long)i;
				return err;
			}
			if (a > am)
				am = a;
		}
		if (hi - lo == blocksize) {
			/* full block: x * (1 / max(absmax, 1e-38)) */
			absmax[b] = am;
			r = 1.0f / (am > Q4_ABSMAX_MIN ? am : Q4_ABSMAX_MIN);
			for (i = lo; i < hi; i++) {
				unsigned q = q4_code_of(bound, order, x[i] * r);

				packed[i >> 1] |= (uint8_t)(i & 1 ? q : q << 4);
			}
		} else {
			/* short last block: x / max(absmax, 1e-38), clamped
			 * value stored */
			if (!(am > Q4_ABSMAX_MIN))
				am = Q4_ABSMAX_MIN;
			absmax[b] = am;
			for (i = lo; i < hi; i++) {
				unsigned q = q4_code_of(bound, order, x[i] / am);

				packed[i >> 1] |= (uint8_t)(i & 1 ? q : q << 4);
			}
		}
	}
	if (n & 1)
		packed[n >> 1] |= (uint8_t)q4_code_of(bound, order, 0.0f);
	return 0;
}

int tk_q4_dequantize(const uint8_t *packed, const float *absmax, size_t n,
		     enum tk_q4_type type, size_t blocksize, float *out,
		     struct tk_diag *d)
{
	const float *code;
	size_t i;
	int err = check_args(n, type, blocksize, d);

	if (err)
		return err;
	code = tk_q4_code(type);
	for (i = 0; i < n; i++) {
		unsigned q = i & 1 ? packed[i >> 1] & 0xf : packed[i >> 1] >> 4;

		out[i] = code[q] * absmax[i / blocksize];
	}
	return 0;
}

/* aten's multi_row_sum over `nrows` interleaved rows of `lanes`-wide
 * vectors: row k of step i is the vector at x + ((i * 4 + k) * lanes).
 * Sums in a 4-level cascade of 2^level_power-step chunks.  acc and out are
 * [nrows][lanes]. */
#define TQ_MAXL 8
static void torch_multi_row_sum(const float *x, size_t size, int lanes,
				float out[4][TQ_MAXL])
{
	float acc[4][4][TQ_MAXL];
	size_t i = 0, step, mask, ceil_log2 = 0;
	int level_power, j, k, l;

	while (((size_t)1 << ceil_log2) < size)
		ceil_log2++;
	level_power = ceil_log2 / 4 > 4 ? (int)(ceil_log2 / 4) : 4;
	step = (size_t)1 << level_power;
	mask = step - 1;
	memset(acc, 0, sizeof(acc));
	while (i + step <= size) {
		size_t s;

		for (s = 0; s < step; s++, i++)
			for (k = 0; k < 4; k++)
				for (l = 0; l < lanes; l++)
					acc[0][k][l] += x[(i * 4 + k) * lanes + l];
		for (j = 1; j < 4; j++) {
			for (k = 0; k < 4; k++)
				for (l = 0; l < lanes; l++) {
					acc[j][k][l] += acc[j - 1][k][l];
					acc[j - 1][k][l] = 0.0f;
				}
			if (i & (mask << (j * level_power)))
				break;
		}
	}
	for (; i < size; i++)
		for (k = 0; k < 4; k++)
			for (l = 0; l < lanes; l++)
				acc[0][k][l] += x[(i * 4 + k) * lanes + l];
	for (j = 1; j < 4; j++)
		for (k = 0; k < 4; k++)
			for (l = 0; l < lanes; l++)
				acc[0][k][l] += acc[j][k][l];
	memcpy(out, acc[0], sizeof(acc[0]));
}

/* aten's row_sum of n scalars (used for rows shorter than a vector). */
static float torch_scalar_row_sum(const float *x, size_t n)
{
	float part[4][TQ_MAXL];
	size_t i;

	torch_multi_row_sum(x, n / 4, 1, part);
	for (i = n / 4 * 4; i < n; i++)
		part[0][0] += x[i];
	return ((part[0][0] + part[1][0]) + part[2][0]) + part[3][0];
}

/* aten's vectorized_inner_sum of one contiguous fp32 row, or its scalar
 * row_sum when the row is shorter than one vector. */
static float torch_inner_sum(const float *x, size_t n, int lanes)
{
	size_t vec_size = n / lanes, size_ilp = vec_size / 4, v, k;
	float part[4][TQ_MAXL], acc = 0.0f;
	int l, r;

	if (n < (size_t)lanes)
		return torch_scalar_row_sum(x, n);
	torch_multi_row_sum(x, size_ilp, lanes, part);
	for (v = size_ilp * 4; v < vec_size; v++)
		for (l = 0; l < lanes; l++)
			part[0][l] += x[v * lanes + l];
	for (r = 1; r < 4; r++)
		for (l = 0; l < lanes; l++)
			part[0][l] += part[r][l];
	for (k = vec_size * lanes; k < n; k++)
		acc += x[k];
	for (l = 0; l < lanes; l++)
		acc += part[0][l];
	return acc;
}

float tk_q4_torch_mean(const float *x, size_t n, int threads)
{
	const int lanes = 8;
	const size_t grain = 32768; /* at::internal::GRAIN_SIZE */
	float sum = 0.0f;

	if (n == 0)
		return 0.0f;
	if (threads < 1)
		threads = 1;
	if (n < grain || threads == 1) {
		sum = 0.0f + torch_inner_sum(x, n, lanes);
	} else {
		/* two_pass_reduction: at::parallel_for chunks, one partial
		 * sum per thread, then the partials in thread order */
		size_t used = (n + grain - 1) / grain, chunk, t;

		if (used > (size_t)threads)
			used = (size_t)threads;
		chunk = (n + used - 1) / used;
		for (t = 0; t < used && t * chunk < n; t++) {
			size_t len = n - t * chunk < chunk ? n - t * chunk : chunk;

			sum += 0.0f + torch_inner_sum(x + t * chunk, len, lanes);
		}
	}
	return sum / (float)n;
}

/* bitsandbytes' CPU 8-bit code of the dynamic map for a value already
 * scaled by 1/absmax (quant-common.h). */
static uint8_t dyn_code_of(float s)
{
	return tk_q8_index(tk_dynamic_code, s);
}

int tk_q4_nest(const float *absmax, size_t n, float offset, uint8_t *qabsmax,
	       float *nested_absmax, struct tk_diag *d)
{
	size_t nb, b, i;

	if (n == 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "nothing to quantize");
	nb = tk_q4_nblocks(n, TK_Q4_NESTED_BLOCKSIZE);
	for (b = 0; b < nb; b++) {
		size_t lo = b * TK_Q4_NESTED_BLOCKSIZE;
		size_t hi = lo + TK_Q4_NESTED_BLOCKSIZE < n ? lo + TK_Q4_NESTED_BLOCKSIZE : n;
		float am = 0.0f, inv;

		for (i = lo; i < hi; i++) {
			float a = fabsf(absmax[i] - offset);

			if (!isfinite(a)) {
				int err = tk_diag_set(d, TK_E_INVAL, NULL, -1,
						      "absmax %zu is not finite", i);
				if (d)
					d->offset = (long long)i;
				return err;
			}
			if (a > am)
				am = a;
		}
		nested_absmax[b] = am;
		if (am == 0.0f) {
			/* bitsandbytes writes code 0 for an all-zero block */
			memset(qabsmax + lo, 0, hi - lo);
			continue;
		}
		inv = 1.0f / am;
		for (i = lo; i < hi; i++)
			qabsmax[i] = dyn_code_of((absmax[i] - offset) * inv);
	}
	return 0;
}

void tk_q4_unnest(const uint8_t *qabsmax, const float *nested_absmax, size_t n,
		  float offset, float *absmax)
{
	size_t i;

	for (i = 0; i < n; i++) {
		float v = tk_dynamic_code[qabsmax[i]] * nested_absmax[i / TK_Q4_NESTED_BLOCKSIZE];

		absmax[i] = v + offset;
	}
}

/* Dequantizes the elements [e0, e1) of the flattened 4-bit matrix into
 * out[0 .. e1-e0): blocks in parallel, each byte through a 256-entry table
 * of its two code values. */
static void q4_range(const struct tk_qweight *q, size_t e0, size_t e1, float *out)
{
	const float *code = tk_q4_code(q->kind == TK_QK_FP4 ? TK_Q4_FP4 : TK_Q4_NF4);
	const size_t bs = q->blocksize;
	const long long b0 = (long long)(e0 / bs), b1 = (long long)((e1 - 1) / bs) + 1;
	float lut[256][2];

	for (int v = 0; v < 256; v++) {
		lut[v][0] = code[v >> 4];
		lut[v][1] = code[v & 15];
	}
#pragma omp parallel for schedule(static) if ((e1 - e0) >= 32768)
	for (long long b = b0; b < b1; b++) {
		size_t lo = (size_t)b * bs, hi = lo + bs, e;
		float am;
		float *o;

		am = tk_qweight_absmax(q, b);
		lo = lo < e0 ? e0 : lo;
		hi = hi > e1 ? e1 : hi;
		o = out - e0;
		e = lo;
		if (e & 1) {
			o[e] = code[q->data[e >> 1] & 15] * am;
			e++;
		}
		for (; e + 1 < hi; e += 2) {
			const float *p = lut[q->data[e >> 1]];

			o[e] = p[0] * am;
			o[e + 1] = p[1] * am;
		}
		if (e < hi)
			o[e] = code[q->data[e >> 1] >> 4] * am;
	}
}

float tk_qweight_absmax(const struct tk_qweight *q, size_t b)
{
	if (!q->nested)
		return q->absmax[b];
	float v = tk_dynamic_code[q->qabsmax[b]] * q->nested_absmax[b / TK_Q4_NESTED_BLOCKSIZE];
	return v + q->offset;
}

int tk_qweight_flatten_absmax(struct tk_qweight *q)
{
	if (!q->nested || (q->kind != TK_QK_NF4 && q->kind != TK_QK_FP4))
		return 0;
	if (q->release)
		return TK_E_UNSUPPORTED;
	size_t nb = tk_q4_nblocks((size_t)q->rows * (size_t)q->cols, q->blocksize);
	float *a = tk_mallocn(nb ? nb : 1, sizeof(float));

	if (!a)
		return TK_E_NOMEM;
	for (size_t b = 0; b < nb; b++)
		a[b] = tk_qweight_absmax(q, b);
	free(q->absmax); /* NULL while nested */
	free(q->qabsmax);
	free(q->nested_absmax);
	q->absmax = a;
	q->qabsmax = NULL;
	q->nested_absmax = NULL;
	q->nested = 0;
	q->offset = 0.0f;
	return 0;
}

int tk_qweight_rows(const struct tk_qweight *q, int64_t row0, int64_t n, float *out,
		    struct tk_diag *d)
{
	if (row0 < 0 || n < 0 || row0 > q->rows || n > q->rows - row0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "rows %lld..%lld outside a matrix of %lld rows",
				   (long long)row0, (long long)(row0 + n), (long long)q->rows);
	if (n == 0 || q->cols == 0)
		return 0;
	if (tk_qkind_half(q->kind)) {
		const uint16_t *h = (const uint16_t *)q->data + (size_t)row0 * (size_t)q->cols;
		const size_t len = (size_t)n * (size_t)q->cols;

		if (q->kind == TK_QK_BF16) {
#pragma omp parallel for schedule(static) if (len >= 65536)
			for (size_t i = 0; i < len; i++)
				out[i] = tk_bf16_value(h[i]);
		} else {
#pragma omp parallel for schedule(static) if (len >= 65536)
			for (size_t i = 0; i < len; i++)
				out[i] = tk_f16_value(h[i]);
		}
		return 0;
	}
	if (q->kind == TK_QK_INT8) {
		const int8_t *cb = (const int8_t *)q->data;
		const int64_t cols = q->cols;
		const float inv127 = (float)(1.0 / 127.0);

#pragma omp parallel for schedule(static) if (n * cols >= 32768)
		for (int64_t r = 0; r < n; r++) {
			const int8_t *src = cb + (row0 + r) * cols;
			float s = q->scb[row0 + r] * inv127, *o = out + r * cols;

			for (int64_t c = 0; c < cols; c++)
				o[c] = (float)src[c] * s;
		}
		return 0;
	}
	if ((q->kind != TK_QK_NF4 && q->kind != TK_QK_FP4) ||
	    !tk_q4_blocksize_ok((long long)q->blocksize))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "not a valid quantized weight");
	q4_range(q, (size_t)row0 * (size_t)q->cols, (size_t)(row0 + n) * (size_t)q->cols, out);
	return 0;
}

int tk_q4_quantize_parallel(const float *x, size_t n, enum tk_q4_type type, size_t blocksize,
			    uint8_t *packed, float *absmax, struct tk_diag *d)
{
	size_t bs = blocksize ? blocksize : 1, chunk = bs * (65536 / bs ? 65536 / bs : 1);
	long long nchunks = (long long)((n + chunk - 1) / chunk), bad = -1;
	int err = 0;

	if (n == 0 || !tk_q4_blocksize_ok((long long)blocksize))
		return tk_q4_quantize(x, n, type, blocksize, packed, absmax, d);
#pragma omp parallel for schedule(static) if (nchunks > 1)
	for (long long c = 0; c < nchunks; c++) {
		size_t lo = (size_t)c * chunk, len = n - lo < chunk ? n - lo : chunk;
		struct tk_diag dd;
		int e = tk_q4_quantize(x + lo, len, type, bs, packed + lo / 2, absmax + lo / bs,
				       &dd);

		if (e) {
#pragma omp critical
			{
				if (!err || (long long)lo + dd.offset < bad) {
					err = e;
					bad = (long long)lo + dd.offset;
				}
			}
		}
	}
	if (err) {
		tk_diag_set(d, err, NULL, -1, "element %lld is not finite", bad);
		if (d)
			d->offset = bad;
	}
	return err;
}

int tk_qweight_quantize4(struct tk_qweight *q, const float *x, int64_t rows, int64_t cols,
			 enum tk_qkind kind, size_t blocksize, int nested, int threads,
			 struct tk_diag *d)
{
	size_t n = (size_t)rows * (size_t)cols, nb;
	int err;

	memset(q, 0, sizeof(*q));
	if ((kind != TK_QK_NF4 && kind != TK_QK_FP4) || !tk_q4_blocksize_ok((long long)blocksize) ||
	    rows <= 0 || cols <= 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "cannot quantize to this 4-bit layout");
	nb = tk_q4_nblocks(n, blocksize);
	q->kind = kind;
	q->rows = rows;
	q->cols = cols;
	q->blocksize = blocksize;
	q->data = malloc(tk_q4_packed_size(n));
	q->absmax = tk_mallocn(nb, sizeof(float));
	if (!q->data || !q->absmax) {
		tk_qweight_free(q);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	err = tk_q4_quantize_parallel(x, n, kind == TK_QK_FP4 ? TK_Q4_FP4 : TK_Q4_NF4, blocksize,
				      q->data, q->absmax, d);
	if (!err && nested) {
		q->nested = 1;
		q->offset = tk_q4_torch_mean(q->absmax, nb, threads > 0 ? threads : 1);
		q->qabsmax = malloc(nb);
		q->nested_absmax = tk_mallocn(tk_q4_nblocks(nb, TK_Q4_NESTED_BLOCKSIZE),
					      sizeof(float));
		if (!q->qabsmax || !q->nested_absmax)
			err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		else
			err = tk_q4_nest(q->absmax, nb, q->offset, q->qabsmax, q->nested_absmax, d);
		free(q->absmax);
		q->absmax = NULL;
	}
	if (err)
		tk_qweight_free(q);
	return err;
}

int tk_qweight_half(struct tk_qweight *q, enum tk_qkind kind, const void *src, int64_t rows,
		    int64_t cols, int transposed, struct tk_diag *d)
{
	const size_t n = (size_t)rows * (size_t)cols;
	uint16_t *h;

	memset(q, 0, sizeof(*q));
	if (!tk_qkind_half(kind) || rows <= 0 || cols <= 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "not a 16-bit float weight");
	if (!(h = tk_mallocn(n, sizeof(uint16_t))))
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	if (!transposed) {
		memcpy(h, src, n * sizeof(uint16_t));
	} else { /* in tiles of 32 x 32, each read and written in cache */
#pragma omp parallel for schedule(static) if (n >= 65536)
		for (int64_t r0 = 0; r0 < rows; r0 += 32)
			for (int64_t c0 = 0; c0 < cols; c0 += 32)
				for (int64_t r = r0; r < rows && r < r0 + 32; r++)
					for (int64_t c = c0; c < cols && c < c0 + 32; c++)
						memcpy(h + r * cols + c,
						       (const char *)src +
							       (c * rows + r) * sizeof(uint16_t),
						       sizeof(uint16_t));
	}
	q->kind = kind;
	q->rows = rows;
	q->cols = cols;
	q->data = (uint8_t *)h;
	return 0;
}

size_t tk_qweight_bytes(const struct tk_qweight *q)
{
	size_t n = (size_t)q->rows * (size_t)q->cols, nb;

	if (tk_qkind_half(q->kind))
		return n * sizeof(uint16_t);
	if (q->kind == TK_QK_INT8)
		return n + (size_t)q->rows * sizeof(float);
	if (!q->blocksize)
		return 0;
	nb = tk_q4_nblocks(n, q->blocksize);
	if (q->nested)
		return tk_q4_packed_size(n) + nb +
		       tk_q4_nblocks(nb, TK_Q4_NESTED_BLOCKSIZE) * sizeof(float);
	return tk_q4_packed_size(n) + nb * sizeof(float);
}

void tk_qweight_bufs(struct tk_qweight *q, void **p[TK_QWEIGHT_NBUF],
		     size_t bytes[TK_QWEIGHT_NBUF])
{
	size_t n = (size_t)q->rows * (size_t)q->cols;
	size_t nb = q->blocksize ? tk_q4_nblocks(n, q->blocksize) : 0;

	p[0] = (void **)&q->data;
	p[1] = (void **)&q->absmax;
	p[2] = (void **)&q->qabsmax;
	p[3] = (void **)&q->nested_absmax;
	p[4] = (void **)&q->scb;
	bytes[0] = q->kind == TK_QK_INT8	  ? n
		   : tk_qkind_half(q->kind) ? n * sizeof(uint16_t)
					    : tk_q4_packed_size(n);
	bytes[1] = nb * sizeof(float);
	bytes[2] = nb;
	bytes[3] = tk_q4_nblocks(nb, TK_Q4_NESTED_BLOCKSIZE) * sizeof(float);
	bytes[4] = (size_t)q->rows * sizeof(float);
}

void tk_qweight_free(struct tk_qweight *q)
{
	void **p[TK_QWEIGHT_NBUF];
	size_t bytes[TK_QWEIGHT_NBUF];

	tk_qweight_bufs(q, p, bytes);
	for (int i = 0; i < TK_QWEIGHT_NBUF; i++) {
		if (q->release)
			q->release(q->owner, *p[i]);
		else
			free(*p[i]);
	}
	memset(q, 0, sizeof(*q));
}

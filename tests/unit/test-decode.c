/* test-decode.c - the CPU backend's decode ops (lib/compute/backend.h): qmatmul on
 * NF4/FP4 (plain and double-quantized), int8 and half (BF16, F16) weights
 * against tk_qweight_rows and a dot product in double, half weights also
 * bit for bit against matmul on their fp32 widening; matmul_group against
 * matmul and qmatmul; attention_decode against a softmax in double;
 * copy_rows.
 *
 * Tolerances.  qmatmul: each weight element has tk_qweight_rows' bits, and
 * an fp32 sum of k products in any order is within gamma_k = k u / (1 - k u)
 * (u = 2^-24) times the sum of their magnitudes of the exact sum (Higham,
 * Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5); the
 * bound below is that with k = cols + 2 (the product with beta and its
 * sum).  The AVX2 loop sums each block's code * x products in 16 lanes (8
 * when m > 4) and multiplies by the absmax after: on any product's path,
 * against the elements' bits, one more rounding (code * absmax), up to
 * blocksize / 8 adds in its block, one for the absmax, cols / blocksize across blocks and 4
 * in the final sum: under cols + 2 for every size the loops take (cols
 * and blocksize multiples of 64).  One wrong element (a swapped nibble, the wrong block's absmax) is
 * off by about sum / cols, hundreds of times the bound at these sizes.
 * attention_decode: values and queries in [-1, 1), D = 8: fp32 softmax and
 * weighted sum against double, 2e-6 absolute (measured: under 3e-7).
 */
#include <float.h>
#include <math.h>

#include "compute/backend.h"
#include "compute/cpu.h"
#include "jobs/generate.h"
#include "model/model.h"
#include "base/quant.h"
#include "base/math-common.h"
#include "tt.h"

static uint64_t rng = 88172645463325252ull;

/* Uniform in [-1, 1) (xorshift64). */
static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static struct tk_backend be1, be2; /* 1 and 2 threads */

/* A tk_qweight release for memory its test frees itself. */
static void release_noop(void *owner, void *p)
{
	(void)owner, (void)p;
}

static void init_backends(void)
{
	if (!be1.i && tk_backend_cpu_init(&be1, 1, NULL))
		exit(2);
	if (!be2.i && tk_backend_cpu_init(&be2, 2, NULL))
		exit(2);
}

/* An int8 weight [rows, cols] with random codes and row scales. */
static int make_int8(struct tk_qweight *q, int64_t rows, int64_t cols)
{
	memset(q, 0, sizeof(*q));
	q->kind = TK_QK_INT8;
	q->rows = rows;
	q->cols = cols;
	q->data = malloc((size_t)(rows * cols));
	q->scb = malloc((size_t)rows * sizeof(float));
	if (!q->data || !q->scb)
		return TK_E_NOMEM;
	for (int64_t i = 0; i < rows * cols; i++)
		((int8_t *)q->data)[i] = (int8_t)(frand() * 127.0f);
	for (int64_t r = 0; r < rows; r++)
		q->scb[r] = 0.5f + fabsf(frand());
	return 0;
}

/* Checks tk_qmatmul(q, row0, n, m) with beta against the reference; with
 * beta 0, y starts as NaN (it must not be read).  Also checks that two
 * threads give the bits of one. */
static void check_qmm(const struct tk_qweight *q, int64_t row0, int n, int m, float beta,
		      const char *what)
{
	const int64_t cols = q->cols;
	const int ldy = n + 3;
	float *x = malloc((size_t)(m * cols) * sizeof(float));
	float *w = malloc((size_t)(n * cols) * sizeof(float));
	float *y = malloc((size_t)m * ldy * sizeof(float));
	float *y2 = malloc((size_t)m * ldy * sizeof(float));
	float *y0 = malloc((size_t)m * ldy * sizeof(float));
	const double u = ldexp(1.0, -24), k = (double)cols + 2;
	double worst = 0.0;

	TT_REQUIRE(x && w && y && y2 && y0, "out of memory");
	for (int64_t i = 0; i < m * cols; i++)
		x[i] = frand();
	for (int i = 0; i < m * ldy; i++)
		y0[i] = beta == 0.0f ? NAN : frand();
	memcpy(y, y0, (size_t)m * ldy * sizeof(float));
	memcpy(y2, y0, (size_t)m * ldy * sizeof(float));
	TT_REQUIRE(tk_qweight_rows(q, row0, n, w, NULL) == 0, "%s: tk_qweight_rows", what);
	TT_REQUIRE(tk_qmatmul(&be1, q, row0, n, m, x, y, ldy, beta) == 0, "%s: qmatmul", what);
	TT_REQUIRE(tk_qmatmul(&be2, q, row0, n, m, x, y2, ldy, beta) == 0, "%s: qmatmul x2",
		   what);
	for (int i = 0; i < m; i++) {
		for (int r = 0; r < n; r++) {
			double s = 0.0, mag = 0.0, tol, err;
			for (int64_t c = 0; c < cols; c++) {
				double p = (double)x[i * cols + c] * w[r * cols + c];
				s += p;
				mag += fabs(p);
			}
			if (beta != 0.0f) {
				s += (double)beta * y0[i * ldy + r];
				mag += fabs((double)beta * y0[i * ldy + r]);
			}
			tol = k * u / (1.0 - k * u) * mag;
			err = fabs((double)y[i * ldy + r] - s);
			if (err / (tol > 0 ? tol : 1e-300) > worst)
				worst = err / (tol > 0 ? tol : 1e-300);
			TT_REQUIRE(err <= tol, "%s: y[%d][%d] = %.9g, want %.9g (tol %.3g)", what,
				   i, r, y[i * ldy + r], s, tol);
			TT_REQUIRE(y[i * ldy + r] == y2[i * ldy + r], "%s: 2 threads differ at [%d][%d]",
				   what, i, r);
		}
		for (int r = n; r < ldy; r++) /* past n: untouched */
			TT_REQUIRE(memcmp(&y[i * ldy + r], &y0[i * ldy + r], sizeof(float)) == 0,
				   "%s: y[%d][%d] written past n", what, i, r);
	}
	free(x);
	free(w);
	free(y);
	free(y2);
	free(y0);
}

/* A random 16-bit float of kind k: any sign, magnitudes 2^-20 .. 2^4
 * (bf16) or zero, subnormal and normal up to 2^4 (f16); never Inf/NaN. */
static uint16_t half_rand(enum tk_qkind k)
{
	uint32_t r = (uint32_t)((frand() + 1.0f) * 32767.0f);
	uint16_t sign = (uint16_t)((r & 1) << 15), mant = (uint16_t)(r >> 1);
	uint16_t e = (uint16_t)((frand() + 1.0f) * 12.0f); /* 0 .. 23 */

	if (k == TK_QK_BF16) /* exponent 107 .. 130, 7 mantissa bits */
		return (uint16_t)(sign | (uint16_t)((107 + e) << 7) | (mant & 0x7f));
	return (uint16_t)(sign | (uint16_t)((e < 20 ? e : 19) << 10) | (mant & 0x3ff));
}

/* The value of a 16-bit float, computed apart from the library. */
static float half_value(enum tk_qkind k, uint16_t h)
{
	double sign = h >> 15 ? -1.0 : 1.0;
	if (k == TK_QK_BF16) {
		int e = (h >> 7) & 255, m = h & 127;
		return (float)(sign * (e ? ldexp(1.0 + m / 128.0, e - 127) : ldexp(m / 128.0, -126)));
	}
	int e = (h >> 10) & 31, m = h & 1023;
	return (float)(sign * (e ? ldexp(1.0 + m / 1024.0, e - 15) : ldexp(m / 1024.0, -14)));
}

/* Half weights (BF16, F16): tk_qweight_half (plain and transposed),
 * tk_qweight_rows against each value, qmatmul against the reference
 * (check_qmm) and, where the GEMV loops run (m <= 8, AVX2 and up), with
 * the bits tk_matmul gives on the widened weight. */
static void test_qmatmul_half(void)
{
	static const int64_t shapes[][2] = { { 1, 1 }, { 5, 7 }, { 50, 17 }, { 130, 64 },
					     { 97, 1000 }, { 9, 5000 } };
	static const enum tk_qkind kinds[] = { TK_QK_BF16, TK_QK_F16 };

	init_backends();
	for (size_t ki = 0; ki < 2; ki++)
		for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
			const enum tk_qkind kind = kinds[ki];
			const int64_t rows = shapes[si][0], cols = shapes[si][1];
			const size_t n = (size_t)(rows * cols);
			uint16_t *h = malloc(n * sizeof(uint16_t)), *ht = malloc(n * sizeof(uint16_t));
			float *w = malloc(n * sizeof(float)), *x = malloc(8 * (size_t)cols * sizeof(float));
			float *y = malloc(8 * (size_t)rows * sizeof(float));
			float *z = malloc(8 * (size_t)rows * sizeof(float));
			struct tk_qweight q, qt;
			char what[64];

			TT_REQUIRE(h && ht && w && x && y && z, "out of memory");
			for (size_t i = 0; i < n; i++)
				h[i] = half_rand(kind);
			for (int64_t r = 0; r < rows; r++) /* ht: h transposed, [cols, rows] */
				for (int64_t c = 0; c < cols; c++)
					ht[c * rows + r] = h[r * cols + c];
			TT_REQUIRE(tk_qweight_half(&q, kind, h, rows, cols, 0, NULL) == 0, "half");
			TT_REQUIRE(tk_qweight_half(&qt, kind, ht, rows, cols, 1, NULL) == 0, "half^T");
			TT_CHECK(!memcmp(q.data, qt.data, n * sizeof(uint16_t)),
				 "%lldx%lld: the transposed copy differs", (long long)rows,
				 (long long)cols);
			TT_CHECK(tk_qweight_bytes(&q) == n * sizeof(uint16_t), "bytes");
			TT_REQUIRE(tk_qweight_rows(&q, 0, rows, w, NULL) == 0, "rows");
			for (size_t i = 0; i < n; i++)
				TT_REQUIRE(w[i] == half_value(kind, h[i]), "%s %#x widened to %.9g",
					   kind == TK_QK_BF16 ? "bf16" : "f16", h[i], w[i]);
			float *wd = malloc(n * sizeof(float));
			TT_REQUIRE(wd, "out of memory");
			TT_REQUIRE(tk_dequant_rows(&be2, &q, 0, rows, wd, NULL) == 0, "dequant_rows");
			TT_CHECK(!memcmp(w, wd, n * sizeof(float)), "dequant_rows: other bits");
			free(wd);
			for (int m = 1; m <= 9; m += (m < 3 ? 1 : 3)) {
				snprintf(what, sizeof(what), "%s %lldx%lld m %d",
					 kind == TK_QK_BF16 ? "bf16" : "f16", (long long)rows,
					 (long long)cols, m);
				check_qmm(&q, 0, (int)rows, m, 0.0f, what);
				if (rows > 2)
					check_qmm(&q, 1, (int)rows - 2, m, 0.5f, what);
				for (size_t i = 0; i < (size_t)(m < 8 ? m : 8) * cols; i++)
					x[i] = frand();
				if (m > 8 || tk_cpu_isa() < TK_CPU_ISA_AVX2)
					continue;
				TT_REQUIRE(tk_qmatmul(&be2, &q, 0, (int)rows, m, x, y, (int)rows,
						      0.0f) == 0, "qmatmul");
				TT_REQUIRE(tk_matmul(&be2, 0, 1, m, (int)rows, (int)cols, 1.0f, x,
						     (int)cols, w, (int)cols, 0.0f, z, (int)rows) == 0,
					   "matmul");
				TT_CHECK(!memcmp(y, z, (size_t)m * rows * sizeof(float)),
					 "%s: not the bits of the fp32 GEMV", what);
			}
			tk_qweight_free(&q);
			tk_qweight_free(&qt);
			free(h);
			free(ht);
			free(w);
			free(x);
			free(y);
			free(z);
		}
}

static void test_qmatmul_4bit(void)
{
	/* 301 columns: rows start in the middle of a byte and of a block; blocks
	 * of 64 cross rows.  300 x 301 is past the size that goes parallel. */
	const int64_t rows = 300, cols = 301;
	float *x = malloc((size_t)(rows * cols) * sizeof(float));
	char what[64];

	init_backends();
	TT_REQUIRE(x, "out of memory");
	for (int64_t i = 0; i < rows * cols; i++)
		x[i] = frand() * (1.0f + (float)(i % 7));
	for (int kind = TK_QK_NF4; kind <= TK_QK_FP4; kind++)
		for (int nested = 0; nested <= 1; nested++) {
			struct tk_qweight q;
			TT_REQUIRE(tk_qweight_quantize4(&q, x, rows, cols, (enum tk_qkind)kind, 64,
							nested, 1, NULL) == 0, "quantize");
			snprintf(what, sizeof(what), "%s%s", kind == TK_QK_NF4 ? "nf4" : "fp4",
				 nested ? " nested" : "");
			check_qmm(&q, 0, (int)rows, 1, 0.0f, what);
			check_qmm(&q, 7, 33, 3, 1.0f, what);
			check_qmm(&q, 1, 299, 8, 0.0f, what);
			check_qmm(&q, 299, 1, 5, 0.5f, what);
			tk_qweight_free(&q);
			if (tt_failed_now)
				break;
		}
	free(x);
}

/* Columns and block sizes that are multiples of 64: the CPU's loops that
 * read the codes directly (backend-cpu-gemv.c) at AVX2 and AVX-512.  576
 * columns with blocks of 128 or 256: rows start inside a block; m 12: two
 * passes of 8 over the weight. */
static void test_qmatmul_64(void)
{
	const int64_t rows = 67, cols = 576;
	static const size_t bss[] = { 64, 128, 256 };
	float *x = malloc((size_t)(rows * cols) * sizeof(float));
	char what[64];

	init_backends();
	TT_REQUIRE(x, "out of memory");
	for (int64_t i = 0; i < rows * cols; i++)
		x[i] = frand() * (1.0f + (float)(i % 5));
	for (size_t bi = 0; bi < sizeof(bss) / sizeof(bss[0]) && !tt_failed_now; bi++)
		for (int kind = TK_QK_NF4; kind <= TK_QK_FP4 && !tt_failed_now; kind++)
			for (int nested = 0; nested <= 1 && !tt_failed_now; nested++) {
				struct tk_qweight q;
				TT_REQUIRE(tk_qweight_quantize4(&q, x, rows, cols,
								(enum tk_qkind)kind, bss[bi],
								nested, 1, NULL) == 0,
					   "quantize");
				snprintf(what, sizeof(what), "%s%s bs%zu",
					 kind == TK_QK_NF4 ? "nf4" : "fp4", nested ? " nested" : "",
					 bss[bi]);
				check_qmm(&q, 0, (int)rows, 1, 0.0f, what);
				check_qmm(&q, 3, 61, 8, 0.5f, what);
				check_qmm(&q, 1, 5, 12, 1.0f, what);
				check_qmm(&q, 0, (int)rows, 5, 0.0f, what);
				tk_qweight_free(&q);
			}
	free(x);
}

/* tk_dequant_rows on the CPU backend (the AVX-512 or AVX2 row loops, at
 * each level this CPU runs) gives tk_qweight_rows' bits: odd and
 * 64-multiple widths, blocks across rows, nested or not, NF4 and FP4. */
static void test_dequant_rows_isas(void)
{
	static const struct { int64_t rows, cols; size_t bs; } sh[] = {
		{ 67, 576, 64 }, { 40, 301, 64 }, { 9, 128, 256 }, { 33, 576, 128 },
	};
	char *saved = tt_env_save("TK_CPU_ISA");

	init_backends();
	for (int isa = (int)tk_cpu_isa_best(); isa >= 0 && !tt_failed_now; isa--) {
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
		for (size_t s = 0; s < sizeof(sh) / sizeof(sh[0]) && !tt_failed_now; s++)
			for (int kind = TK_QK_NF4; kind <= TK_QK_FP4 && !tt_failed_now; kind++)
				for (int nested = 0; nested <= 1 && !tt_failed_now; nested++) {
		const int64_t rows = sh[s].rows, cols = sh[s].cols, n = rows - 2;
		float *x = malloc((size_t)(rows * cols) * sizeof(float));
		float *a = malloc((size_t)(rows * cols) * sizeof(float));
		float *b = malloc((size_t)(rows * cols) * sizeof(float));
		struct tk_qweight q;
		TT_REQUIRE(x && a && b, "out of memory");
		for (int64_t i = 0; i < rows * cols; i++)
			x[i] = frand() * (1.0f + (float)(i % 3));
		TT_REQUIRE(tk_qweight_quantize4(&q, x, rows, cols, (enum tk_qkind)kind, sh[s].bs,
						nested, 1, NULL) == 0, "quantize");
		TT_REQUIRE(tk_qweight_rows(&q, 1, n, a, NULL) == 0, "tk_qweight_rows");
		TT_REQUIRE(tk_dequant_rows(&be2, &q, 1, n, b, NULL) == 0, "tk_dequant_rows");
		TT_CHECK(!memcmp(a, b, (size_t)(n * cols) * sizeof(float)),
			 "%s: %s%s %lldx%lld bs %zu: not tk_qweight_rows' bits",
			 tk_cpu_isa_name((enum tk_cpu_isa)isa), kind == TK_QK_NF4 ? "nf4" : "fp4",
			 nested ? " nested" : "", (long long)rows, (long long)cols, sh[s].bs);
		tk_qweight_free(&q);
		free(x), free(a), free(b);
				}
	}
	tt_env_restore("TK_CPU_ISA", saved);
}

/* Column panels (backend-cpu-gemv.c: 4096 / MR floats of x, a multiple of
 * 64) that end inside a block of 256: 1600 columns, m 3 (panels of 1344)
 * and 5 (panels of 768); 37 rows, not a multiple of the
 * 16 a thread takes. */
static void test_qmatmul_panels(void)
{
	const int64_t rows = 37, cols = 1600;
	float *x = malloc((size_t)(rows * cols) * sizeof(float));

	init_backends();
	TT_REQUIRE(x, "out of memory");
	for (int64_t i = 0; i < rows * cols; i++)
		x[i] = frand() * (1.0f + (float)(i % 11));
	for (int kind = TK_QK_NF4; kind <= TK_QK_FP4 && !tt_failed_now; kind++) {
		struct tk_qweight q;
		TT_REQUIRE(tk_qweight_quantize4(&q, x, rows, cols, (enum tk_qkind)kind, 256, 1, 1,
						NULL) == 0, "quantize");
		check_qmm(&q, 0, (int)rows, 3, 0.0f, kind == TK_QK_NF4 ? "nf4 panels" : "fp4 panels");
		check_qmm(&q, 2, 35, 5, 0.5f, kind == TK_QK_NF4 ? "nf4 panels" : "fp4 panels");
		check_qmm(&q, 1, 33, 1, 0.0f, kind == TK_QK_NF4 ? "nf4 panels" : "fp4 panels");
		tk_qweight_free(&q);
	}
	free(x);
}

static void test_qmatmul_blocksize(void)
{
	/* 128 columns, blocks of 256: a block spans two rows */
	const int64_t rows = 9, cols = 128;
	float x[9 * 128];
	struct tk_qweight q;

	init_backends();
	for (int i = 0; i < rows * cols; i++)
		x[i] = frand();
	TT_REQUIRE(tk_qweight_quantize4(&q, x, rows, cols, TK_QK_NF4, 256, 1, 1, NULL) == 0,
		   "quantize");
	check_qmm(&q, 1, 7, 2, 0.0f, "nf4 bs256");
	tk_qweight_free(&q);
}

/* tk_qweight_flatten_absmax: a double-quantized weight gives the bits it
 * gave before, dequantized (tk_qweight_rows, tk_dequant_rows) and in
 * qmatmul (m 1, 3, 8: the GEMV loops where they run, the portable ones
 * elsewhere), at block sizes 64, 128 and 256 with blocks across rows, and
 * more than one group of nested blocks (70 x 576 in blocks of 64: 630
 * blocks, 3 groups of 256); a weight without double
 * quantization is left as it is; memory not malloc'd is refused. */
static void test_flatten_absmax(void)
{
	static const struct { int64_t rows, cols; size_t bs; } sh[] = {
		{ 70, 576, 64 }, { 33, 192, 128 }, { 9, 128, 256 }, { 300, 301, 64 },
	};
	static const int ms[] = { 1, 3, 8 };

	init_backends();
	for (size_t si = 0; si < sizeof(sh) / sizeof(sh[0]) && !tt_failed_now; si++)
		for (int kind = TK_QK_NF4; kind <= TK_QK_FP4 && !tt_failed_now; kind++)
			for (int nested = 0; nested <= 1 && !tt_failed_now; nested++) {
		const int64_t rows = sh[si].rows, cols = sh[si].cols;
		const size_t n = (size_t)(rows * cols);
		float *w = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float));
		float *b = malloc(n * sizeof(float)), *x = malloc(8 * (size_t)cols * sizeof(float));
		float *y[3], *z = malloc(8 * (size_t)rows * sizeof(float));
		struct tk_qweight q;
		char what[64];

		TT_REQUIRE(w && a && b && x && z, "out of memory");
		snprintf(what, sizeof(what), "%s%s %lldx%lld bs %zu", kind == TK_QK_NF4 ? "nf4" : "fp4",
			 nested ? " nested" : "", (long long)rows, (long long)cols, sh[si].bs);
		for (size_t i = 0; i < n; i++)
			w[i] = frand() * (1.0f + (float)(i % 13));
		for (size_t i = 0; i < 8 * (size_t)cols; i++)
			x[i] = frand();
		TT_REQUIRE(tk_qweight_quantize4(&q, w, rows, cols, (enum tk_qkind)kind, sh[si].bs,
						nested, 1, NULL) == 0, "quantize");
		TT_REQUIRE(tk_qweight_rows(&q, 0, rows, a, NULL) == 0, "rows");
		for (int k = 0; k < 3; k++) {
			y[k] = malloc((size_t)ms[k] * (size_t)rows * sizeof(float));
			TT_REQUIRE(y[k], "out of memory");
			TT_REQUIRE(tk_qmatmul(&be2, &q, 0, (int)rows, ms[k], x, y[k], (int)rows,
					      0.0f) == 0, "qmatmul");
		}
		struct tk_qweight before = q;
		TT_CHECK(tk_qweight_flatten_absmax(&q) == 0, "%s: flatten", what);
		TT_CHECK(!q.nested && q.absmax && !q.qabsmax && !q.nested_absmax, "%s: still nested",
			 what);
		TT_CHECK(nested || (q.absmax == before.absmax && q.data == before.data),
			 "%s: a plain weight changed", what);
		TT_REQUIRE(tk_qweight_rows(&q, 0, rows, b, NULL) == 0, "rows");
		TT_CHECK(!memcmp(a, b, n * sizeof(float)), "%s: tk_qweight_rows' bits changed", what);
		TT_REQUIRE(tk_dequant_rows(&be2, &q, 0, rows, b, NULL) == 0, "dequant_rows");
		TT_CHECK(!memcmp(a, b, n * sizeof(float)), "%s: tk_dequant_rows' bits changed", what);
		for (int k = 0; k < 3; k++) {
			TT_REQUIRE(tk_qmatmul(&be2, &q, 0, (int)rows, ms[k], x, z, (int)rows, 0.0f) == 0,
				   "qmatmul");
			TT_CHECK(!memcmp(y[k], z, (size_t)ms[k] * rows * sizeof(float)),
				 "%s m %d: qmatmul's bits changed", what, ms[k]);
			free(y[k]);
		}
		tk_qweight_free(&q);
		free(w), free(a), free(b), free(x), free(z);
			}
	{ /* a weight in memory the library did not malloc */
		float w[64 * 4];
		struct tk_qweight q;
		for (int i = 0; i < 64 * 4; i++)
			w[i] = frand();
		TT_REQUIRE(tk_qweight_quantize4(&q, w, 4, 64, TK_QK_NF4, 64, 1, 1, NULL) == 0,
			   "quantize");
		q.release = release_noop;
		TT_CHECK(tk_qweight_flatten_absmax(&q) == TK_E_UNSUPPORTED && q.nested,
			 "foreign memory flattened");
		q.release = NULL;
		tk_qweight_free(&q);
	}
}

static void test_qmatmul_int8(void)
{
	struct tk_qweight q;

	init_backends();
	TT_REQUIRE(make_int8(&q, 257, 301) == 0, "out of memory");
	check_qmm(&q, 0, 257, 1, 0.0f, "int8");
	check_qmm(&q, 100, 17, 4, 1.0f, "int8");
	tk_qweight_free(&q);
}

static void test_qmatmul_bad(void)
{
	struct tk_qweight q;
	float x[64 * 2] = { 0 }, y[4] = { 0 };

	init_backends();
	TT_REQUIRE(make_int8(&q, 4, 64) == 0, "out of memory");
	TT_CHECK(tk_qmatmul(&be1, &q, 3, 2, 1, x, y, 2, 0.0f) == TK_E_INVAL, "rows past the end");
	TT_CHECK(tk_qmatmul(&be1, &q, 0, 2, 1, x, y, 1, 0.0f) == TK_E_INVAL, "ldy < n");
	TT_CHECK(tk_qmatmul(&be1, &q, 0, 2, -1, x, y, 2, 0.0f) == TK_E_INVAL, "m < 0");
	q.kind = TK_QK_NF4;
	q.blocksize = 48; /* not a block size bitsandbytes takes */
	TT_CHECK(tk_qmatmul(&be1, &q, 0, 2, 1, x, y, 2, 0.0f) == TK_E_INVAL, "bad blocksize");
	q.kind = TK_QK_INT8;
	tk_qweight_free(&q);
}

/* out [n, H*D] as a softmax in double over the window of each row, scores
 * scaled and capped as ao says. */
static void ref_attention(double *out, const float *q, const float *kc, const float *vc,
			  const int32_t *seq, const int32_t *pos, int n, int max_len, int H,
			  int KV, int D, const struct tk_attn_opts *ao)
{
	int G = H / KV, K = KV * D, window = ao->window;

	for (int i = 0; i < n; i++)
		for (int h = 0; h < H; h++) {
			int T = pos[i] + 1, j0 = window > 0 && T > window ? T - window : 0;
			const float *kb = kc + (size_t)seq[i] * max_len * K + (size_t)(h / G) * D;
			const float *vb = vc + (size_t)seq[i] * max_len * K + (size_t)(h / G) * D;
			double sc[64], mx = -INFINITY, sum = 0.0;
			double *o = out + (size_t)i * H * D + (size_t)h * D;

			for (int j = j0; j < T; j++) {
				double d = 0.0;
				for (int e = 0; e < D; e++)
					d += (double)q[(i * H + h) * D + e] * kb[(size_t)j * K + e];
				sc[j] = d * (ao->scale > 0.0f ? ao->scale : 1.0 / sqrt((double)D));
				if (ao->softcap > 0.0f)
					sc[j] = ao->softcap * tanh(sc[j] / ao->softcap);
				mx = sc[j] > mx ? sc[j] : mx;
			}
			for (int j = j0; j < T; j++)
				sum += sc[j] = exp(sc[j] - mx);
			for (int e = 0; e < D; e++)
				o[e] = 0.0;
			for (int j = j0; j < T; j++)
				for (int e = 0; e < D; e++)
					o[e] += sc[j] / sum * vb[(size_t)j * K + e];
		}
}

/* Head widths D: 8, and 40 (two 16-wide steps of the scores' lanes and 8
 * more). */
static void attention_case(const int D)
{
	enum { NSEQ = 4, L = 20, H = 4, KV = 2, DMAX = 40, N = 7 };
	const int K = KV * D;
	/* a prefill of 4 rows of sequence 1, one step of 0 and of 2 (at the
	 * end of its context), the first row of 3 */
	const int32_t seq[N] = { 1, 1, 1, 1, 0, 2, 3 };
	const int32_t pos[N] = { 0, 1, 2, 3, 5, 19, 0 };
	static float kc[NSEQ * L * KV * DMAX], vc[NSEQ * L * KV * DMAX], q[N * H * DMAX];
	static float out[N * H * DMAX];
	static double want[N * H * DMAX];
	float full19[H * DMAX];

	init_backends();
	for (int i = 0; i < N * H * D; i++)
		q[i] = frand() * 2.0f;
	/* full; a window of 4; the window with Gemma-2's scale and capping */
	const struct tk_attn_opts cases[3] = { { 0.0f, 0, 0.0f, 0 },
					       { 0.0f, 4, 0.0f, 0 },
					       { 0.3f, 4, 1.5f, 0 } };
	for (int c = 0; c < 3; c++) {
		const struct tk_attn_opts *ao = &cases[c];
		int window = ao->window;
		/* every cache row a query must not see is NaN */
		for (int i = 0; i < NSEQ * L * K; i++)
			kc[i] = vc[i] = NAN;
		for (int s = 0; s < NSEQ; s++)
			for (int j = 0; j < L; j++) {
				int top = -1; /* the last position sequence s attends to */
				for (int i = 0; i < N; i++)
					if (seq[i] == s && pos[i] > top)
						top = pos[i];
				int lo = window && top + 1 > window ? top + 1 - window : 0;
				/* rows of a prefill see earlier rows: keep all up to top */
				if (s == 1)
					lo = 0;
				if (j < lo || j > top)
					continue;
				for (int e = 0; e < K; e++) {
					kc[((size_t)s * L + j) * K + e] = frand();
					vc[((size_t)s * L + j) * K + e] = frand();
				}
			}
		for (int b = 0; b < 2; b++) {
			struct tk_backend *be = b ? &be2 : &be1;
			memset(out, 0, sizeof(out));
			TT_REQUIRE(tk_attention_decode(be, out, q, kc, vc, seq, pos, N, L, H, KV, D,
						       c ? ao : NULL) == 0, "attention_decode");
			ref_attention(want, q, kc, vc, seq, pos, N, L, H, KV, D, ao);
			for (int i = 0; i < N * H * D; i++)
				TT_REQUIRE(fabs(out[i] - want[i]) <= 2e-6,
					   "D %d, case %d, %d threads: out[%d] = %.9g, want %.9g", D, c,
					   b + 1, i, out[i], want[i]);
		}
		if (c == 0)
			memcpy(full19, out + 5 * H * D, (size_t)H * D * sizeof(float));
		/* the window changed the row at position 19 (else the case tests nothing) */
		if (c == 1)
			TT_CHECK(memcmp(full19, out + 5 * H * D, (size_t)H * D * sizeof(float)) != 0,
				 "window had no effect");
	}
	struct tk_attn_opts bad[3] = { { -1.0f, 0, 0.0f, 0 }, { 0.0f, -1, 0.0f, 0 }, { 0.0f, 0, NAN, 0 } };
	TT_CHECK(tk_attention_decode(&be1, out, q, kc, vc, seq, pos, N, L, 3, KV, D, NULL) ==
			 TK_E_INVAL, "n_head not a multiple of n_kv_head");
	for (int i = 0; i < 3; i++)
		TT_CHECK(tk_attention_decode(&be1, out, q, kc, vc, seq, pos, N, L, H, KV, D,
					     &bad[i]) == TK_E_INVAL, "bad options %d", i);
	TT_CHECK(tk_attention_decode(&be1, out, q, kc, vc, seq, pos, N, 19, H, KV, D, NULL) ==
			 TK_E_INVAL, "position 19 in a cache of 19");
}

static void test_attention_decode(void)
{
	attention_case(8);
	attention_case(40);
}

/* Grouped-query attention gives each query head the bits it gets with its
 * KV head copied for it alone (multi-head attention over a cache holding
 * that copy): the KV groups' heads, handled together (up to 4 a pass
 * over the values), in the same order of operations as one at a time.
 * Groups of 1 to 7 heads, head widths 40 and 64, a window and capping,
 * every instruction-set level this CPU runs, 1 and 2 threads, a decode
 * step of 3 sequences and a prefill of 9 rows (n > 8: the OpenMP loop);
 * short contexts (a head a pool iteration) and long ones, whose decode
 * steps take the phased attention (keys in chunks, values in slices of
 * columns): spans of 270 to 300 keys (not multiples of the chunk or of 4)
 * beside a row of 8 in the same step. */
static void test_attention_gqa_bits(void)
{
	enum { LMAX = 300, KV = 2, GMAX = 7, DMAX = 64, NMAX = 9 };
	static const int gs[] = { 1, 2, 3, 5, 7 }, ds[] = { 40, 64 };
	static float kc[LMAX * KV * DMAX * 2], vc[LMAX * KV * DMAX * 2];
	static float km[LMAX * KV * GMAX * DMAX * 2], vm[LMAX * KV * GMAX * DMAX * 2];
	static float q[NMAX * KV * GMAX * DMAX], a[NMAX * KV * GMAX * DMAX];
	static float b[NMAX * KV * GMAX * DMAX];
	static const int32_t dseq[3] = { 0, 1, 0 }, dpos[2][3] = { { 20, 7, 21 }, { 290, 7, 299 } };
	int32_t pseq[NMAX], ppos[2][NMAX];
	static const struct tk_attn_opts opts[2][2] = { { { 0.0f, 0, 0.0f, 0 }, { 0.3f, 5, 1.5f, 0 } },
							{ { 0.0f, 0, 0.0f, 0 }, { 0.3f, 270, 1.5f, 0 } } };
	char *saved = tt_env_save("TK_CPU_ISA");

	init_backends();
	for (int i = 0; i < NMAX; i++)
		pseq[i] = 1, ppos[0][i] = 3 + i, ppos[1][i] = 280 + 2 * i;
	for (int isa = (int)tk_cpu_isa_best(); isa >= 0 && !tt_failed_now; isa--) {
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
		for (size_t gi = 0; gi < sizeof(gs) / sizeof(gs[0]); gi++)
			for (size_t di = 0; di < sizeof(ds) / sizeof(ds[0]); di++)
				for (int c = 0; c < 2 * 2 * 2 * 2 && !tt_failed_now; c++) {
		const int G = gs[gi], D = ds[di], H = KV * G, K = KV * D, lng = c >> 3;
		const int L = lng ? LMAX : 24, prefill = c & 1, n = prefill ? NMAX : 3;
		const int32_t *seq = prefill ? pseq : dseq, *pos = prefill ? ppos[lng] : dpos[lng];
		const struct tk_attn_opts *ao = &opts[lng][(c >> 1) & 1];
		struct tk_backend *be = c & 4 ? &be2 : &be1;
		/* 2 sequences of L positions; the MHA cache: head h holds a
		 * copy of KV head h / G */
		for (int i = 0; i < 2 * L * K; i++)
			kc[i] = frand(), vc[i] = frand();
		for (int r = 0; r < 2 * L; r++)
			for (int h = 0; h < H; h++)
				for (int e = 0; e < D; e++) {
					km[((size_t)r * H + h) * D + e] = kc[((size_t)r * KV + h / G) * D + e];
					vm[((size_t)r * H + h) * D + e] = vc[((size_t)r * KV + h / G) * D + e];
				}
		for (int i = 0; i < n * H * D; i++)
			q[i] = frand() * 2.0f;
		TT_REQUIRE(tk_attention_decode(be, a, q, kc, vc, seq, pos, n, L, H, KV, D, ao) == 0,
			   "gqa");
		TT_REQUIRE(tk_attention_decode(be, b, q, km, vm, seq, pos, n, L, H, H, D, ao) == 0,
			   "mha");
		TT_CHECK(!memcmp(a, b, (size_t)n * H * D * sizeof(float)),
			 "%s G %d D %d %s, %s, %s, %d threads: not the bits of its heads alone",
			 tk_cpu_isa_name((enum tk_cpu_isa)isa), G, D, prefill ? "prefill" : "decode",
			 lng ? "long" : "short", (c >> 1) & 1 ? "window and cap" : "full",
			 c & 4 ? 2 : 1);
				}
	}
	tt_env_restore("TK_CPU_ISA", saved);
}

/* A decode step gives each row the bits a prompt pass gives it: a row
 * alone (n = 1: over 256 keys, the phased attention, keys split in chunks
 * among the threads) against the same row among 9 (n > 8: one loop per
 * head group, the chunks' value sums added in the same order).  Spans of
 * 1 to 3 chunks and not a multiple of 4, short rows beside long ones in
 * the prompt pass, a window and capping, 1 and 7 query heads a KV head,
 * head widths 40 and 64, every instruction-set level, 1 and 2 threads. */
static void test_attention_phased_bits(void)
{
	enum { L = 400, KV = 2, GMAX = 7, DMAX = 64, N = 9 };
	static float kc[L * KV * DMAX], vc[L * KV * DMAX], q[N * KV * GMAX * DMAX];
	static float a[N * KV * GMAX * DMAX], b[KV * GMAX * DMAX];
	static const int gs[] = { 1, 7 }, ds[] = { 40, 64 };
	static const int32_t pos[N] = { 399, 255, 256, 383, 384, 300, 7, 130, 397 };
	const int32_t seq[N] = { 0 };
	static const struct tk_attn_opts opts[2] = { { 0.0f, 0, 0.0f, 0 }, { 0.3f, 290, 1.5f, 0 } };
	char *saved = tt_env_save("TK_CPU_ISA");

	init_backends();
	for (int isa = (int)tk_cpu_isa_best(); isa >= 0 && !tt_failed_now; isa--) {
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
		for (int c = 0; c < 2 * 2 * 2 * 2 && !tt_failed_now; c++) {
			const int G = gs[c & 1], D = ds[(c >> 1) & 1], H = KV * G, K = KV * D;
			const struct tk_attn_opts *ao = &opts[(c >> 2) & 1];
			struct tk_backend *be = c & 8 ? &be2 : &be1;
			for (int i = 0; i < L * K; i++)
				kc[i] = frand(), vc[i] = frand();
			for (int i = 0; i < N * H * D; i++)
				q[i] = frand() * 2.0f;
			TT_REQUIRE(tk_attention_decode(be, a, q, kc, vc, seq, pos, N, L, H, KV, D,
						       ao) == 0, "prompt pass");
			for (int i = 0; i < N && !tt_failed_now; i++) {
				TT_REQUIRE(tk_attention_decode(be, b, q + (size_t)i * H * D, kc, vc, seq,
							       pos + i, 1, L, H, KV, D, ao) == 0,
					   "decode step");
				TT_CHECK(!memcmp(a + (size_t)i * H * D, b, (size_t)H * D * sizeof(float)),
					 "%s G %d D %d %s, %d threads: position %d decoded alone is not "
					 "its bits in a prompt pass",
					 tk_cpu_isa_name((enum tk_cpu_isa)isa), G, D,
					 (c >> 2) & 1 ? "window and cap" : "full", c & 8 ? 2 : 1, pos[i]);
			}
		}
	}
	tt_env_restore("TK_CPU_ISA", saved);
}

/* Each key's score has the same bits whether the loops take it among 4
 * keys at a time or alone (the last T % 4): T copies of one key and
 * one-hot values (row j of V is e_j), so the output is the softmax
 * itself, which must come out exactly uniform; scores near 20, so that
 * a score off by one unit in the last place moves its weight.  Head
 * widths 48 and 64, T 5 to 11, every instruction-set level this CPU
 * runs. */
static void test_attention_scores_bits(void)
{
	enum { L = 20, DMAX = 64 };
	static float kc[L * DMAX], vc[L * DMAX], q[DMAX], out[DMAX];
	static const int ds[] = { 48, 64 };
	char *saved = tt_env_save("TK_CPU_ISA");
	const int32_t seq[1] = { 0 };

	init_backends();
	for (int isa = (int)tk_cpu_isa_best(); isa >= 0 && !tt_failed_now; isa--) {
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
		for (size_t di = 0; di < 2; di++)
			for (int T = 5; T <= 11 && !tt_failed_now; T++) {
				const int D = ds[di];
				const int32_t pos[1] = { T - 1 };
				float k[DMAX];
				double dot = 0.0;
				for (int e = 0; e < D; e++)
					k[e] = frand(), q[e] = frand();
				for (int e = 0; e < D; e++)
					dot += (double)q[e] * k[e];
				for (int e = 0; e < D; e++) /* scores about 20 */
					q[e] *= (float)(20.0 * sqrt((double)D) / (fabs(dot) + 1e-3));
				for (int j = 0; j < L; j++)
					for (int e = 0; e < D; e++) {
						kc[j * D + e] = k[e];
						vc[j * D + e] = (float)(e == j);
					}
				TT_REQUIRE(tk_attention_decode(&be1, out, q, kc, vc, seq, pos, 1, L, 1, 1, D,
							       NULL) == 0, "attention_decode");
				for (int j = 1; j < T; j++)
					TT_CHECK(!memcmp(&out[j], &out[0], sizeof(float)),
						 "%s D %d T %d: key %d weighs %.9g, key 0 %.9g",
						 tk_cpu_isa_name((enum tk_cpu_isa)isa), D, T, j, out[j],
						 out[0]);
				TT_CHECK(fabs(out[0] * T - 1.0) < 1e-6, "D %d T %d: weight %.9g", D, T,
					 out[0]);
			}
	}
	/* one key scoring 120 above the others, at each position of 20: its
	 * value alone comes out (the softmax's max found in any lane; a max
	 * short of it would overflow expf) */
	for (int isa = (int)tk_cpu_isa_best(); isa >= 0 && !tt_failed_now; isa--) {
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
		for (int top = 0; top < 20 && !tt_failed_now; top++) {
			enum { T = 20, D = 32 };
			const int32_t pos[1] = { T - 1 };
			for (int e = 0; e < D; e++)
				q[e] = e == 0 ? 1.0f : 0.0f;
			for (int j = 0; j < T; j++)
				for (int e = 0; e < D; e++) {
					kc[j * D + e] = e == 0 ? (j == top ? 120.0f * sqrtf(D) : frand()) : 0.0f;
					vc[j * D + e] = (float)(e == j % D);
				}
			TT_REQUIRE(tk_attention_decode(&be1, out, q, kc, vc, seq, pos, 1, L, 1,
						       1, D, NULL) == 0, "attention_decode");
			for (int e = 0; e < D; e++)
				TT_CHECK(isfinite(out[e]) && fabs(out[e] - (e == top)) < 1e-6,
					 "%s: the top key at %d: out[%d] = %.9g",
					 tk_cpu_isa_name((enum tk_cpu_isa)isa), top, e, out[e]);
		}
	}
	tt_env_restore("TK_CPU_ISA", saved);
}

static void test_copy_rows(void)
{
	float dst[6 * 5], src[3 * 5];
	const int64_t idx[3] = { 5, 0, 3 }, bad[1] = { -1 };

	init_backends();
	for (int i = 0; i < 30; i++)
		dst[i] = -1.0f;
	for (int i = 0; i < 15; i++)
		src[i] = (float)i;
	TT_REQUIRE(tk_copy_rows(&be1, dst, src, idx, 3, 5) == 0, "copy_rows");
	for (int r = 0; r < 6; r++)
		for (int e = 0; e < 5; e++) {
			int from = r == 5 ? 0 : r == 0 ? 1 : r == 3 ? 2 : -1;
			float want = from < 0 ? -1.0f : (float)(from * 5 + e);
			TT_REQUIRE(dst[r * 5 + e] == want, "dst[%d][%d] = %g, want %g", r, e,
				   dst[r * 5 + e], want);
		}
	TT_CHECK(tk_copy_rows(&be1, dst, src, bad, 1, 5) == TK_E_INVAL, "negative index");
	TT_CHECK(tk_copy_rows(&be1, dst, src, idx, -1, 5) == TK_E_INVAL, "n < 0");
	TT_CHECK(tk_copy_rows(&be1, NULL, NULL, NULL, 0, 5) == 0, "nothing to copy");
}

/* store_rows_bf16 rounds each float to its nearest bf16 code, ties to
 * even (tk_bf16_code: torch's .to(torch.bfloat16)), into the rows idx
 * says; rows not named keep their codes. */
static void test_store_rows_bf16(void)
{
	uint16_t dst[4 * 3];
	/* 1 + 2^-8 is a tie (even: down to 1), 1 + 3 2^-8 one too (up) */
	const float src[2 * 3] = { 1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -2.5f, INFINITY, NAN, 1e-40f };
	const int64_t idx[2] = { 3, 1 }, bad[1] = { -1 };

	init_backends();
	for (int i = 0; i < 12; i++)
		dst[i] = 0x1234;
	TT_REQUIRE(tk_store_rows_bf16(&be1, dst, src, idx, 2, 3) == 0, "store_rows_bf16");
	for (int r = 0; r < 4; r++)
		for (int e = 0; e < 3; e++) {
			const int from = r == 3 ? 0 : r == 1 ? 1 : -1;
			const uint16_t want = from < 0 ? 0x1234 : tk_bf16_code(src[from * 3 + e]);
			TT_CHECK(dst[r * 3 + e] == want, "row %d col %d: %#x, want %#x", r, e,
				 dst[r * 3 + e], want);
		}
	TT_CHECK(dst[9] == 0x3f80 && dst[10] == 0x3f82, "ties to even: %#x %#x", dst[9], dst[10]);
	TT_CHECK(tk_store_rows_bf16(&be1, dst, src, bad, 1, 3) == TK_E_INVAL, "negative index");
	TT_CHECK(tk_store_rows_bf16(&be1, dst, src, idx, -1, 3) == TK_E_INVAL, "n < 0");
}

/* Attention over a bf16 cache has the bits of attention over a float
 * cache holding the same values (each code widened exactly): every loop
 * (a head an iteration, the phases, the prompt pass, which widens its
 * sequences first: rows of 2 of them here, out of order), head widths 40
 * (the loops' tails) and 64, 1 and 3 query heads a KV head, a window and
 * capping, every instruction-set level, 1 and 2 threads. */
static void test_attention_bf16_cache(void)
{
	enum { L = 300, KV = 2, GMAX = 3, DMAX = 64, N = 9 };
	static float kf[2 * L * KV * DMAX], vf[2 * L * KV * DMAX], q[N * KV * GMAX * DMAX];
	static uint16_t kb[2 * L * KV * DMAX], vb[2 * L * KV * DMAX];
	static float a[N * KV * GMAX * DMAX], b[N * KV * GMAX * DMAX];
	static const int gs[] = { 1, 3 }, ds[] = { 40, 64 };
	/* a decode step of 3 rows over short contexts, one over long ones
	 * (the phases), a prompt pass of 9 */
	static const int32_t pos[3][N] = { { 20, 7, 33 },
					   { 299, 7, 260 },
					   { 100, 101, 102, 103, 104, 105, 106, 107, 290 } };
	static const int ns[3] = { 3, 3, N };
	static const int32_t seqs[3][N] = { { 0, 1, 0 }, { 1, 0, 0 }, { 1, 0, 1, 1, 0, 0, 1, 0, 1 } };
	char *saved = tt_env_save("TK_CPU_ISA");

	init_backends();
	for (int isa = (int)tk_cpu_isa_best(); isa >= 0 && !tt_failed_now; isa--) {
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
		for (int c = 0; c < 2 * 2 * 2 * 2 * 3 && !tt_failed_now; c++) {
			const int G = gs[c & 1], D = ds[(c >> 1) & 1], H = KV * G, K = KV * D;
			const int w = c / 16, n = ns[w];
			struct tk_attn_opts ao = { 0.0f, (c >> 2) & 1 ? 270 : 0,
						   (c >> 2) & 1 ? 1.5f : 0.0f, 0 };
			struct tk_backend *be = c & 8 ? &be2 : &be1;
			const int32_t *seq = seqs[w];
			for (int i = 0; i < 2 * L * K; i++) {
				kb[i] = tk_bf16_code(frand()), vb[i] = tk_bf16_code(frand());
				kf[i] = tk_bf16_value(kb[i]), vf[i] = tk_bf16_value(vb[i]);
			}
			for (int i = 0; i < n * H * D; i++)
				q[i] = frand() * 2.0f;
			TT_REQUIRE(tk_attention_decode(be, a, q, kf, vf, seq, pos[w], n, L, H, KV, D,
						       &ao) == 0, "float cache");
			ao.cache_bf16 = 1;
			TT_REQUIRE(tk_attention_decode(be, b, q, kb, vb, seq, pos[w], n, L, H, KV, D,
						       &ao) == 0, "bf16 cache");
			TT_CHECK(!memcmp(a, b, (size_t)n * H * D * sizeof(float)),
				 "%s G %d D %d %s, %s, %d threads: not the float cache's bits",
				 tk_cpu_isa_name((enum tk_cpu_isa)isa), G, D,
				 w == 0 ? "short decode" : w == 1 ? "long decode" : "prompt pass",
				 (c >> 2) & 1 ? "window and cap" : "full", c & 8 ? 2 : 1);
		}
	}
	tt_env_restore("TK_CPU_ISA", saved);
}

/* A quantized model's cached decode, one row per step (through qmatmul),
 * against its full forward over the whole sequence (more than 8 rows:
 * dequantized tiles and GEMMs), greedy for 20 steps: the same weights
 * summed in other orders, so the logits agree to fp32 rounding: the
 * largest differences seen were 1.2e-7 (GPT-2 FP4, whose fused c_attn is
 * three slices of one weight; Llama NF4 with double quantization) and
 * 1.2e-6 (Llama int8), and the tolerance is 2e-5. */
static void test_quantized_decode(void)
{
	static const char *const dirs[] = { "qlora/gpt2-fp4", "qlora/llama-nf4-dq",
					    "bnb/llama-int8" };
	static const uint32_t prompt[] = { 1, 50, 7, 7, 88, 3, 61, 12, 90, 44, 17 };
	const int np = (int)(sizeof(prompt) / sizeof(prompt[0]));

	for (int mi = 0; mi < 3 && !tt_failed_now; mi++) {
		struct tk_model m;
		struct tk_backend be;
		struct tk_infer *s;
		struct tk_diag d;
		uint32_t seq[64];
		int n = np, V;
		float *a, *b;
		double worst = 0.0;

		TT_REQUIRE(tk_backend_cpu_init(&be, 2, &d) == 0, "%s", d.msg);
		memset(&m, 0, sizeof(m));
		TT_REQUIRE(tk_model_load(&m, tt_fixture(dirs[mi]), &be, &d) == 0, "%s: %s",
			   dirs[mi], d.msg);
		TT_REQUIRE(m.n_quantized > 0, "%s: nothing quantized", dirs[mi]);
		V = m.cfg.vocab_size;
		a = malloc((size_t)V * sizeof(float));
		b = malloc((size_t)V * sizeof(float));
		TT_REQUIRE(a && b && tk_infer_new(&s, &m, 32, &d) == 0, "%s", d.msg);
		memcpy(seq, prompt, sizeof(prompt));
		/* the prompt one token at a time too: every pass is one row */
		for (int i = 0; i < n; i++)
			TT_CHECK(tk_infer_feed(s, seq + i, 1, a, &d) == 0, "%s", d.msg);
		for (int step = 0; step < 20 && !tt_failed_now; step++) {
			int best = 0;
			TT_CHECK(tk_model_forward(&m, seq, NULL, 1, n, 0, 0, NULL, &d) == 0, "%s",
				 d.msg);
			TT_CHECK(tk_model_logits(&m, n - 1, 1, b, &d) == 0, "%s", d.msg);
			for (int i = 0; i < V; i++) {
				double e = fabs((double)a[i] - (double)b[i]);
				worst = e > worst ? e : worst;
				if (a[i] > a[best])
					best = i;
			}
			TT_CHECK(worst <= 2e-5, "%s step %d: logits differ by %g", dirs[mi], step,
				 worst);
			seq[n++] = (uint32_t)best;
			TT_CHECK(tk_infer_feed(s, seq + n - 1, 1, a, &d) == 0, "%s", d.msg);
		}
		if (getenv("TK_TEST_VERBOSE"))
			printf("# %s: largest logit difference %g\n", dirs[mi], worst);
		tk_infer_free(s);
		free(a);
		free(b);
		tk_model_free(&m);
		tk_backend_free(&be);
	}
}

/* The CPU's qmatmul loops for the instruction sets below the best one too
 * (TK_CPU_ISA caps them; a CPU without one runs the next lower). */
static void test_qmatmul_isas(void)
{
	static const char *const isa[] = { "avx2", "generic" };
	for (size_t i = 0; i < sizeof(isa) / sizeof(isa[0]); i++) {
		setenv("TK_CPU_ISA", isa[i], 1);
		test_qmatmul_4bit();
		test_qmatmul_64();
		test_qmatmul_blocksize();
		test_qmatmul_panels();
		test_qmatmul_int8();
		test_flatten_absmax();
		test_qmatmul_half();
		test_quantized_decode();
	}
	unsetenv("TK_CPU_ISA");
}

/* matmul_group gives each product the bits tk_matmul and tk_qmatmul give
 * it alone (fp32; NF4 and BF16 slices of one weight; fp32 and BF16 mixed),
 * for 1 to 8 rows and 1 and 2 threads, or TK_E_UNSUPPORTED where the
 * backend's loops for it are not the GEMV's (TK_CPU_ISA=generic); a group
 * mixing fp32 and 4-bit is unsupported, one too large invalid. */
static void test_matmul_group(void)
{
	enum { K = 576, NW = 3 };
	static const int ns[NW] = { 100, 37, 163 }, ms[] = { 1, 3, 8 };
	const int rows = ns[0] + ns[1] + ns[2];
	float *w = malloc((size_t)rows * K * sizeof(float)), *x = malloc(8 * K * sizeof(float));
	float *y = malloc((size_t)8 * rows * sizeof(float)), *z = malloc((size_t)8 * rows * sizeof(float));
	uint16_t *h = malloc((size_t)rows * K * sizeof(uint16_t));
	struct tk_qweight q, qh;
	struct tk_backend *bes[] = { &be1, &be2 };
	static const char *const kinds[] = { "fp32", "nf4", "bf16", "fp32+bf16" };
	int compared = 0;

	init_backends();
	TT_REQUIRE(w && x && y && z && h, "out of memory");
	for (int i = 0; i < rows * K; i++) { /* bf16 values: the same weight either way */
		uint32_t u;
		w[i] = frand() * 0.1f;
		memcpy(&u, &w[i], sizeof(u));
		h[i] = (uint16_t)(u >> 16);
		u &= 0xffff0000u;
		memcpy(&w[i], &u, sizeof(u));
	}
	for (int i = 0; i < 8 * K; i++)
		x[i] = frand();
	TT_REQUIRE(tk_qweight_quantize4(&q, w, rows, K, TK_QK_NF4, 64, 1, 1, NULL) == 0, "quantize");
	TT_REQUIRE(tk_qweight_half(&qh, TK_QK_BF16, h, rows, K, 0, NULL) == 0, "half");
	for (int b = 0; b < 2; b++)
		for (int mi = 0; mi < 3; mi++)
			for (int kind = 0; kind < 4; kind++) {
				struct tk_gemv_item it[NW];
				int m = ms[mi], r0 = 0, rc;
				size_t off = 0;
				for (int j = 0; j < NW; j++) {
					/* kind 3: fp32, bf16, fp32 */
					const int f32 = kind == 0 || (kind == 3 && j != 1);
					it[j] = (struct tk_gemv_item){ f32 ? w + (size_t)r0 * K : NULL,
								       f32	   ? NULL
								       : kind == 1 ? &q
										   : &qh,
								       r0, ns[j], y + off };
					r0 += ns[j];
					off += (size_t)m * ns[j];
				}
				memset(y, 0xff, (size_t)8 * rows * sizeof(float));
				rc = tk_matmul_group(bes[b], m, K, x, it, NW);
				if (rc == TK_E_UNSUPPORTED)
					continue;
				TT_REQUIRE(rc == 0, "rc %d", rc);
				off = 0;
				for (int j = 0; j < NW; j++) {
					rc = !it[j].w ? tk_qmatmul(bes[b], it[j].q, it[j].row0, ns[j],
								   m, x, z + off, ns[j], 0.0f)
						      : tk_matmul(bes[b], 0, 1, m, ns[j], K, 1.0f, x, K,
								  it[j].w, K, 0.0f, z + off, ns[j]);
					TT_REQUIRE(rc == 0, "rc %d", rc);
					off += (size_t)m * ns[j];
				}
				TT_CHECK(!memcmp(y, z, off * sizeof(float)), "%s m %d, %d threads",
					 kinds[kind], m, b + 1);
				compared++;
			}
	TT_CHECK(compared == 24 || tk_cpu_isa() < TK_CPU_ISA_AVX2, "%d of 24 compared", compared);
	struct tk_gemv_item mix[2] = { { w, NULL, 0, 4, y }, { NULL, &q, 0, 4, z } };
	TT_CHECK(tk_matmul_group(&be2, 1, K, x, mix, 2) == TK_E_UNSUPPORTED, "mixed");
	struct tk_gemv_item many[TK_GEMV_GROUP_MAX + 1];
	for (int j = 0; j <= TK_GEMV_GROUP_MAX; j++)
		many[j] = (struct tk_gemv_item){ w, NULL, 0, 4, y };
	TT_CHECK(tk_matmul_group(&be2, 1, K, x, many, TK_GEMV_GROUP_MAX + 1) == TK_E_INVAL,
		 "too many");
	tk_qweight_free(&q);
	tk_qweight_free(&qh);
	free(w);
	free(x);
	free(y);
	free(z);
	free(h);
}

int main(void)
{
	unsetenv("TK_CPU_ISA");
	TT_RUN(test_qmatmul_4bit);
	TT_RUN(test_qmatmul_64);
	TT_RUN(test_qmatmul_blocksize);
	TT_RUN(test_qmatmul_panels);
	TT_RUN(test_flatten_absmax);
	TT_RUN(test_qmatmul_int8);
	TT_RUN(test_qmatmul_half);
	TT_RUN(test_qmatmul_isas);
	TT_RUN(test_qmatmul_bad);
	TT_RUN(test_dequant_rows_isas);
	TT_RUN(test_matmul_group);
	TT_RUN(test_attention_decode);
	TT_RUN(test_attention_gqa_bits);
	TT_RUN(test_attention_phased_bits);
	TT_RUN(test_attention_scores_bits);
	TT_RUN(test_copy_rows);
	TT_RUN(test_store_rows_bf16);
	TT_RUN(test_attention_bf16_cache);
	TT_RUN(test_quantized_decode);
	tk_backend_free(&be1);
	tk_backend_free(&be2);
	return tt_done();
}

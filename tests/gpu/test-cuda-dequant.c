/* test-cuda-dequant.c - tk_dequant_rows on the CUDA backend against the
 * CPU's tk_qweight_rows: NF4 and FP4, with and without double
 * quantization, and int8, over row slices that start and end inside a
 * block and on an odd element (inside a packed byte), with the weight in
 * host memory (staged slice by slice) and after tk_qweight_to_backend.
 * Exact equality expected: the same code books and the same roundings.
 * The CPU-only checks (the wrapper's fallback, its argument errors, the
 * CPU backend leaving weights where they are) run without a GPU; the rest
 * prints SKIP.
 */
#include "gpu.h"
#include "base/quant.h"
#include "compute/qweight-dev.h"

/* 300 x 77: odd columns put every other row start inside a byte; 23100
 * elements in 64-blocks are 361 blocks, so two nested absmax blocks. */
#define ROWS 300
#define COLS 77

static const int64_t SLICES[][2] = {
	{ 0, ROWS }, { 0, 1 }, { 1, 1 }, { 1, 2 }, { 3, 5 }, { 150, 149 }, { 299, 1 },
	{ 200, 67 }, { 5, 0 },
};
#define NSLICES (sizeof(SLICES) / sizeof(SLICES[0]))

/* Reports the first element whose bits differ. */
static void check_bits(const char *what, const float *got, const float *want, size_t n)
{
	size_t i = 0;
	while (i < n && !memcmp(&got[i], &want[i], sizeof(float)))
		i++;
	TT_CHECK(i == n, "%s: element %zu of %zu: cuda %a cpu %a", what, i, n,
		 i < n ? got[i] : 0.0f, i < n ? want[i] : 0.0f);
}

/* A 4-bit weight of random values (with a zero block and a large one). */
static int make_q4(struct tk_qweight *q, enum tk_qkind kind, size_t bs, int nested)
{
	size_t n = (size_t)ROWS * COLS;
	float *x = rand_host(n, -1, 1);
	struct tk_diag d;
	if (!x)
		return TK_E_NOMEM;
	for (size_t i = 128; i < 192; i++)
		x[i] = 0.0f;
	for (size_t i = 1000; i < 1100; i++)
		x[i] *= 40.0f;
	int rc = tk_qweight_quantize4(q, x, ROWS, COLS, kind, bs, nested, 1, &d);
	free(x);
	return rc;
}

static int make_q8(struct tk_qweight *q)
{
	memset(q, 0, sizeof(*q));
	q->kind = TK_QK_INT8;
	q->rows = ROWS;
	q->cols = COLS;
	q->data = malloc((size_t)ROWS * COLS);
	q->scb = malloc(ROWS * sizeof(float));
	if (!q->data || !q->scb)
		return TK_E_NOMEM;
	for (size_t i = 0; i < (size_t)ROWS * COLS; i++)
		q->data[i] = (uint8_t)rng_u32(); /* every code, -128 included */
	for (int r = 0; r < ROWS; r++)
		q->scb[r] = rng_f(0.001f, 3.0f);
	q->scb[7] = 0.0f;
	return 0;
}

/* Every slice of q on the GPU against ref (the CPU's whole matrix), into
 * GPU memory and into a host buffer. */
static void check_slices(const char *what, const struct tk_qweight *q, const float *ref)
{
	float *og = tk_backend_alloc(&gpu, (size_t)ROWS * COLS * sizeof(float));
	float *oh = malloc((size_t)ROWS * COLS * sizeof(float));
	struct tk_diag d;
	char w[200];
	TT_REQUIRE(og && oh, "alloc");
	for (size_t s = 0; s < NSLICES && !tt_failed_now; s++) {
		int64_t r0 = SLICES[s][0], n = SLICES[s][1];
		int rc = tk_dequant_rows(&gpu, q, r0, n, og, &d);
		TT_CHECK(!rc, "%s rows %lld+%lld: %d %s", what, (long long)r0, (long long)n, rc,
			 tk_backend_cuda_last_error(&gpu));
		snprintf(w, sizeof(w), "%s rows %lld+%lld (device out)", what, (long long)r0,
			 (long long)n);
		if (!rc)
			check_bits(w, og, ref + r0 * COLS, (size_t)n * COLS);
		rc = tk_dequant_rows(&gpu, q, r0, n, oh, &d);
		TT_CHECK(!rc, "%s rows %lld+%lld host out: %d", what, (long long)r0, (long long)n,
			 rc);
		snprintf(w, sizeof(w), "%s rows %lld+%lld (host out)", what, (long long)r0,
			 (long long)n);
		if (!rc)
			check_bits(w, oh, ref + r0 * COLS, (size_t)n * COLS);
	}
	tk_backend_free_mem(&gpu, og);
	free(oh);
}

/* q on the CPU as the reference, then q staged from host memory, then q
 * moved to the GPU. */
static void check_weight(const char *what, struct tk_qweight *q)
{
	float *ref = malloc((size_t)ROWS * COLS * sizeof(float));
	struct tk_diag d;
	char w[200];
	TT_REQUIRE(ref, "alloc");
	TT_REQUIRE(!tk_qweight_rows(q, 0, ROWS, ref, &d), "%s: %s", what, d.msg);
	snprintf(w, sizeof(w), "%s, host weight", what);
	check_slices(w, q, ref);
	int rc = tk_qweight_to_backend(q, &gpu, &d);
	TT_CHECK(!rc && tk_qweight_backend(q) == &gpu, "%s: to_backend %d %s", what, rc, d.msg);
	snprintf(w, sizeof(w), "%s, device weight", what);
	if (!rc)
		check_slices(w, q, ref);
	/* the host path still reads it (managed memory) */
	float *again = malloc((size_t)ROWS * COLS * sizeof(float));
	TT_CHECK(again && !tk_qweight_rows(q, 0, ROWS, again, &d), "%s: host read", what);
	if (again)
		check_bits("host tk_qweight_rows of the moved weight", again, ref,
			   (size_t)ROWS * COLS);
	free(again);
	free(ref);
}

static void test_q4(void)
{
	NEED_GPU();
	static const struct {
		enum tk_qkind kind;
		size_t bs;
		int nested;
		const char *what;
	} C[] = {
		{ TK_QK_NF4, 64, 0, "nf4/64" },	  { TK_QK_NF4, 64, 1, "nf4/64 nested" },
		{ TK_QK_FP4, 64, 0, "fp4/64" },	  { TK_QK_FP4, 64, 1, "fp4/64 nested" },
		{ TK_QK_NF4, 32, 1, "nf4/32 nested" }, { TK_QK_FP4, 128, 0, "fp4/128" },
		{ TK_QK_NF4, 4096, 1, "nf4/4096 nested" },
	};
	rng_seed(7);
	for (size_t i = 0; i < sizeof(C) / sizeof(C[0]) && !tt_failed_now; i++) {
		struct tk_qweight q;
		TT_REQUIRE(!make_q4(&q, C[i].kind, C[i].bs, C[i].nested), "quantize %s", C[i].what);
		check_weight(C[i].what, &q);
		tk_qweight_free(&q);
	}
}

static void test_int8(void)
{
	NEED_GPU();
	struct tk_qweight q;
	rng_seed(8);
	int rc = make_q8(&q);
	if (!rc)
		check_weight("int8", &q);
	else
		TT_CHECK(0, "alloc");
	tk_qweight_free(&q);
}

/* Argument errors on the GPU: checked before the backend runs. */
static void test_errors_gpu(void)
{
	NEED_GPU();
	struct tk_qweight q;
	struct tk_diag d;
	float out[COLS];
	rng_seed(9);
	TT_REQUIRE(!make_q4(&q, TK_QK_NF4, 64, 0), "quantize");
	TT_CHECK(tk_dequant_rows(&gpu, &q, ROWS, 1, out, &d) == TK_E_INVAL &&
			 strstr(d.msg, "outside a matrix of 300 rows"),
		 "row past the end: %s", d.msg);
	TT_CHECK(tk_dequant_rows(&gpu, &q, -1, 1, out, &d) == TK_E_INVAL, "negative row");
	q.blocksize = 48;
	TT_CHECK(tk_dequant_rows(&gpu, &q, 0, 1, out, &d) == TK_E_INVAL &&
			 !strcmp(d.msg, "not a valid quantized weight"),
		 "block size 48: %s", d.msg);
	q.blocksize = 64;
	tk_qweight_free(&q);
}

/* The CPU backend's dequant_rows (its vector row loops) gives
 * tk_qweight_rows' bits, and tk_qweight_to_backend leaves the weight
 * where it is. */
static void test_cpu(void)
{
	struct tk_qweight q;
	struct tk_diag d;
	float *a = malloc((size_t)ROWS * COLS * sizeof(float));
	float *b = malloc((size_t)ROWS * COLS * sizeof(float));
	rng_seed(10);
	TT_REQUIRE(a && b && !make_q4(&q, TK_QK_FP4, 64, 1), "setup");
	uint8_t *data = q.data;
	TT_CHECK(!tk_qweight_to_backend(&q, &cpu, &d) && q.data == data &&
			 !tk_qweight_backend(&q),
		 "to_backend moved a weight on the CPU");
	TT_CHECK(!tk_qweight_rows(&q, 3, 97, a, &d) && !tk_dequant_rows(&cpu, &q, 3, 97, b, &d),
		 "%s", d.msg);
	check_bits("cpu wrapper", b, a, (size_t)97 * COLS);
	TT_CHECK(tk_dequant_rows(&cpu, &q, 250, 51, b, &d) == TK_E_INVAL &&
			 strstr(d.msg, "250..301 outside a matrix of 300 rows"),
		 "rows past the end on the cpu: %s", d.msg);
	tk_qweight_free(&q);
	free(a);
	free(b);
}

int main(void)
{
	gpu_setup();
	TT_RUN(test_cpu);
	TT_RUN(test_q4);
	TT_RUN(test_int8);
	TT_RUN(test_errors_gpu);
	gpu_teardown();
	return tt_done();
}

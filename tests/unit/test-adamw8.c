/* test-adamw8.c - bitsandbytes' AdamW with 8-bit state (base/adamw8-common.h,
 * the backend op tk_adamw8) against bitsandbytes itself.
 *
 * tests/fixtures/adamw8/ (tests/parity/gen-adamw8-fixture.py) holds what
 * 10 steps of bnb.optim.AdamW(optim_bits=8) on the CPU give for four
 * parameters (4097, 4352 and 4096 elements: 8-bit state; 300: below
 * min_8bit_size, bitsandbytes' 32-bit state): after every step a hash of
 * each state's bytes and absmax vector, and after steps 1 and 10 the
 * parameters' values (params.bin).  Both sides form the inputs from
 * splitmix64 the same way, so the fixture needs none.
 *
 * The states must be the same bytes at every step: m and v take the same
 * fp32 operations in the same order (they depend on the gradients only),
 * and bitsandbytes' quantizer is a table lookup tk reproduces exactly.
 * The parameters may differ: torch.sqrt on the CPU (MKL's vsSqrt) is not
 * correctly rounded, so bitsandbytes' denominator sqrt(v) / c2 + eps can
 * be 1 ulp off tk's correctly rounded one; the update q = -lr' m / den then
 * differs by at most ~2 ulp(q) <= ulp(lr) (|m| / den <= 1 / (1 - b1) here,
 * times lr / (1 - b1^t), stays under lr's binade) and p + q may round the
 * other way, 1 ulp(p).  p does not feed back into the states, so after
 * step k |dp| <= k (ulp(p) + ulp(lr_max)).  Measured over the fixture:
 * the worst |dp| is 1.78 (ulp(p) + ulp(lr_max)) at step 10 (3.7e-9
 * absolute; 60-75 of ~4100 elements per parameter differ by then).
 * The checks run with 1 and 2 threads, and with the parameter held
 * transposed (GPT-2's Conv1D layout) as with it held plain.
 * A run's state (train/adamw8.h) is checked on a small GPT-2: which
 * parameters get 8-bit state (not wte, wpe: the Trainer's embedding
 * override; not the tensors under 4096 elements), and a Conv1D weight
 * blocked in its checkpoint order as bitsandbytes blocks it, against the
 * op run on the checkpoint-layout copies.
 * TK_ADAMW8_DUMP=DIR writes each step's arrays (DIR/NAME-K.bin: p, then
 * state1, state2, absmax1, absmax2) for an element-wise comparison.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/adamw8-common.h"
#include "base/rng.h"
#include "compute/backend.h"
#include "formats/config.h"
#include "model/model.h"
#include "train/adamw8.h"
#include "tt.h"

static struct tk_backend be1, be2; /* 1 and 2 threads */

#define NPAR 4
#define STEPS 10

static const float scales[6] = { 1e-9f, 1e-3f, 1.0f, 30.0f, 2e-5f, 0.25f };

/* ((mix64(key + i * GAMMA) >> 40) - 2^23) * 2^-23: exact in fp32 */
static float xs(uint64_t key, uint64_t i)
{
	int64_t h = (int64_t)(tk_mix64(key + i * TK_SPLITMIX64_GAMMA) >> 40);
	return (float)(h - (1 << 23)) * 0x1p-23f;
}

static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

struct par {
	char name[8];
	size_t n, nb;
	double wd;
	float *p, *g, *m, *v, *a1, *a2;
	uint8_t *q1, *q2;
};

static void par_init(struct par *x, int t)
{
	x->nb = (x->n + 255) / 256;
	x->p = calloc(x->n, sizeof(float));
	x->g = calloc(x->n, sizeof(float));
	x->m = calloc(x->n, sizeof(float));
	x->v = calloc(x->n, sizeof(float));
	x->q1 = calloc(x->n, 1);
	x->q2 = calloc(x->n, 1);
	x->a1 = calloc(x->nb, sizeof(float));
	x->a2 = calloc(x->nb, sizeof(float));
	for (size_t i = 0; i < x->n; i++)
		x->p[i] = xs(1000 * (uint64_t)t, i) * 0.05f;
}

static void par_free(struct par *x)
{
	free(x->p);
	free(x->g);
	free(x->m);
	free(x->v);
	free(x->q1);
	free(x->q2);
	free(x->a1);
	free(x->a2);
}

static void par_grad(struct par *x, int t, int k)
{
	for (size_t i = 0; i < x->n; i++)
		x->g[i] = i >= 512 && i < 768 ? 0.0f
					      : xs(1000 * (uint64_t)t + (uint64_t)k, i) *
							scales[(i / 97 + (size_t)k) % 6];
}

/* One step of x on be; with rows, x's p and g are held transposed. */
static int par_step(struct tk_backend *be, struct par *x, size_t rows, double lr, int k)
{
	int eight = x->n >= TK_ADAMW8_MIN_SIZE;
	size_t cols = rows ? x->n / rows : 0;
	float *p = x->p, *g = x->g;
	if (rows) {
		p = malloc(x->n * sizeof(float));
		g = malloc(x->n * sizeof(float));
		for (size_t i = 0; i < x->n; i++) {
			p[tk_adamw8_at(i, rows, cols)] = x->p[i];
			g[tk_adamw8_at(i, rows, cols)] = x->g[i];
		}
	}
	int rc = tk_adamw8(be, p, g, eight ? x->q1 : NULL, x->q2, x->a1, x->a2, x->m, x->v, x->n,
			   rows, cols, lr, 0.9, 0.999, 1e-8, x->wd, k);
	if (rows) {
		for (size_t i = 0; i < x->n; i++)
			x->p[i] = p[tk_adamw8_at(i, rows, cols)];
		free(p);
		free(g);
	}
	return rc;
}

static void dump(const struct par *x, int k)
{
	const char *dir = getenv("TK_ADAMW8_DUMP");
	char path[4096];
	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/%s-%d.bin", dir, x->name, k);
	FILE *f = fopen(path, "wb");
	if (!f)
		return;
	fwrite(x->p, sizeof(float), x->n, f);
	if (x->n >= TK_ADAMW8_MIN_SIZE) {
		fwrite(x->q1, 1, x->n, f);
		fwrite(x->q2, 1, x->n, f);
		fwrite(x->a1, sizeof(float), x->nb, f);
		fwrite(x->a2, sizeof(float), x->nb, f);
	} else {
		fwrite(x->m, sizeof(float), x->n, f);
		fwrite(x->v, sizeof(float), x->n, f);
	}
	fclose(f);
}

/* adamw8/params.bin (little-endian fp32, as x86 and ARM hold them). */
static float *read_params(size_t *n)
{
	FILE *f = fopen(tt_fixture("adamw8/params.bin"), "rb");
	float *v = NULL;
	long len;
	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (len = ftell(f)) > 0 && !fseek(f, 0, SEEK_SET) &&
	    (v = malloc((size_t)len))) {
		*n = (size_t)len / sizeof(float);
		if (fread(v, sizeof(float), *n, f) != *n) {
			free(v);
			v = NULL;
		}
	}
	fclose(f);
	return v;
}

/* ulp of |x| (the gap to the next float up). */
static double ulp(float x)
{
	x = fabsf(x);
	return (double)nextafterf(x, INFINITY) - (double)x;
}

/* The worst |p - ref| / (ulp(ref) + ulp(lr)) over n values. */
static double p_error(const float *p, const float *ref, size_t n, float lr)
{
	double w = 0;
	for (size_t i = 0; i < n; i++) {
		double r = fabs((double)p[i] - (double)ref[i]) / (ulp(ref[i]) + ulp(lr));
		w = r > w ? r : w;
	}
	return w;
}

static double worst; /* the largest p_error seen (TT_VERBOSE prints it) */

/* Replays the fixture on be; rows_a > 0 holds parameter a ([17, 241])
 * transposed.  Returns the number of the steps checked. */
static int replay(struct tk_backend *be, size_t rows_a, int write_dump)
{
	const char *path = tt_fixture("adamw8/adamw8.txt");
	FILE *f = fopen(path, "r");
	struct par x[NPAR];
	char line[512];
	int steps = 0, np = 0, k = 0, done = 0, pk[2] = { 0, 0 };
	double lr = 0, lr_max = 0;
	size_t pat = 0; /* where the next parameter's values are in params.bin */
	float *pv = NULL;
	size_t npv = 0;
	memset(x, 0, sizeof(x));
	if (!f) {
		TT_CHECK(0, "%s: cannot open", path);
		return 0;
	}
	while (fgets(line, sizeof(line), f) && (!tt_failed_now || write_dump)) {
		char name[8], h[5][20];
		if (line[0] == '#')
			continue;
		if (sscanf(line, "case %d", &steps) == 1)
			continue;
		if (sscanf(line, "pvalues %d %d", &pk[0], &pk[1]) == 2) {
			pv = read_params(&npv);
			TT_CHECK(pv, "adamw8/params.bin: cannot read");
			continue;
		}
		if (!strncmp(line, "param ", 6)) {
			TT_CHECK(np < NPAR, "too many params");
			if (np >= NPAR)
				break;
			struct par *y = &x[np];
			TT_CHECK(sscanf(line, "param %7s %zu %lf", y->name, &y->n, &y->wd) == 3,
				 "bad line: %s", line);
			par_init(y, np++);
			continue;
		}
		if (sscanf(line, "step %d %lf", &k, &lr) == 2) {
			lr_max = lr > lr_max ? lr : lr_max;
			for (int t = 0; t < np; t++) {
				par_grad(&x[t], t, k);
				int rc = par_step(be, &x[t], t == 0 ? rows_a : 0, lr, k);
				TT_CHECK(rc == 0, "step %d %s: %s", k, x[t].name, tk_strerror(rc));
				if (write_dump)
					dump(&x[t], k);
			}
			continue;
		}
		if (sscanf(line, "%7s %19s %19s %19s %19s", name, h[0], h[1], h[2], h[3]) != 5) {
			TT_CHECK(0, "bad line: %s", line);
			break;
		}
		struct par *y = NULL;
		for (int t = 0; t < np; t++)
			if (!strcmp(x[t].name, name))
				y = &x[t];
		TT_CHECK(y, "unknown parameter %s", name);
		if (!y)
			break;
		int eight = y->n >= TK_ADAMW8_MIN_SIZE;
		uint64_t got[4] = {
			eight ? fnv(y->q1, y->n) : fnv(y->m, y->n * sizeof(float)),
			eight ? fnv(y->q2, y->n) : fnv(y->v, y->n * sizeof(float)),
			eight ? fnv(y->a1, y->nb * sizeof(float)) : 0,
			eight ? fnv(y->a2, y->nb * sizeof(float)) : 0,
		};
		static const char *const what[4] = { "state1", "state2", "absmax1", "absmax2" };
		if (pv && (k == pk[0] || k == pk[1])) {
			TT_CHECK(pat + y->n <= npv, "params.bin too short");
			if (pat + y->n > npv)
				break;
			double r = p_error(y->p, pv + pat, y->n, (float)lr_max);
			worst = r > worst ? r : worst;
			TT_CHECK(r <= k, "step %d %s (rows %zu): p off bitsandbytes' by %.3g "
				 "(ulp(p) + ulp(lr)), over the %d steps allow", k, name,
				 y == &x[0] ? rows_a : 0, r, k);
			pat += y->n;
		}
		for (int j = 0; j < (eight ? 4 : 2); j++)
			TT_CHECK(got[j] == strtoull(h[j], NULL, 16),
				 "step %d %s (n %zu, rows %zu): %s differs from bitsandbytes'", k,
				 name, y->n, y == &x[0] ? rows_a : 0, what[j]);
		done += !strcmp(name, x[np - 1].name);
	}
	fclose(f);
	free(pv);
	TT_CHECK(!pv || pat == npv, "params.bin: %zu of %zu values compared", pat, npv);
	for (int t = 0; t < np; t++)
		par_free(&x[t]);
	TT_CHECK(steps == STEPS && np == NPAR, "%s: %d steps, %d params", path, steps, np);
	return done;
}

static void test_adamw8_bnb(void)
{
	TT_CHECK(replay(&be1, 0, 1) == STEPS, "steps checked");
	if (getenv("TT_VERBOSE"))
		fprintf(stderr, "adamw8: worst |p - bitsandbytes| = %.3g (ulp(p) + ulp(lr))\n",
			worst);
}

static void test_adamw8_threads(void)
{
	TT_CHECK(replay(&be2, 0, 0) == STEPS, "steps checked");
}

static void test_adamw8_transposed(void)
{
	TT_CHECK(replay(&be2, 17, 0) == STEPS, "steps checked");
}

/* The codes bitsandbytes' lookup table gives at the ends and the middle
 * of each map, and the 4096-element boundary. */
static void test_adamw8_codes(void)
{
	TT_CHECK(tk_q8_index(tk_dynamic_code, 1.0f) == 255, "signed 1");
	TT_CHECK(tk_q8_index(tk_dynamic_code, -1.0f) == 0, "signed -1");
	/* 0 lies between two grid points; the one above, 1/65535, takes code
	 * 131 (2.125e-5), as bitsandbytes' quantize_blockwise([0, 1]) does */
	TT_CHECK(tk_q8_index(tk_dynamic_code, 0.0f) == 131, "signed 0: %d",
		 tk_q8_index(tk_dynamic_code, 0.0f));
	TT_CHECK(tk_q8_index(tk_udynamic_code, 0.0f) == 7, "unsigned 0"); /* bitsandbytes: 7 */
	TT_CHECK(tk_q8_index(tk_udynamic_code, -1.0f) == 0, "unsigned -1");
	TT_CHECK(tk_q8_index(tk_udynamic_code, 1.0f) == 255, "unsigned 1");
	TT_CHECK(tk_q8_index(tk_udynamic_code, 2.0f) == 255, "unsigned clamp");
	TT_CHECK(tk_udynamic_code[0] == 0.0f && tk_udynamic_code[255] == 1.0f, "unsigned map");
	float p = 1, g = 1, m = 0, v = 0;
	uint8_t q = 0;
	TT_CHECK(tk_adamw8(&be1, &p, &g, &q, &q, &m, &m, NULL, NULL, 1, 0, 0, 1e-3, 1.0, 0.9,
			   1e-8, 0, 1) == TK_E_INVAL, "beta1 1");
	TT_CHECK(tk_adamw8(&be1, &p, &g, &q, &q, &m, &m, NULL, NULL, 1, 2, 3, 1e-3, 0.9, 0.9,
			   1e-8, 0, 1) == TK_E_INVAL, "shape");
	TT_CHECK(tk_adamw8(&be1, &p, &g, NULL, NULL, NULL, NULL, &m, &v, 1, 0, 0, 1e-3, 0.9,
			   0.999, 1e-8, 0, 0) == TK_E_INVAL, "step 0");
}

static void test_adamw8_state(void)
{
	struct tk_model_config c;
	struct tk_model m;
	struct tk_diag d;
	const struct tk_param *tp;
	struct tk_adamw8_state st;
	int n, eight = 0;
	/* n_positions 128: wpe 4608 elements, an embedding above 4096 */
	TT_REQUIRE(!tk_config_parse(&c, "{\"model_type\": \"gpt2\", \"n_embd\": 36, "
				    "\"n_head\": 3, \"n_layer\": 1, \"n_positions\": 128, "
				    "\"vocab_size\": 301}", "config.json", &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_init(&m, &c, 1, &be1, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_trainable(&m, &tp, &n, &d), "%s", d.msg);
	TT_REQUIRE(!tk_adamw8_state_init(&st, &be1, tp, n, &d), "%s", d.msg);
	for (int i = 0; i < n; i++) {
		const char *nm = tp[i].name;
		int emb = strstr(nm, "wte.") || strstr(nm, "wpe.");
		TT_CHECK(st.s[i].eight == (!emb && tp[i].n >= 4096), "%s (%zu): eight %d", nm,
			 tp[i].n, st.s[i].eight);
		eight += st.s[i].eight;
		for (size_t j = 0; j < tp[i].n; j++)
			tp[i].g[j] = xs(7 + (uint64_t)i, j) * scales[(j / 97) % 6];
	}
	TT_CHECK(eight == 2, "%d parameters with 8-bit state (c_fc, mlp.c_proj)", eight);
	/* the reference: the op on checkpoint-layout copies, blocked as they lie */
	struct ref { float *p, *g, *a1, *a2; uint8_t *q1, *q2; } r[64];
	TT_REQUIRE(n <= 64, "%d parameters", n);
	for (int i = 0; i < n; i++) {
		const struct tk_param *x = &tp[i];
		size_t nb = (x->n + 255) / 256;
		r[i].p = malloc(x->n * sizeof(float));
		r[i].g = malloc(x->n * sizeof(float));
		r[i].q1 = calloc(x->n, 1);
		r[i].q2 = calloc(x->n, 1);
		r[i].a1 = calloc(nb, sizeof(float));
		r[i].a2 = calloc(nb, sizeof(float));
		tk_model_export(&m, x->t, m.params, r[i].p);
		tk_model_export(&m, x->t, m.grads, r[i].g);
	}
	for (int k = 1; k <= 2; k++) {
		TT_REQUIRE(!tk_adamw8_state_step(&st, tp, 1e-3, 0.9, 0.999, 1e-8, 0.01, k, &d), "%s",
			   d.msg);
		for (int i = 0; i < n; i++)
			if (st.s[i].eight)
				TT_REQUIRE(!tk_adamw8(&be1, r[i].p, r[i].g, r[i].q1, r[i].q2, r[i].a1,
						      r[i].a2, NULL, NULL, tp[i].n, 0, 0, 1e-3, 0.9,
						      0.999, 1e-8, tp[i].decay ? 0.01 : 0.0, k),
					   "reference step");
	}
	for (int i = 0; i < n; i++) {
		const struct tk_param *x = &tp[i];
		if (st.s[i].eight) {
			float *p = malloc(x->n * sizeof(float));
			tk_model_export(&m, x->t, m.params, p);
			TT_CHECK(!memcmp(p, r[i].p, x->n * sizeof(float)), "%s: parameter", x->name);
			TT_CHECK(!memcmp(st.s[i].q1, r[i].q1, x->n) && !memcmp(st.s[i].q2, r[i].q2, x->n),
				 "%s (conv1d %d): codes not in the checkpoint's block order", x->name,
				 x->t->conv1d);
			TT_CHECK(!memcmp(st.s[i].absmax1, r[i].a1, st.s[i].nb * sizeof(float)), "%s",
				 x->name);
			free(p);
		}
		free(r[i].p);
		free(r[i].g);
		free(r[i].q1);
		free(r[i].q2);
		free(r[i].a1);
		free(r[i].a2);
	}
	tk_adamw8_state_free(&st);
	tk_model_free(&m);
}

int main(void)
{
	struct tk_diag d;
	if (tk_backend_cpu_init(&be1, 1, &d) || tk_backend_cpu_init(&be2, 2, &d)) {
		printf("FAIL init: %s\n", d.msg);
		return 1;
	}
	TT_RUN(test_adamw8_bnb);
	TT_RUN(test_adamw8_threads);
	TT_RUN(test_adamw8_transposed);
	TT_RUN(test_adamw8_codes);
	TT_RUN(test_adamw8_state);
	tk_backend_free(&be1);
	tk_backend_free(&be2);
	return tt_done();
}

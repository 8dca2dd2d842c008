/* test-dora.c - DoRA (lib/model/dora.c, use_dora in lib/model/lora.c and
 * lib/model/peft.c) against peft 0.21: the adapters in tests/fixtures/dora
 * (made by tests/parity/gen-dora-fixtures.py) on fp32 and bitsandbytes
 * 4-bit bases, GPT-2's Conv1D and Llama: loss, logits and the gradients of
 * every lora_A, lora_B and lora_magnitude_vector; the magnitude as peft
 * initialises it; merge_and_unload(); inference with the KV cache; and the
 * model-side properties (a fresh adapter changes nothing, dropout's
 * gradients by finite differences, checkpointing, save and load). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/infer.h"
#include "model/peft.h"
#include "model/lora-int.h" /* tk_dora_init */
#include "formats/safetensors.h"
#include "tt.h"

static struct tk_backend be;

struct fix {
	struct tk_model m;
	tk_safetensors_t *ref;
	uint32_t ids[16];
	int32_t targets[16];
	int B, T;
};

static const char *base_of(const char *name)
{
	if (!strcmp(name, "gpt2") || !strcmp(name, "gpt2-bias"))
		return "models/gpt2";
	if (!strcmp(name, "llama"))
		return "models/llama";
	return !strcmp(name, "gpt2-fp4") ? "qlora/gpt2-fp4" : "qlora/llama-nf4-dq";
}

static void fix_free(struct fix *f)
{
	tk_model_free(&f->m);
	tk_safetensors_close(f->ref);
	memset(f, 0, sizeof(*f));
}

static int fix_load(struct fix *f, const char *name, struct tk_diag *d)
{
	char ad[4096], ref[4096];
	const struct tk_tensor_info *ti;
	int32_t labels[16];
	int err;

	memset(f, 0, sizeof(*f));
	snprintf(ad, sizeof(ad), "%s/%s", tt_fixture("dora"), name);
	snprintf(ref, sizeof(ref), "%s.ref.safetensors", ad);
	if ((err = tk_model_load(&f->m, tt_fixture(base_of(name)), &be, d)) ||
	    (err = tk_peft_load(&f->m, ad, d)) || (err = tk_safetensors_open(&f->ref, ref, d)))
		return err;
	ti = tk_safetensors_find(f->ref, "input_ids");
	if (!ti || ti->ndim != 2 || ti->shape[0] * ti->shape[1] > 16 || ti->dtype != TK_DT_I32)
		return tk_diag_set(d, TK_E_FORMAT, ref, -1, "no input_ids [B, T] I32");
	f->B = (int)ti->shape[0];
	f->T = (int)ti->shape[1];
	for (int i = 0; i < f->B * f->T; i++)
		f->ids[i] = (uint32_t)((const int32_t *)ti->data)[i];
	memcpy(labels, tk_safetensors_find(f->ref, "labels")->data,
	       sizeof(int32_t) * (size_t)(f->B * f->T));
	tk_model_shift_labels(labels, f->B, f->T, f->targets);
	return 0;
}

static float *ref_f32(tk_safetensors_t *st, const char *name, size_t *n)
{
	const struct tk_tensor_info *ti = tk_safetensors_find(st, name);
	float *p;

	if (!ti)
		return NULL;
	p = malloc(ti->nelem * sizeof(float));
	if (p && tk_safetensors_to_f32(ti, p, NULL)) {
		free(p);
		return NULL;
	}
	*n = ti->nelem;
	return p;
}

/* max |a - b| over max |b| */
static double max_rel(const float *a, const float *b, size_t n)
{
	double scale = 0, err = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(b[i]) > scale)
			scale = fabs(b[i]);
	for (size_t i = 0; i < n; i++)
		if (fabs(a[i] - b[i]) > err)
			err = fabs(a[i] - b[i]);
	return scale > 0 ? err / scale : err;
}

/* The reference gradient of a trainable parameter: adapters' tensors
 * under their keys, a base bias of an adapted module (bias lora_only) as
 * MODULE.base_layer.bias, as peft saves it. */
static float *ref_grad(tk_safetensors_t *ref, const struct tk_model *m, const struct tk_param *p,
		       size_t *n)
{
	char key[512], mod[256];
	size_t k = strlen(p->name);

	if (!p->t) {
		snprintf(key, sizeof(key), "grad.%s", p->name);
		return ref_f32(ref, key, n);
	}
	if (k <= 5 || strcmp(p->name + k - 5, ".bias"))
		return NULL;
	snprintf(mod, sizeof(mod), "%.*s", (int)(k - 5), p->name);
	if (!tk_lora_find(m->lora, mod))
		return NULL;
	snprintf(key, sizeof(key), "grad.base_model.model.%s%s.base_layer.bias",
		 m->cfg.arch == TK_ARCH_GPT2 && strncmp(mod, "transformer.", 12) ? "transformer." : "",
		 mod);
	return ref_f32(ref, key, n);
}

/* Forward + backward; loss, logits and every gradient against peft's.
 *
 * Tolerances: as test-lora's.  Both sides compute in fp32 with different
 * summation orders: the logits go through 2 layers of sums of at most 128
 * terms of size about 1, about 1e-7 relative each, so 1e-5 of the largest
 * logit leaves a wide margin; DoRA adds one norm per output (a sum of at
 * most 128 squares, computed in double here, fp32 pairwise in torch: 1e-7
 * relative) and one division.  Gradients sum B*T = 16 rows more: 2e-5. */
static void parity(const char *name, double tol)
{
	struct fix f;
	struct tk_diag d;
	struct tk_model_loss loss;
	const struct tk_param *tp;
	int ntp, err, n_mag = 0;
	size_t n;
	float *logits, *want;
	double worst_g = 0, worst_m = 0, el;

	err = fix_load(&f, name, &d);
	TT_REQUIRE(!err, "%s: %s", name, d.msg);
	TT_REQUIRE(f.m.lora->cfg.use_dora, "%s: not DoRA", name);
	f.m.lora->cfg.dropout = 0; /* the reference ran without dropout */
	err = tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &loss, &d);
	TT_REQUIRE(!err, "%s: %s", name, d.msg);
	want = ref_f32(f.ref, "loss", &n);
	TT_REQUIRE(want, "no loss");
	TT_CHECK(fabs(loss.loss - want[0]) <= 2e-6 * fabs(want[0]) + 1e-6, "%s: loss %.8g, peft %.8g",
		 name, loss.loss, want[0]);
	free(want);
	want = ref_f32(f.ref, "logits", &n);
	TT_REQUIRE(want && n == (size_t)f.B * f.T * f.m.cfg.vocab_size, "logits");
	logits = malloc(n * sizeof(float));
	TT_REQUIRE(!tk_model_logits(&f.m, 0, f.B * f.T, logits, &d), "%s", d.msg);
	el = max_rel(logits, want, n);
	TT_CHECK(el < tol, "%s: logits rel err %.3g", name, el);
	free(logits);
	free(want);
	TT_REQUIRE(!tk_model_backward(&f.m, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_trainable(&f.m, &tp, &ntp, &d), "%s", d.msg);
	for (int i = 0; i < ntp; i++) {
		float *g = ref_grad(f.ref, &f.m, &tp[i], &n), *mine = NULL;
		TT_CHECK(g && n == tp[i].n, "%s: no reference gradient for %s", name, tp[i].name);
		if (g && n == tp[i].n && tp[i].t) { /* a base bias: the model's layout */
			mine = malloc(n * sizeof(float));
			tk_model_export(&f.m, tp[i].t, f.m.grads, mine);
		}
		if (g && n == tp[i].n) {
			double e = max_rel(mine ? mine : tp[i].g, g, n);
			int is_m = strstr(tp[i].name, "magnitude") != NULL;
			TT_CHECK(e < 2 * tol, "%s: gradient of %s rel err %.3g", name, tp[i].name, e);
			if (e > worst_g)
				worst_g = e;
			if (is_m && e > worst_m)
				worst_m = e;
			n_mag += is_m;
		}
		free(mine);
		free(g);
	}
	/* and peft trains nothing more */
	int n_ref = 0;
	for (size_t i = 0; i < tk_safetensors_count(f.ref); i++)
		n_ref += !strncmp(tk_safetensors_at(f.ref, i)->name, "grad.", 5);
	TT_CHECK(n_ref == ntp && n_mag == f.m.lora->n_ad, "%s: peft trains %d tensors, tk %d (%d "
		 "magnitudes)", name, n_ref, ntp, n_mag);
	printf("# %s: loss %.7f, logits rel err %.2g, worst gradient rel err %.2g (magnitudes "
	       "%.2g) over %d tensors\n", name, loss.loss, el, worst_g, worst_m, ntp);
	fix_free(&f);
}

static void test_parity_gpt2(void) { parity("gpt2", 1e-5); }
static void test_parity_llama(void) { parity("llama", 1e-5); }
static void test_parity_llama_nf4_dq(void) { parity("llama-nf4-dq", 1e-5); }
static void test_parity_gpt2_fp4(void) { parity("gpt2-fp4", 1e-5); }
static void test_parity_gpt2_bias(void) { parity("gpt2-bias", 1e-5); }

/* The magnitude as peft initialises it: ||W + scale B A|| per row (W
 * dequantized on a 4-bit base, transposed Conv1D on GPT-2).  One fp32 GEMM
 * of r terms and a norm of at most 128 squares: 1e-6 relative. */
static void init_norms(const char *name)
{
	struct fix f;
	struct tk_diag d;
	double worst = 0;

	TT_REQUIRE(!fix_load(&f, name, &d), "%s: %s", name, d.msg);
	TT_REQUIRE(!tk_dora_init(&f.m, &d), "%s", d.msg);
	for (int i = 0; i < f.m.lora->n_ad; i++) {
		const struct tk_lora_adapter *a = &f.m.lora->ad[i];
		char key[512];
		size_t n = 0;
		float *want;
		snprintf(key, sizeof(key), "init.base_model.model.%s%s.lora_magnitude_vector",
			 f.m.cfg.arch == TK_ARCH_GPT2 && strncmp(a->module, "transformer.", 12) ?
			 "transformer." : "", a->module);
		want = ref_f32(f.ref, key, &n);
		TT_CHECK(want && n == (size_t)a->out, "%s: no %s", name, key);
		if (want && n == (size_t)a->out) {
			double e = max_rel(f.m.lora->params + a->m_off, want, n);
			TT_CHECK(e < 1e-6, "%s: initial magnitude of %s rel err %.3g", name,
				 a->module, e);
			worst = e > worst ? e : worst;
		}
		free(want);
	}
	printf("# %s: %d initial magnitudes, worst rel err %.2g\n", name, f.m.lora->n_ad, worst);
	fix_free(&f);
}

static void test_init_gpt2(void) { init_norms("gpt2"); }
static void test_init_llama(void) { init_norms("llama"); }
static void test_init_llama_nf4_dq(void) { init_norms("llama-nf4-dq"); }
static void test_init_gpt2_fp4(void) { init_norms("gpt2-fp4"); }

/* merge_and_unload(): every merged tensor against peft's.  W + scale B A
 * and its norm as above, then one product: 2e-6 relative. */
static void merge(const char *name)
{
	struct fix f;
	struct tk_diag d;
	double worst = 0;
	int checked = 0;

	TT_REQUIRE(!fix_load(&f, name, &d), "%s: %s", name, d.msg);
	TT_CHECK(tk_lora_merge(&f.m, 0.5, &d) == TK_E_UNSUPPORTED && strstr(d.msg, "weight 1"),
		 "%s", d.msg);
	TT_REQUIRE(!tk_lora_merge(&f.m, 1.0, &d), "%s: %s", name, d.msg);
	TT_CHECK(!f.m.lora, "adapters still attached");
	for (size_t i = 0; i < tk_safetensors_count(f.ref); i++) {
		const char *key = tk_safetensors_at(f.ref, i)->name;
		const struct tk_model_tensor *t;
		size_t n;
		float *want, *mine;
		if (strncmp(key, "merged.", 7))
			continue;
		t = tk_model_find(&f.m, key + 7);
		TT_CHECK(t, "%s: merged tensor %s is not in the model", name, key + 7);
		if (!t)
			continue;
		want = ref_f32(f.ref, key, &n);
		mine = malloc(t->n * sizeof(float));
		tk_model_export(&f.m, t, f.m.params, mine);
		double e = max_rel(mine, want, n);
		TT_CHECK(n == t->n && e < 2e-6, "%s: merged %s rel err %.3g", name, t->name, e);
		worst = e > worst ? e : worst;
		checked++;
		free(want);
		free(mine);
	}
	TT_CHECK(checked == 3 * f.m.cfg.n_layer || checked == 7 * f.m.cfg.n_layer,
		 "%s: %d merged tensors in the reference", name, checked);
	printf("# %s: %d merged tensors, worst rel err %.2g\n", name, checked, worst);
	fix_free(&f);
}

static void test_merge_gpt2(void) { merge("gpt2"); }
static void test_merge_llama(void) { merge("llama"); }

/* Inference (KV cache, one token at a time) gives peft's logits. */
static void infer(const char *name)
{
	struct fix f;
	struct tk_diag d;
	struct tk_infer *s;
	size_t n;
	float *want, *lg;
	double worst = 0;

	TT_REQUIRE(!fix_load(&f, name, &d), "%s: %s", name, d.msg);
	want = ref_f32(f.ref, "logits", &n);
	lg = malloc((size_t)f.m.cfg.vocab_size * sizeof(float));
	TT_REQUIRE(want && lg, "logits");
	for (int b = 0; b < f.B; b++) {
		TT_REQUIRE(!tk_infer_new(&s, &f.m, f.T, &d), "%s", d.msg);
		for (int t = 0; t < f.T; t++) {
			const float *w = want + (size_t)(b * f.T + t) * (size_t)f.m.cfg.vocab_size;
			TT_REQUIRE(!tk_infer_feed(s, &f.ids[b * f.T + t], 1, lg, &d), "%s", d.msg);
			double e = max_rel(lg, w, (size_t)f.m.cfg.vocab_size);
			worst = e > worst ? e : worst;
		}
		tk_infer_free(s);
	}
	TT_CHECK(worst < 1e-5, "%s: inference logits rel err %.3g", name, worst);
	printf("# %s: inference logits worst rel err %.2g\n", name, worst);
	free(want);
	free(lg);
	fix_free(&f);
}

static void test_infer_gpt2(void) { infer("gpt2"); }
static void test_infer_llama_nf4_dq(void) { infer("llama-nf4-dq"); }

/* Gradients of every trainable tensor, concatenated. */
static float *all_grads(struct tk_model *m, size_t *n)
{
	const struct tk_param *tp;
	int ntp;
	size_t k = 0;
	float *out;

	if (tk_model_trainable(m, &tp, &ntp, NULL))
		return NULL;
	for (int i = 0; i < ntp; i++)
		k += tp[i].n;
	out = malloc((k ? k : 1) * sizeof(float));
	k = 0;
	for (int i = 0; out && i < ntp; i++) {
		memcpy(out + k, tp[i].g, tp[i].n * sizeof(float));
		k += tp[i].n;
	}
	*n = k;
	return out;
}

/* With dropout (in training, where peft takes W dropout(x) as the part m
 * scales).  The masks are tk's, so peft cannot check them: the gradients
 * of magnitudes by central differences against the same masks (A and B
 * cannot be checked so: the norm they change is detached), and
 * checkpointing recomputes the same bits.  With p = 1e-7 (masks that keep
 * everything but at most one element in 1e7 and scale by 1 + 1e-7) the
 * dropout path, base recomputed from dropout(x), gives peft's gradients. */
static void test_dropout(void)
{
	struct fix f;
	struct tk_diag d;
	struct tk_model_loss l0, lp, lm, l2;
	const struct tk_param *tp;
	int ntp, checked = 0;
	size_t n1 = 0, n2 = 0, n;
	float *g1, *g2;
	double worst = 0;

	TT_REQUIRE(!fix_load(&f, "llama", &d), "%s", d.msg);
	TT_REQUIRE(f.m.lora->cfg.dropout > 0, "the fixture has dropout");
	f.m.lora->cfg.dropout = 1e-7;
	TT_REQUIRE(!tk_model_zero_grad(&f.m, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &l0, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_backward(&f.m, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_trainable(&f.m, &tp, &ntp, &d), "%s", d.msg);
	for (int i = 0; i < ntp; i++) {
		char key[512];
		float *g;
		snprintf(key, sizeof(key), "grad.%s", tp[i].name);
		g = ref_f32(f.ref, key, &n);
		TT_CHECK(g && n == tp[i].n, "no reference gradient for %s", tp[i].name);
		if (g && n == tp[i].n) {
			double e = max_rel(tp[i].g, g, n);
			TT_CHECK(e < 2e-5, "dropout 1e-7: gradient of %s rel err %.3g", tp[i].name, e);
			worst = e > worst ? e : worst;
			checked++;
		}
		free(g);
	}
	printf("# dropout 1e-7: %d gradients, worst rel err %.2g against peft without dropout\n",
	       checked, worst);

	f.m.lora->cfg.dropout = 0.3;
	TT_REQUIRE(!tk_model_zero_grad(&f.m, &d), "%s", d.msg);
	f.m.lora->step = 1; /* the forward adds one: masks of step 2 */
	TT_REQUIRE(!tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &l0, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_backward(&f.m, &d), "%s", d.msg);
	g1 = all_grads(&f.m, &n1);
	/* the magnitudes of the first and the last adapter */
	int pick[2] = { 2, ntp - 1 };
	for (int k = 0; k < 2; k++) {
		const struct tk_param *p = &tp[pick[k]];
		TT_REQUIRE(strstr(p->name, "magnitude"), "%s", p->name);
		for (size_t j = 0; j < p->n; j += p->n / 4 + 1) {
			float keep = p->p[j], h = 1e-2f, g = p->g[j];
			p->p[j] = keep + h;
			f.m.lora->step = 1;
			tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &lp, &d);
			p->p[j] = keep - h;
			f.m.lora->step = 1;
			tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &lm, &d);
			p->p[j] = keep;
			double fd = ((double)lp.loss - lm.loss) / (2.0 * h);
			/* fp32 loss differences over 2h: about 1e-6 / 2e-2; the
			 * curvature's h^2 term stays below 1e-3 here */
			TT_CHECK(fabs(fd - g) <= 2e-3 + 0.02 * fabs(g), "%s[%zu]: fd %.6g, grad %.6g",
				 p->name, j, fd, g);
		}
	}
	tk_model_set_checkpointing(&f.m, 1);
	TT_REQUIRE(!tk_model_zero_grad(&f.m, &d), "%s", d.msg);
	f.m.lora->step = 1;
	TT_REQUIRE(!tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &l2, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_backward(&f.m, &d), "%s", d.msg);
	g2 = all_grads(&f.m, &n2);
	TT_CHECK(l0.loss == l2.loss, "loss %.9g vs %.9g", l0.loss, l2.loss);
	TT_CHECK(n1 == n2 && n1 && !memcmp(g1, g2, n1 * sizeof(float)),
		 "gradients differ with checkpointing");
	/* dropout is on while training: the loss differs from eval's */
	TT_REQUIRE(!tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 0, 0, &lp, &d), "%s", d.msg);
	TT_CHECK(lp.loss != l0.loss, "dropout changed nothing (%.9g)", lp.loss);
	free(g1);
	free(g2);
	fix_free(&f);
}

/* A fresh adapter (B = 0): m = ||W|| per row, the model computes the same
 * bits as before, A gets no gradient, B and m do. */
static void test_attach_fresh(void)
{
	struct tk_model m;
	struct tk_diag d;
	struct tk_lora_config c;
	struct tk_model_loss l0, l1;
	uint32_t ids[8] = { 1, 5, 9, 3, 7, 2, 11, 4 };
	int32_t tg[8] = { 5, 9, 3, 7, 2, 11, 4, -100 };
	const struct tk_param *tp;
	int ntp;
	double worst = 0;

	TT_REQUIRE(!tk_model_load(&m, tt_fixture("models/gpt2"), &be, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_forward(&m, ids, tg, 1, 8, 0, 0, &l0, &d), "%s", d.msg);
	uint64_t n0 = tk_model_count_params(&m);
	tk_lora_config_init(&c);
	c.r = 4;
	c.use_dora = 1;
	snprintf(c.targets[0], TK_LORA_NAME, "all-linear");
	c.n_targets = 1;
	TT_REQUIRE(!tk_lora_attach(&m, &c, 1, &d), "%s", d.msg);
	for (int i = 0; i < m.lora->n_ad; i++) {
		const struct tk_lora_adapter *a = &m.lora->ad[i];
		float *w = malloc(a->base->n * sizeof(float));
		tk_model_export(&m, a->base, m.params, w); /* HF layout: Conv1D [in, out] */
		for (int j = 0; j < a->out; j++) {
			double s = 0;
			for (int k = 0; k < a->in; k++) {
				double v = w[(size_t)k * (size_t)a->out + (size_t)j];
				s += v * v;
			}
			double e = fabs(m.lora->params[a->m_off + (size_t)j] - sqrt(s)) / sqrt(s);
			worst = e > worst ? e : worst;
		}
		free(w);
	}
	TT_CHECK(worst < 1e-6, "magnitude vs ||W|| rel err %.3g", worst);
	TT_CHECK(tk_model_count_params(&m) > n0, "count");
	TT_REQUIRE(!tk_model_forward(&m, ids, tg, 1, 8, 1, 0, &l1, &d), "%s", d.msg);
	TT_CHECK(l0.loss == l1.loss, "loss %.9g became %.9g", l0.loss, l1.loss);
	TT_REQUIRE(!tk_model_backward(&m, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_trainable(&m, &tp, &ntp, &d), "%s", d.msg);
	TT_REQUIRE(ntp == 3 * m.lora->n_ad, "%d trainable", ntp);
	double s[3] = { 0, 0, 0 };
	for (int k = 0; k < 3; k++)
		for (size_t j = 0; j < tp[k].n; j++)
			s[k] += fabs(tp[k].g[j]);
	TT_CHECK(s[0] == 0 && s[1] > 0 && s[2] > 0, "|dA| %g |dB| %g |dm| %g", s[0], s[1], s[2]);
	TT_CHECK(tp[2].ndim == 1 && strstr(tp[2].name, ".lora_magnitude_vector"), "%s",
		 tp[2].name);
	tk_model_free(&m);
}

/* tk_peft_save writes what tk_peft_load reads back (use_dora, the
 * magnitudes); a magnitude under a config without use_dora is refused. */
static void test_save_load(void)
{
	struct fix f;
	struct tk_model m2;
	struct tk_diag d;
	char dir[] = "/tmp/tk-test-dora-XXXXXX", cmd[4200], p[4200];
	FILE *fp;
	char buf[8192];
	size_t n;

	TT_REQUIRE(mkdtemp(dir), "mkdtemp");
	TT_REQUIRE(!fix_load(&f, "gpt2", &d), "%s", d.msg);
	snprintf(p, sizeof(p), "%s/ad", dir);
	TT_REQUIRE(!tk_peft_save(&f.m, p, 0, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_load(&m2, tt_fixture("models/gpt2"), &be, &d), "%s", d.msg);
	TT_REQUIRE(!tk_peft_load(&m2, p, &d), "%s", d.msg);
	TT_CHECK(m2.lora->cfg.use_dora && m2.lora->n_params == f.m.lora->n_params &&
		 !memcmp(m2.lora->params, f.m.lora->params, f.m.lora->n_params * sizeof(float)),
		 "read back differs");
	tk_model_free(&m2);
	snprintf(p, sizeof(p), "%s/ad/adapter_config.json", dir);
	fp = fopen(p, "r");
	TT_REQUIRE(fp, "no config");
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = 0;
	fclose(fp);
	TT_CHECK(strstr(buf, "\"use_dora\": true"), "%s", buf);
	/* the same file under use_dora false */
	snprintf(cmd, sizeof(cmd), "sed -i 's/\"use_dora\": true/\"use_dora\": false/' %s", p);
	TT_REQUIRE(!system(cmd), "%s", cmd);
	snprintf(p, sizeof(p), "%s/ad", dir);
	TT_REQUIRE(!tk_model_load(&m2, tt_fixture("models/gpt2"), &be, &d), "%s", d.msg);
	TT_CHECK(tk_peft_load(&m2, p, &d) == TK_E_FORMAT && strstr(d.msg, "use_dora is not true"),
		 "%s", d.msg);
	TT_CHECK(!m2.lora, "a failed load left an adapter");
	tk_model_free(&m2);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	TT_CHECK(!system(cmd), "%s", cmd);
	fix_free(&f);
}

int main(void)
{
	struct tk_diag d;

	if (tk_backend_cpu_init(&be, 2, &d)) {
		printf("FAIL backend: %s\n", d.msg);
		return 1;
	}
	TT_RUN(test_parity_gpt2);
	TT_RUN(test_parity_llama);
	TT_RUN(test_parity_llama_nf4_dq);
	TT_RUN(test_parity_gpt2_fp4);
	TT_RUN(test_parity_gpt2_bias);
	TT_RUN(test_init_gpt2);
	TT_RUN(test_init_llama);
	TT_RUN(test_init_llama_nf4_dq);
	TT_RUN(test_init_gpt2_fp4);
	TT_RUN(test_merge_gpt2);
	TT_RUN(test_merge_llama);
	TT_RUN(test_infer_gpt2);
	TT_RUN(test_infer_llama_nf4_dq);
	TT_RUN(test_dropout);
	TT_RUN(test_attach_fresh);
	TT_RUN(test_save_load);
	tk_backend_free(&be);
	return tt_done();
}

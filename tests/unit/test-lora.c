/* test-lora.c - LoRA adapters in the model (lib/model/lora.c, lib/model/model-linear.c)
 * against peft: loss, logits and the gradient of every trainable tensor
 * for the adapters in tests/fixtures/lora (made by
 * tests/parity/gen-lora-fixtures.py with peft 0.21 on torch 2.15), merged
 * weights against merge_and_unload(), and the model-side properties
 * (zero B changes nothing, checkpointing gives the same bits, dropout,
 * frozen base, bad configurations). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "compute/cpu.h"
#include "model/lora-int.h" /* tk_lora_dropout */
#include "model/model.h"
#include "model/peft.h"
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
	return !strncmp(name, "gpt2", 4)            ? "models/gpt2"
	       : !strncmp(name, "llama", 5)         ? "models/llama"
	       : !strncmp(name, "qwen3", 5)         ? "models/qwen3"
	       : !strncmp(name, "gemma2", 6)        ? "models/gemma2"
	       : !strncmp(name, "gemma3", 6)        ? "models/gemma3"
	       : !strncmp(name, "phi3-partial", 12) ? "models/phi3-partial"
	       : !strncmp(name, "phi3-longrope", 13) ? "models/phi3-longrope"
	       : !strncmp(name, "phi3", 4)          ? "models/phi3"
						    : "models/qwen2";
}

static void fix_free(struct fix *f)
{
	tk_model_free(&f->m);
	tk_safetensors_close(f->ref);
	memset(f, 0, sizeof(*f));
}

/* Loads the base (fixtures/BASE, default the adapter's) and the adapter,
 * and the reference ids (fixtures/REF.ref.safetensors, default the
 * adapter's). */
static int fix_load2(struct fix *f, const char *name, const char *base, const char *refname,
		     struct tk_diag *d)
{
	char ad[4096], ref[4096];
	const struct tk_tensor_info *ti;
	int32_t labels[16];
	int err;

	memset(f, 0, sizeof(*f));
	if (refname) /* a QLoRA case: its own adapter beside it */
		snprintf(ad, sizeof(ad), "%s-adapter", tt_fixture(refname));
	else
		snprintf(ad, sizeof(ad), "%s/%s", tt_fixture("lora"), name);
	if (refname)
		snprintf(ref, sizeof(ref), "%s.ref.safetensors", tt_fixture(refname));
	else
		snprintf(ref, sizeof(ref), "%s.ref.safetensors", ad);
	if ((err = tk_model_load(&f->m, tt_fixture(base ? base : base_of(name)), &be, d)))
		return err;
	if ((err = tk_peft_load(&f->m, ad, d)))
		return err;
	if ((err = tk_safetensors_open(&f->ref, ref, d)))
		return err;
	ti = tk_safetensors_find(f->ref, "input_ids");
	if (!ti || ti->ndim != 2 || ti->shape[0] * ti->shape[1] > 16 || ti->dtype != TK_DT_I32)
		return tk_diag_set(d, TK_E_FORMAT, ref, -1, "no input_ids [B, T] I32");
	f->B = (int)ti->shape[0];
	f->T = (int)ti->shape[1];
	for (int i = 0; i < f->B * f->T; i++)
		f->ids[i] = (uint32_t)((const int32_t *)ti->data)[i];
	memcpy(labels, tk_safetensors_find(f->ref, "labels")->data, sizeof(int32_t) * (size_t)(f->B * f->T));
	tk_model_shift_labels(labels, f->B, f->T, f->targets);
	return 0;
}

static int fix_load(struct fix *f, const char *name, struct tk_diag *d)
{
	return fix_load2(f, name, NULL, NULL, d);
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

/* The reference name of a trainable parameter: adapters by their key; base
 * tensors "grad.base_model.model.NAME", the bias of an adapted module under
 * MODULE.base_layer.bias. */
static float *ref_grad(tk_safetensors_t *ref, const struct tk_model *m, const struct tk_param *p,
		       size_t *n)
{
	char key[512];
	float *g;

	snprintf(key, sizeof(key), "grad.%s%s", p->t ? "base_model.model." : "", p->name);
	if ((g = ref_f32(ref, key, n)) || !p->t)
		return g;
	size_t k = strlen(p->name);
	if (k > 5 && !strcmp(p->name + k - 5, ".bias")) {
		char mod[256];
		snprintf(mod, sizeof(mod), "%.*s", (int)(k - 5), p->name);
		if (tk_lora_find(m->lora, mod)) {
			snprintf(key, sizeof(key), "grad.base_model.model.%s.base_layer.bias", mod);
			return ref_f32(ref, key, n);
		}
	}
	return NULL;
}

/* Forward + backward; every trainable gradient against peft's. */
static void parity2(const char *name, const char *base, const char *refname, double tol)
{
	struct fix f;
	struct tk_diag d;
	struct tk_model_loss loss;
	const struct tk_param *tp;
	int ntp, err;
	size_t n;
	float *logits, *want;
	double worst_g = 0;

	err = fix_load2(&f, name, base, refname, &d);
	TT_REQUIRE(!err, "%s: %s", name, d.msg);
	TT_REQUIRE(!base || f.m.n_quantized > 0, "%s is not quantized", base);
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
	TT_CHECK(max_rel(logits, want, n) < tol, "%s: logits rel err %.3g", name,
		 max_rel(logits, want, n));
	free(logits);
	free(want);
	TT_REQUIRE(!tk_model_backward(&f.m, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_trainable(&f.m, &tp, &ntp, &d), "%s", d.msg);
	for (int i = 0; i < ntp; i++) {
		float *g = ref_grad(f.ref, &f.m, &tp[i], &n), *mine;
		TT_CHECK(g, "%s: no reference gradient for %s", name, tp[i].name);
		if (!g)
			continue;
		TT_CHECK(n == tp[i].n, "%s: %s has %zu values, peft %zu", name, tp[i].name, tp[i].n,
			 n);
		mine = malloc(tp[i].n * sizeof(float));
		if (tp[i].t)
			tk_model_export(&f.m, tp[i].t, f.m.grads, mine);
		else
			memcpy(mine, tp[i].g, tp[i].n * sizeof(float));
		if (n == tp[i].n) {
			double e = max_rel(mine, g, n);
			TT_CHECK(e < 2 * tol, "%s: gradient of %s rel err %.3g", name, tp[i].name, e);
			if (e > worst_g)
				worst_g = e;
		}
		free(mine);
		free(g);
	}
	/* and nothing peft trains is missing here */
	for (size_t i = 0; i < tk_safetensors_count(f.ref); i++) {
		const char *key = tk_safetensors_at(f.ref, i)->name;
		int found = 0;
		if (strncmp(key, "grad.", 5))
			continue;
		for (int j = 0; j < ntp && !found; j++) {
			char k2[512];
			snprintf(k2, sizeof(k2), "%s%s", tp[j].t ? "base_model.model." : "", tp[j].name);
			found = !strcmp(k2, key + 5) ||
				(tp[j].t && strstr(key, ".base_layer.bias") &&
				 !strncmp(key + 5 + 17, tp[j].name, strlen(tp[j].name) - 5));
		}
		TT_CHECK(found, "%s: peft trains %s, tk does not", name, key + 5);
	}
	printf("# %s%s%s: loss %.7f, worst gradient rel err %.2g over %d tensors\n", name,
	       base ? " on " : "", base ? base : "", loss.loss, worst_g, ntp);
	fix_free(&f);
}

static void parity(const char *name)
{
	parity2(name, NULL, NULL, 1e-5);
}

/* QLoRA: the adapter on a base that transformers + bitsandbytes quantized
 * (tests/parity/gen-qlora-fixtures.py), against peft on that 4-bit model */
static void test_qlora_llama_nf4_dq(void)
{
	parity2("llama-nf4-dq", "qlora/llama-nf4-dq", "qlora/llama-nf4-dq", 1e-5);
}

static void test_qlora_gpt2_fp4(void)
{
	parity2("gpt2-fp4", "qlora/gpt2-fp4", "qlora/gpt2-fp4", 1e-5);
}

/* Phi-3's fused qkv_proj and gate_up_proj quantized whole (NF4, double
 * quantization), one adapter pair on each, partial rotary */
static void test_qlora_phi3_nf4(void)
{
	parity2("phi3-nf4", "qlora/phi3-nf4", "qlora/phi3-nf4", 1e-5);
}

static void test_parity_gpt2_default(void) { parity("gpt2-default"); }
static void test_parity_gpt2_all(void) { parity("gpt2-all"); }
static void test_parity_gpt2_mlp(void) { parity("gpt2-mlp"); }
static void test_parity_llama_qv(void) { parity("llama-qv"); }
static void test_parity_llama_all(void) { parity("llama-all"); }
static void test_parity_llama_seven(void) { parity("llama-seven"); }
static void test_parity_qwen2_qkv(void) { parity("qwen2-qkv"); }
/* Qwen3: peft's default targets; every linear layer with q_norm/k_norm in
 * modules_to_save */
static void test_parity_qwen3(void)
{
	parity("qwen3-default");
	parity("qwen3-all");
}

/* Gemma-2: the seven projections by name; Gemma-3: every linear layer with
 * rsLoRA and its (1 + w) q_norm/k_norm in modules_to_save */
static void test_parity_gemma(void)
{
	parity("gemma2-seven");
	parity("gemma3-all");
}

/* Phi-3: one A/B pair on each fused linear (qkv_proj, gate_up_proj, ...);
 * all-linear with rsLoRA on the partial-rotary, tied model and its final
 * norm saved; qkv_proj alone on the LongRoPE base (its short factors) */
static void test_parity_phi3(void)
{
	parity("phi3-fused");
	parity("phi3-partial-all");
	parity("phi3-longrope-qkv");
}

/* merge_and_unload(): every merged tensor against peft's. */
static void merge(const char *name)
{
	struct fix f;
	struct tk_diag d;
	double worst = 0;
	int checked = 0;

	TT_REQUIRE(!fix_load(&f, name, &d), "%s: %s", name, d.msg);
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
		TT_CHECK(n == t->n && e < 1e-6, "%s: merged %s rel err %.3g", name, t->name, e);
		worst = e > worst ? e : worst;
		checked++;
		free(want);
		free(mine);
	}
	TT_CHECK(checked > 0, "%s: no merged tensors in the reference", name);
	printf("# %s: %d merged tensors, worst rel err %.2g\n", name, checked, worst);
	fix_free(&f);
}

static void test_merge_gpt2(void) { merge("gpt2-all"); }
static void test_merge_llama(void) { merge("llama-seven"); }
static void test_merge_qwen3(void) { merge("qwen3-all"); }
static void test_merge_gemma(void)
{
	merge("gemma2-seven");
	merge("gemma3-all");
}

static void test_merge_phi3(void)
{
	merge("phi3-fused");
	merge("phi3-partial-all");
}

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

/* Checkpointing recomputes the same bits, dropout included: the masks
 * come from the forward's step, not from a running generator. */
static void test_checkpointing_dropout(void)
{
	struct fix f;
	struct tk_diag d;
	struct tk_model_loss l1, l2;
	size_t n1 = 0, n2 = 0;
	float *g1, *g2;

	TT_REQUIRE(!fix_load(&f, "llama-seven", &d), "%s", d.msg);
	TT_REQUIRE(f.m.lora->cfg.dropout > 0, "the fixture has dropout");
	TT_REQUIRE(!tk_model_zero_grad(&f.m, &d), "%s", d.msg);
	f.m.lora->step = 7;
	TT_REQUIRE(!tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &l1, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_backward(&f.m, &d), "%s", d.msg);
	g1 = all_grads(&f.m, &n1);
	tk_model_set_checkpointing(&f.m, 1);
	TT_REQUIRE(!tk_model_zero_grad(&f.m, &d), "%s", d.msg);
	f.m.lora->step = 7;
	TT_REQUIRE(!tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &l2, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_backward(&f.m, &d), "%s", d.msg);
	g2 = all_grads(&f.m, &n2);
	TT_CHECK(l1.loss == l2.loss, "loss %.9g vs %.9g", l1.loss, l2.loss);
	TT_CHECK(n1 == n2 && n1 && !memcmp(g1, g2, n1 * sizeof(float)),
		 "gradients differ with checkpointing");
	/* dropout is on while training: the loss differs from eval's */
	struct tk_model_loss le;
	TT_REQUIRE(!tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 0, 0, &le, &d), "%s", d.msg);
	TT_CHECK(le.loss != l1.loss, "dropout changed nothing (%.9g)", le.loss);
	free(g1);
	free(g2);
	fix_free(&f);
}

/* Dropout's gradients by finite differences (double-checked against the
 * same mask: the step stays put). */
static void test_dropout_gradient(void)
{
	struct fix f;
	struct tk_diag d;
	struct tk_model_loss l0, lp, lm;
	const struct tk_param *tp;
	int ntp;

	TT_REQUIRE(!fix_load(&f, "gpt2-mlp", &d), "%s", d.msg);
	f.m.lora->cfg.dropout = 0.3;
	TT_REQUIRE(!tk_model_zero_grad(&f.m, &d), "%s", d.msg);
	f.m.lora->step = 1; /* the forward adds one: masks of step 2 */
	TT_REQUIRE(!tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &l0, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_backward(&f.m, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_trainable(&f.m, &tp, &ntp, &d), "%s", d.msg);
	/* central differences on a few entries of the first A and B */
	for (int k = 0; k < 2; k++) {
		const struct tk_param *p = &tp[k];
		for (size_t j = 0; j < p->n; j += p->n / 3 + 1) {
			float keep = p->p[j], h = 1e-2f, g = p->g[j];
			p->p[j] = keep + h;
			f.m.lora->step = 1;
			tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &lp, &d);
			p->p[j] = keep - h;
			f.m.lora->step = 1;
			tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &lm, &d);
			p->p[j] = keep;
			double fd = ((double)lp.loss - lm.loss) / (2.0 * h);
			TT_CHECK(fabs(fd - g) <= 2e-3 + 0.02 * fabs(g), "%s[%zu]: fd %.6g, grad %.6g",
				 p->name, j, fd, g);
		}
	}
	fix_free(&f);
}

/* tk_lora_dropout at every instruction-set level this CPU runs (its
 * vectorized copies) against its definition, element by element: kept
 * when the hash of (seed, step, adapter, j) is at least p, scaled by
 * 1 / (1 - p); in place too, and at lengths around the copies' chunks. */
static void test_dropout_isas(void)
{
	static const size_t NS[] = { 1, 7, 4096, 4097, 10000 };
	struct fix f;
	struct tk_diag d;
	char *saved = tt_env_save("TK_CPU_ISA");
	float *x = malloc(10000 * sizeof(float)), *y = malloc(10000 * sizeof(float));
	size_t kept = 0, total = 0;

	TT_REQUIRE(x && y, "out of memory");
	TT_REQUIRE(!fix_load(&f, "gpt2-mlp", &d), "%s", d.msg);
	f.m.lora->cfg.dropout = 0.3;
	f.m.lora->step = 5;
	for (int i = 0; i < 10000; i++)
		x[i] = (float)(i % 97) * 0.25f - 12.0f;
	uint64_t key = tk_mix64(tk_mix64(tk_mix64(f.m.lora->seed) ^ 5) ^ 3);
	uint64_t thr = (uint64_t)(0.3 * 18446744073709551616.0);
	float s = (float)(1.0 / (1.0 - 0.3));
	for (int isa = (int)tk_cpu_isa_best(); isa >= 0; isa--) {
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)isa), 1);
		for (size_t ni = 0; ni < sizeof(NS) / sizeof(NS[0]); ni++) {
			size_t n = NS[ni];
			tk_lora_dropout(f.m.lora, 2, x, y, n);
			for (size_t j = 0; j < n && !tt_failed_now; j++) {
				int keep = tk_mix64(key + (uint64_t)j * TK_SPLITMIX64_GAMMA) >= thr;
				float want = keep ? x[j] * s : 0.0f;
				TT_CHECK(!memcmp(&y[j], &want, sizeof(float)), "%s n %zu [%zu]: %g, want %g",
					 tk_cpu_isa_name((enum tk_cpu_isa)isa), n, j, y[j], want);
				kept += (size_t)keep;
				total++;
			}
			memcpy(y, x, n * sizeof(float));
			tk_lora_dropout(f.m.lora, 2, y, y, n); /* in place */
			for (size_t j = 0; j < n && !tt_failed_now; j++) {
				int keep = tk_mix64(key + (uint64_t)j * TK_SPLITMIX64_GAMMA) >= thr;
				float want = keep ? x[j] * s : 0.0f;
				TT_CHECK(!memcmp(&y[j], &want, sizeof(float)), "in place [%zu]", j);
			}
		}
	}
	TT_CHECK(kept > total * 6 / 10 && kept < total * 8 / 10, "kept %zu of %zu", kept, total);
	tt_env_restore("TK_CPU_ISA", saved);
	free(x), free(y);
	fix_free(&f);
}

/* B = 0 (a fresh adapter) leaves the model's output as it was, and only
 * the adapters and what the config names are trainable. */
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

	TT_REQUIRE(!tk_model_load(&m, tt_fixture("models/llama"), &be, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_forward(&m, ids, tg, 1, 8, 0, 0, &l0, &d), "%s", d.msg);
	tk_lora_config_init(&c);
	c.r = 4;
	snprintf(c.targets[0], TK_LORA_NAME, "all-linear");
	c.n_targets = 1;
	snprintf(c.modules_to_save[0], TK_LORA_NAME, "lm_head");
	c.n_modules_to_save = 1;
	TT_REQUIRE(!tk_lora_attach(&m, &c, 1, &d), "%s", d.msg);
	TT_CHECK(m.lora->n_ad == 7 * m.cfg.n_layer, "%d adapters", m.lora->n_ad);
	TT_REQUIRE(!tk_model_forward(&m, ids, tg, 1, 8, 1, 0, &l1, &d), "%s", d.msg);
	TT_CHECK(l0.loss == l1.loss, "loss %.9g became %.9g", l0.loss, l1.loss);
	TT_REQUIRE(!tk_model_backward(&m, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_trainable(&m, &tp, &ntp, &d), "%s", d.msg);
	TT_CHECK(ntp == 2 * m.lora->n_ad + 1, "%d trainable", ntp);
	TT_CHECK(ntp && tp[ntp - 1].t && !strcmp(tp[ntp - 1].name, "lm_head.weight"), "last %s",
		 ntp ? tp[ntp - 1].name : "-");
	/* A gets no gradient while B is 0; B does */
	double sa = 0, sb = 0;
	for (size_t j = 0; j < tp[0].n; j++)
		sa += fabs(tp[0].g[j]);
	for (size_t j = 0; j < tp[1].n; j++)
		sb += fabs(tp[1].g[j]);
	TT_CHECK(sa == 0 && sb > 0, "|dA| %g |dB| %g", sa, sb);
	TT_CHECK(!m.tensors[0].trainable, "the embedding is not frozen");
	tk_model_free(&m);
}

static void test_bad_configs(void)
{
	struct tk_model m;
	struct tk_diag d;
	struct tk_lora_config c;

	TT_REQUIRE(!tk_model_load(&m, tt_fixture("models/gpt2"), &be, &d), "%s", d.msg);
	tk_lora_config_init(&c);
	snprintf(c.targets[0], TK_LORA_NAME, "q_proj");
	c.n_targets = 1;
	TT_CHECK(tk_lora_attach(&m, &c, 1, &d) == TK_E_INVAL &&
		 strstr(d.msg, "target module q_proj is not in the model") &&
		 strstr(d.msg, "c_attn, attn.c_proj, c_fc, mlp.c_proj"), "%s", d.msg);
	snprintf(c.targets[0], TK_LORA_NAME, "ln_1");
	TT_CHECK(tk_lora_attach(&m, &c, 1, &d) == TK_E_INVAL && strstr(d.msg, "not a linear layer"),
		 "%s", d.msg);
	c.n_targets = 0;
	c.r = 0;
	TT_CHECK(tk_lora_attach(&m, &c, 1, &d) == TK_E_INVAL && strstr(d.msg, "r must be positive"),
		 "%s", d.msg);
	c.r = 8;
	c.alpha = -1;
	TT_CHECK(tk_lora_attach(&m, &c, 1, &d) == TK_E_INVAL && strstr(d.msg, "alpha"), "%s",
		 d.msg);
	c.alpha = 8;
	snprintf(c.modules_to_save[0], TK_LORA_NAME, "lm_head");
	c.n_modules_to_save = 1;
	TT_CHECK(tk_lora_attach(&m, &c, 1, &d) == TK_E_INVAL && strstr(d.msg, "tied"), "%s", d.msg);
	TT_CHECK(!m.lora && m.tensors[0].trainable, "a failed attach left the model changed");
	c.n_modules_to_save = 0;
	TT_REQUIRE(!tk_lora_attach(&m, &c, 1, &d), "%s", d.msg);
	TT_CHECK(m.lora->n_ad == m.cfg.n_layer && m.lora->cfg.fan_in_fan_out, "peft's default");
	TT_CHECK(tk_lora_attach(&m, &c, 1, &d) == TK_E_INVAL, "attached twice");
	tk_lora_detach(&m);
	TT_CHECK(!m.lora && m.tensors[0].trainable, "detach");
	tk_model_free(&m);

	/* phi3: peft has no default targets (it raises), and q_proj is no
	 * module of it: the fused names are listed */
	TT_REQUIRE(!tk_model_load(&m, tt_fixture("models/phi3"), &be, &d), "%s", d.msg);
	tk_lora_config_init(&c);
	TT_CHECK(tk_lora_attach(&m, &c, 1, &d) == TK_E_INVAL &&
		 strstr(d.msg, "peft has no default target modules for phi3") && !m.lora,
		 "%s", d.msg);
	snprintf(c.targets[0], TK_LORA_NAME, "q_proj");
	c.n_targets = 1;
	TT_CHECK(tk_lora_attach(&m, &c, 1, &d) == TK_E_INVAL &&
		 strstr(d.msg, "are: qkv_proj, o_proj, gate_up_proj, down_proj (or all-linear)"), "%s", d.msg);
	snprintf(c.targets[0], TK_LORA_NAME, "all-linear");
	TT_REQUIRE(!tk_lora_attach(&m, &c, 1, &d), "%s", d.msg);
	TT_CHECK(m.lora->n_ad == 4 * m.cfg.n_layer && m.lora->ad[0].out == 6 * 8 + 2 * 2 * 8 &&
		 m.lora->ad[2].out == 2 * 76, "phi3 all-linear: %d adapters", m.lora->n_ad);
	tk_model_free(&m);
}

int main(void)
{
	struct tk_diag d;

	if (tk_backend_cpu_init(&be, 2, &d)) {
		printf("FAIL backend: %s\n", d.msg);
		return 1;
	}
	TT_RUN(test_parity_gpt2_default);
	TT_RUN(test_parity_gpt2_all);
	TT_RUN(test_parity_gpt2_mlp);
	TT_RUN(test_parity_llama_qv);
	TT_RUN(test_parity_llama_all);
	TT_RUN(test_parity_llama_seven);
	TT_RUN(test_parity_qwen2_qkv);
	TT_RUN(test_parity_qwen3);
	TT_RUN(test_parity_gemma);
	TT_RUN(test_parity_phi3);
	TT_RUN(test_qlora_llama_nf4_dq);
	TT_RUN(test_qlora_gpt2_fp4);
	TT_RUN(test_qlora_phi3_nf4);
	TT_RUN(test_merge_gpt2);
	TT_RUN(test_merge_llama);
	TT_RUN(test_merge_qwen3);
	TT_RUN(test_merge_gemma);
	TT_RUN(test_merge_phi3);
	TT_RUN(test_checkpointing_dropout);
	TT_RUN(test_dropout_gradient);
	TT_RUN(test_dropout_isas);
	TT_RUN(test_attach_fresh);
	TT_RUN(test_bad_configs);
	tk_backend_free(&be);
	return tt_done();
}

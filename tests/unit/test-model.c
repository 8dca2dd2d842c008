/* test-model.c - the decoder against transformers (fixtures made by
 * tests/parity/gen-model-fixtures.py), save/load round trips, bad
 * checkpoints, initialisation.
 *
 * Environment (used by tests/parity/check-model.py):
 *   TK_MODEL_FIXTURES  directory holding NAME/ and NAME.ref.safetensors
 *                      (default tests/fixtures/models)
 *   TK_MODEL_KEEP      directory that receives NAME-saved/ (the fixture
 *                      model as tk saved it), NAME-init/ (a model tk
 *                      initialised from NAME's config, seed 42) and
 *                      NAME-init.logits.safetensors (its logits on the
 *                      fixture's input_ids), for transformers to load
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute/backend.h"
#include "formats/config.h"
#include "model/model-int.h" /* tk_model_chunk_rows */
#include "model/model.h"
#include "formats/safetensors.h"
#include "tt.h"

/* Tolerances: logits max abs error, loss relative error, gradient error
 * relative to the largest magnitude of that gradient tensor. */
#define TOL_LOGITS 2e-5
#define TOL_LOSS 1e-5
#define TOL_GRAD 1e-4

static const char *NAMES[] = { "gpt2",        "llama",        "qwen2",         "qwen3",
			       "smollm3",     "rope-llama3",  "rope-linear",   "rope-yarn",
			       "rope-longrope", "rope-dynamic", "swa-mistral",  "swa-qwen2",
			       "phi3",        "phi3-partial", "phi3-longrope", "swa-phi3",
			       "gemma2",      "gemma3" };
#define N_MODELS (int)(sizeof(NAMES) / sizeof(NAMES[0]))

static struct tk_backend be;

static const char *fixdir(void)
{
	static char buf[4096];
	const char *e = getenv("TK_MODEL_FIXTURES");

	if (e && *e)
		return e;
	snprintf(buf, sizeof(buf), "%s", tt_fixture("models"));
	return buf;
}

static const char *path2(const char *a, const char *b)
{
	static char buf[8][4096]; /* a ring: hold results only briefly */
	static int k;
	char *p = buf[k++ & 7];

	snprintf(p, 4096, "%s/%s", a, b);
	return p;
}

/* A fixture: the model, the reference file and its inputs. */
struct fix {
	struct tk_model m;
	tk_safetensors_t *ref;
	int B, T;
	uint32_t *ids;
	int32_t *labels, *targets;
};

static void fix_free(struct fix *f)
{
	tk_model_free(&f->m);
	tk_safetensors_close(f->ref);
	free(f->ids);
	free(f->labels);
	free(f->targets);
	memset(f, 0, sizeof(*f));
}

static int fix_load(struct fix *f, const char *name, struct tk_diag *d)
{
	const struct tk_tensor_info *ti, *tl;
	char file[256];
	int err, i;

	memset(f, 0, sizeof(*f));
	err = tk_model_load(&f->m, path2(fixdir(), name), &be, d);
	if (err)
		return err;
	snprintf(file, sizeof(file), "%s.ref.safetensors", name);
	err = tk_safetensors_open(&f->ref, path2(fixdir(), file), d);
	if (err)
		return err;
	ti = tk_safetensors_find(f->ref, "input_ids");
	tl = tk_safetensors_find(f->ref, "labels");
	if (!ti || !tl || ti->dtype != TK_DT_I32 || tl->dtype != TK_DT_I32 || ti->ndim != 2)
		return tk_diag_set(d, TK_E_FORMAT, file, -1, "no I32 input_ids/labels");
	f->B = (int)ti->shape[0];
	f->T = (int)ti->shape[1];
	f->ids = malloc(ti->nelem * sizeof(uint32_t));
	f->labels = malloc(ti->nelem * sizeof(int32_t));
	f->targets = malloc(ti->nelem * sizeof(int32_t));
	if (!f->ids || !f->labels || !f->targets)
		return TK_E_NOMEM;
	memcpy(f->labels, tl->data, tl->nelem * sizeof(int32_t));
	for (i = 0; i < (int)ti->nelem; i++)
		f->ids[i] = (uint32_t)((const int32_t *)ti->data)[i];
	tk_model_shift_labels(f->labels, f->B, f->T, f->targets);
	return 0;
}

/* The reference tensor as fp32 (malloc'ed), NULL if absent. */
static float *ref_f32(tk_safetensors_t *st, const char *name, size_t *n)
{
	const struct tk_tensor_info *t = tk_safetensors_find(st, name);
	float *p;

	if (!t || !(p = malloc(t->nelem * sizeof(float) + 1)))
		return NULL;
	if (tk_safetensors_to_f32(t, p, NULL)) {
		free(p);
		return NULL;
	}
	*n = t->nelem;
	return p;
}

/* Forward + backward against the reference of one model. */
static void parity(const char *name)
{
	struct tk_diag d;
	struct fix f;
	struct tk_model_loss loss;
	float *logits = NULL, *ref = NULL, *g = NULL;
	size_t n, i;
	double worst_logit = 0, worst_grad = 0, rel_loss;
	const char *worst_name = "";
	int err, k, matched = 0;

	tk_diag_clear(&d);
	err = fix_load(&f, name, &d);
	TT_REQUIRE(!err, "%s: %s: %s", name, d.path, d.msg);
	err = tk_model_forward(&f.m, f.ids, f.targets, f.B, f.T, 1, 0, &loss, &d);
	TT_REQUIRE(!err, "%s: forward: %s", name, d.msg);

	ref = ref_f32(f.ref, "loss", &n);
	TT_REQUIRE(ref && n == 1, "%s: no reference loss", name);
	rel_loss = fabs(loss.loss - ref[0]) / fabs(ref[0]);
	TT_CHECK(rel_loss <= TOL_LOSS, "%s: loss %.8f, transformers %.8f", name, loss.loss,
		 ref[0]);
	free(ref);

	ref = ref_f32(f.ref, "logits", &n);
	logits = malloc((size_t)f.B * f.T * f.m.cfg.vocab_size * sizeof(float));
	TT_REQUIRE(ref && logits && n == (size_t)f.B * f.T * f.m.cfg.vocab_size,
		   "%s: logits", name);
	err = tk_model_logits(&f.m, 0, f.B * f.T, logits, &d);
	TT_REQUIRE(!err, "%s: logits: %s", name, d.msg);
	for (i = 0; i < n; i++)
		if (fabs(logits[i] - ref[i]) > worst_logit || isnan(logits[i]))
			worst_logit = isnan(logits[i]) ? INFINITY : fabs(logits[i] - ref[i]);
	TT_CHECK(worst_logit <= TOL_LOGITS, "%s: logits differ by %g", name, worst_logit);
	free(ref);
	ref = NULL;

	err = tk_model_backward(&f.m, &d);
	TT_REQUIRE(!err, "%s: backward: %s", name, d.msg);
	for (k = 0; k < f.m.n_tensors; k++) {
		const struct tk_model_tensor *t = &f.m.tensors[k];
		char key[160];
		double maxref = 0, maxdiff = 0;

		snprintf(key, sizeof(key), "grad.%s", t->name);
		ref = ref_f32(f.ref, key, &n);
		TT_CHECK(ref && n == t->n, "%s: no reference %s", name, key);
		if (!ref || n != t->n) {
			free(ref);
			continue;
		}
		g = malloc(t->n * sizeof(float));
		TT_REQUIRE(g, "out of memory");
		tk_model_export(&f.m, t, f.m.grads, g);
		for (i = 0; i < n; i++) {
			maxref = fmax(maxref, fabs(ref[i]));
			maxdiff = isnan(g[i]) ? INFINITY : fmax(maxdiff, fabs(g[i] - ref[i]));
		}
		TT_CHECK(maxref > 0, "%s: reference gradient of %s is zero", name, t->name);
		if (maxdiff / maxref > worst_grad || isinf(maxdiff)) {
			worst_grad = maxdiff / maxref;
			worst_name = f.m.tensors[k].name;
		}
		matched++;
		free(ref);
		free(g);
		ref = g = NULL;
	}
	/* every reference gradient belongs to a tensor of the model */
	for (i = 0; i < tk_safetensors_count(f.ref); i++)
		if (!strncmp(tk_safetensors_at(f.ref, i)->name, "grad.", 5))
			TT_CHECK(tk_model_find(&f.m, tk_safetensors_at(f.ref, i)->name + 5),
				 "%s: model has no tensor %s", name, tk_safetensors_at(f.ref, i)->name + 5);
	TT_CHECK(worst_grad <= TOL_GRAD, "%s: gradient of %s off by %g (relative to its max)",
		 name, worst_name, worst_grad);
	printf("info %s: loss %.7f (rel err %.2g), logits max abs err %.2g, "
	       "%d gradients, worst rel err %.2g (%s)\n", name, loss.loss, rel_loss, worst_logit,
	       matched, worst_grad, worst_name);
	free(logits);
	fix_free(&f);
}

static void test_parity_gpt2(void)
{
	parity("gpt2");
}

static void test_parity_llama(void)
{
	parity("llama");
}

static void test_parity_qwen2(void)
{
	parity("qwen2");
}

/* Qwen3: per-head q_norm/k_norm, head_dim 16 apart from 48 / 6 heads */
static void test_parity_qwen3(void)
{
	parity("qwen3");
}

/* SmolLM3: layer 1 of 2 without RoPE (no_rope_layers), tied embeddings */
static void test_parity_smollm3(void)
{
	parity("smollm3");
}

/* Gemma-2: (1 + w) norms, four a layer, scaled embeddings, GeGLU,
 * query_pre_attn_scalar 24, attention and final soft-capping, layers 0 and
 * 2 of 3 attending through a window of 5 of the 11 tokens, tied */
static void test_parity_gemma2(void)
{
	parity("gemma2");
}

/* Gemma-3: q/k norms, the sliding layers' own rope theta, a linear
 * scaling on the full layer, window 4, untied */
static void test_parity_gemma3(void)
{
	parity("gemma3");
}

/* The rotary scalings on 40 tokens, past the original context of 32
 * (llama3, yarn, longrope: its long factors) or max_position_embeddings 32
 * (dynamic NTK: the table transformers grows to on a first forward of 40) */
static void test_parity_rope(void)
{
	parity("rope-llama3");
	parity("rope-linear");
	parity("rope-yarn");
	parity("rope-longrope");
	parity("rope-dynamic");
}

/* Phi-3: fused qkv_proj and gate_up_proj; Phi-4-mini's partial rotary
 * (6 of each head of 8) with one key/value head and tied embeddings; and
 * LongRoPE past the original context of 32 with partial rotary */
static void test_parity_phi3(void)
{
	parity("phi3");
	parity("phi3-partial");
	parity("phi3-longrope");
}

/* Sliding windows of 5 on 16 tokens: Mistral's on both layers; Qwen2's
 * use_sliding_window on layers 1 and 2 of 3 (max_window_layers 1), layer
 * 0 full causal; Phi-3's (as Mistral's) with partial rotary */
static void test_parity_swa(void)
{
	parity("swa-mistral");
	parity("swa-qwen2");
	parity("swa-phi3");
}

/* One forward + backward of m on ids/targets [B, T] from zeroed
 * gradients; the gradients are copied into grads. */
static int step_grads(struct tk_model *m, const uint32_t *ids, const int32_t *targets, int B,
		      int T, struct tk_model_loss *loss, float *grads, struct tk_diag *d)
{
	int err = tk_model_zero_grad(m, d);

	if (!err)
		err = tk_model_forward(m, ids, targets, B, T, 1, 0, loss, d);
	if (!err)
		err = tk_model_backward(m, d);
	if (!err)
		memcpy(grads, m->grads, m->n_params * sizeof(float));
	return err;
}

/* Gradient checkpointing on model m: the loss, the logits and every
 * gradient are bit-identical with and without it, in either order and
 * when the mode changes between a forward and its backward; the
 * activation memory drops by at least the big tensors of n_layer - 1
 * layers. */
static void check_ckpt(const char *name, struct tk_model *m, const uint32_t *ids,
		       const int32_t *targets, int B, int T)
{
	const struct tk_model_config *c = &m->cfg;
	struct tk_diag d;
	struct tk_model_loss l0, l1, l2;
	size_t n = m->n_params, V = (size_t)c->vocab_size, N = (size_t)B * T;
	size_t full, ckpt, big, Q = (size_t)c->n_head * c->head_dim;
	size_t K = (size_t)c->n_kv_head * c->head_dim, F = (size_t)c->intermediate;
	float *g0 = malloc(n * sizeof(float)), *g1 = malloc(n * sizeof(float));
	float *lg0 = malloc(N * V * sizeof(float)), *lg1 = malloc(N * V * sizeof(float));
	int err;

	tk_diag_clear(&d);
	TT_REQUIRE(g0 && g1 && lg0 && lg1, "out of memory");
	TT_REQUIRE(c->n_layer >= 2, "%s: checkpointing needs two layers to show", name);
	tk_model_set_checkpointing(m, 0);
	full = tk_model_run_bytes(m, B, T);
	err = step_grads(m, ids, targets, B, T, &l0, g0, &d);
	TT_REQUIRE(!err, "%s: %s", name, d.msg);
	TT_REQUIRE(!tk_model_logits(m, 0, (int)N, lg0, &d), "%s", d.msg);

	tk_model_set_checkpointing(m, 1);
	ckpt = tk_model_run_bytes(m, B, T);
	err = step_grads(m, ids, targets, B, T, &l1, g1, &d);
	TT_REQUIRE(!err, "%s: %s", name, d.msg);
	TT_REQUIRE(!tk_model_logits(m, 0, (int)N, lg1, &d), "%s", d.msg);
	TT_CHECK(l1.sum == l0.sum && l1.count == l0.count && !memcmp(&l1.loss, &l0.loss, 4),
		 "%s: loss %.9g with checkpointing, %.9g without", name, l1.loss, l0.loss);
	TT_CHECK(!memcmp(lg0, lg1, N * V * sizeof(float)), "%s: logits differ", name);
	for (int k = 0; k < m->n_tensors; k++) {
		const struct tk_model_tensor *t = &m->tensors[k];
		TT_CHECK(!memcmp(g0 + t->off, g1 + t->off, t->n * sizeof(float)),
			 "%s: gradient of %s differs with checkpointing", name, t->name);
	}

	/* the backward follows its forward's mode, whatever was set since */
	TT_REQUIRE(!tk_model_zero_grad(m, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_forward(m, ids, targets, B, T, 1, 0, &l2, &d), "%s", d.msg);
	tk_model_set_checkpointing(m, 0);
	TT_REQUIRE(!tk_model_backward(m, &d), "%s", d.msg);
	TT_CHECK(!memcmp(g0, m->grads, n * sizeof(float)),
		 "%s: mode switched before the backward changed the gradients", name);
	/* and back to full activations, after the checkpointed layout */
	err = step_grads(m, ids, targets, B, T, &l2, g1, &d);
	TT_REQUIRE(!err, "%s: %s", name, d.msg);
	TT_CHECK(!memcmp(g0, g1, n * sizeof(float)) && l2.sum == l0.sum,
		 "%s: gradients changed after checkpointing was turned off", name);

	/* what a layer keeps without checkpointing: ln1, mid, ln2, q, att, k,
	 * v, the MLP's hidden and activation (and up for SwiGLU) */
	big = N * (3 * (size_t)c->hidden + 2 * Q + 2 * K + (c->mlp == TK_MLP_SWIGLU ? 3 : 2) * F);
	TT_CHECK(ckpt < full && full - ckpt >= (size_t)(c->n_layer - 1) * big * sizeof(float),
		 "%s: activations %zu bytes with checkpointing, %zu without", name, ckpt, full);
	TT_CHECK(tk_model_run_bytes(m, 0, T) == 0, "empty shape");
	free(g0);
	free(g1);
	free(lg0);
	free(lg1);
}

/* The fixture models (two layers each), then four-layer models initialised
 * from their configurations on random tokens. */
static void test_checkpointing(void)
{
	struct tk_diag d;
	uint64_t s = 0x9e3779b97f4a7c15ull;

	tk_diag_clear(&d);
	for (int i = 0; i < N_MODELS; i++) {
		struct fix f;
		struct tk_model m;
		struct tk_model_config c;
		uint32_t ids[3 * 9];
		int32_t tg[3 * 9];

		TT_REQUIRE(!fix_load(&f, NAMES[i], &d), "%s: %s", NAMES[i], d.msg);
		check_ckpt(NAMES[i], &f.m, f.ids, f.targets, f.B, f.T);
		c = f.m.cfg;
		fix_free(&f);
		if (tt_failed_now)
			return;
		c.n_layer = 4;
		TT_REQUIRE(!tk_model_init(&m, &c, 7, &be, &d), "%s", d.msg);
		for (int k = 0; k < 3 * 9; k++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			ids[k] = (uint32_t)(s >> 33) % (uint32_t)c.vocab_size;
			tg[k] = k % 5 == 4 ? -100 : (int32_t)((s >> 17) % (uint64_t)c.vocab_size);
		}
		check_ckpt(NAMES[i], &m, ids, tg, 3, 9);
		tk_model_free(&m);
		if (tt_failed_now)
			return;
	}
}

/* More rows than one lm-head chunk, several sequences: the loss of the
 * fixture's batch repeated over several chunks is the same mean, and the logits of each
 * copy are those of the batch alone. */
static void test_chunked_rows(void)
{
	struct tk_diag d;
	struct fix f;
	struct tk_model_loss l1, l4;
	uint32_t *ids4 = NULL;
	int32_t *tg4 = NULL;
	float *lg1 = NULL, *lg4 = NULL;
	int B, T, V, N, r, err, reps;
	double worst = 0;

	tk_diag_clear(&d);
	err = fix_load(&f, "llama", &d);
	TT_REQUIRE(!err, "%s", d.msg);
	B = f.B;
	T = f.T;
	V = f.m.cfg.vocab_size;
	N = B * T;
	reps = tk_model_chunk_rows(V, 0) / N + 2; /* enough copies for several chunks */
	ids4 = malloc((size_t)reps * N * sizeof(*ids4));
	tg4 = malloc((size_t)reps * N * sizeof(*tg4));
	lg1 = malloc((size_t)N * V * sizeof(float));
	lg4 = malloc((size_t)reps * N * V * sizeof(float));
	TT_REQUIRE(ids4 && tg4 && lg1 && lg4, "out of memory");
	for (r = 0; r < reps; r++) {
		memcpy(ids4 + r * N, f.ids, N * sizeof(*ids4));
		memcpy(tg4 + r * N, f.targets, N * sizeof(*tg4));
	}
	TT_REQUIRE(reps * N > tk_model_chunk_rows(V, 0), "the batch must span several chunks");
	err = tk_model_forward(&f.m, f.ids, f.targets, B, T, 0, 0, &l1, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	err = tk_model_logits(&f.m, 0, N, lg1, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	err = tk_model_forward(&f.m, ids4, tg4, reps * B, T, 0, 0, &l4, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	err = tk_model_logits(&f.m, 0, reps * N, lg4, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	TT_CHECK(l4.count == reps * l1.count, "count %ld vs %ld", l4.count, l1.count);
	TT_CHECK(fabs(l4.loss - l1.loss) <= 1e-6 * fabs(l1.loss), "loss %.8f vs %.8f", l4.loss,
		 l1.loss);
	for (r = 0; r < reps * N * V; r++)
		worst = fmax(worst, fabs(lg4[r] - lg1[r % (N * V)]));
	TT_CHECK(worst <= 1e-5, "repeated rows give logits %g apart", worst);
	free(ids4);
	free(tg4);
	free(lg1);
	free(lg4);
	fix_free(&f);
}

/* Gradients accumulate; grad_div makes two half batches equal one batch. */
static void test_grad_accumulation(void)
{
	struct tk_diag d;
	struct fix f;
	struct tk_model_loss l, la, lb;
	float *full = NULL;
	size_t i, n;
	double worst = 0, maxg = 0;
	int err, N;

	tk_diag_clear(&d);
	err = fix_load(&f, "gpt2", &d);
	TT_REQUIRE(!err, "%s", d.msg);
	TT_REQUIRE(f.B == 2, "fixture batch of 2");
	N = f.T;
	n = f.m.n_params;
	full = malloc(n * sizeof(float));
	TT_REQUIRE(full, "out of memory");
	err = tk_model_forward(&f.m, f.ids, f.targets, 2, f.T, 1, 0, &l, &d);
	TT_REQUIRE(!err && !tk_model_backward(&f.m, &d), "%s", d.msg);
	memcpy(full, f.m.grads, n * sizeof(float));
	TT_REQUIRE(tk_model_backward(&f.m, &d) == TK_E_INVAL, "a second backward must fail");
	TT_CHECK(strstr(d.msg, "backward pass without a forward"), "message: %s", d.msg);

	TT_REQUIRE(!tk_model_zero_grad(&f.m, &d), "%s", d.msg);
	tk_model_forward(&f.m, f.ids, f.targets, 1, f.T, 0, 0, &la, &d);
	tk_model_forward(&f.m, f.ids + N, f.targets + N, 1, f.T, 0, 0, &lb, &d);
	TT_REQUIRE(la.count + lb.count == l.count, "counts");
	err = tk_model_forward(&f.m, f.ids, f.targets, 1, f.T, 1, (double)l.count, &la, &d);
	TT_REQUIRE(!err && !tk_model_backward(&f.m, &d), "%s", d.msg);
	err = tk_model_forward(&f.m, f.ids + N, f.targets + N, 1, f.T, 1, (double)l.count, &lb,
			       &d);
	TT_REQUIRE(!err && !tk_model_backward(&f.m, &d), "%s", d.msg);
	TT_CHECK(fabs((la.sum + lb.sum) / l.count - l.loss) <= 1e-6 * l.loss, "loss sums");
	for (i = 0; i < n; i++) {
		maxg = fmax(maxg, fabs(full[i]));
		worst = fmax(worst, fabs(full[i] - f.m.grads[i]));
	}
	TT_CHECK(worst <= 1e-5 * maxg, "accumulated gradients differ by %g (max %g)", worst,
		 maxg);
	free(full);
	fix_free(&f);
}

static int copy_file(const char *from, const char *to)
{
	struct tk_buf b = { 0 };
	FILE *fp;
	int ok;

	if (tk_read_file(from, &b, NULL))
		return -1;
	fp = fopen(to, "wb");
	ok = fp && fwrite(b.data, 1, b.len, fp) == b.len;
	if (fp && fclose(fp))
		ok = 0;
	tk_buf_free(&b);
	return ok ? 0 : -1;
}

/* Save, load again: the same parameters bit for bit, the same config. */
static void round_trip(const char *name)
{
	struct tk_diag d;
	struct fix f;
	struct tk_model m2;
	const char *keep = getenv("TK_MODEL_KEEP");
	char dir[4096], sub[256];
	int err, k;

	tk_diag_clear(&d);
	err = fix_load(&f, name, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	snprintf(sub, sizeof(sub), "%s-saved", name);
	snprintf(dir, sizeof(dir), "%s", path2(keep && *keep ? keep : tt_tmpdir(), sub));
	err = tk_model_save(&f.m, dir, 0, &d);
	TT_REQUIRE(!err, "save: %s: %s", d.path, d.msg);
	/* a second save without force is refused */
	err = tk_model_save(&f.m, dir, 0, &d);
	TT_CHECK(err == TK_E_EXISTS, "second save gave %d", err);
	TT_CHECK(strstr(d.path, "model.safetensors") && strstr(d.msg, "exists"), "%s: %s",
		 d.path, d.msg);
	err = tk_model_save(&f.m, dir, 1, &d);
	TT_REQUIRE(!err, "save with force: %s", d.msg);
	err = tk_model_load(&m2, dir, &be, &d);
	TT_REQUIRE(!err, "reload: %s: %s", d.path, d.msg);
	TT_CHECK(m2.n_params == f.m.n_params && m2.n_tensors == f.m.n_tensors, "layout");
	TT_CHECK(!memcmp(m2.params, f.m.params, f.m.n_params * sizeof(float)),
		 "parameters changed in the round trip");
	/* export then import is the identity on every tensor */
	for (k = 0; k < f.m.n_tensors; k++) {
		const struct tk_model_tensor *t = &f.m.tensors[k];
		float *buf = malloc(t->n * sizeof(float));
		TT_REQUIRE(buf, "out of memory");
		tk_model_export(&f.m, t, f.m.params, buf);
		memset(m2.params + t->off, 0, t->n * sizeof(float));
		tk_model_import(&m2, t, buf, m2.params);
		free(buf);
	}
	TT_CHECK(!memcmp(m2.params, f.m.params, f.m.n_params * sizeof(float)),
		 "export and import disagree");
	TT_CHECK(m2.cfg.arch == f.m.cfg.arch && m2.cfg.hidden == f.m.cfg.hidden &&
		 m2.cfg.n_kv_head == f.m.cfg.n_kv_head &&
		 m2.cfg.tie_embeddings == f.m.cfg.tie_embeddings &&
		 m2.cfg.rope_theta == f.m.cfg.rope_theta && m2.cfg.norm_eps == f.m.cfg.norm_eps &&
		 m2.cfg.attn_bias == f.m.cfg.attn_bias && m2.cfg.qk_norm == f.m.cfg.qk_norm &&
		 m2.cfg.head_dim == f.m.cfg.head_dim && m2.cfg.fused == f.m.cfg.fused &&
		 m2.cfg.rotary_dim == f.m.cfg.rotary_dim &&
		 m2.cfg.partial_rotary == f.m.cfg.partial_rotary &&
		 m2.cfg.sliding_window == f.m.cfg.sliding_window &&
		 !memcmp(m2.cfg.dropout, f.m.cfg.dropout, sizeof(m2.cfg.dropout)) &&
		 !memcmp(m2.cfg.no_rope, f.m.cfg.no_rope, sizeof(m2.cfg.no_rope)) &&
		 !memcmp(m2.cfg.layer_window, f.m.cfg.layer_window, sizeof(m2.cfg.layer_window)) &&
		 !memcmp(&m2.cfg.rope, &f.m.cfg.rope, sizeof(m2.cfg.rope)),
		 "config changed in the round trip");
	TT_CHECK(!strcmp(m2.cfg.torch_dtype, "float32"), "torch_dtype %s", m2.cfg.torch_dtype);
	/* the tied head is not saved, an untied one is */
	{
		tk_safetensors_t *st;
		TT_REQUIRE(!tk_safetensors_open(&st, dir, &d), "%s", d.msg);
		TT_CHECK(!tk_safetensors_find(st, "lm_head.weight") == !!f.m.cfg.tie_embeddings,
			 "lm_head.weight in a %s model", f.m.cfg.tie_embeddings ? "tied" : "untied");
		for (k = 0; k < (int)tk_safetensors_count(st); k++)
			TT_CHECK(tk_safetensors_at(st, k)->dtype == TK_DT_F32, "saved %s as %s",
				 tk_safetensors_at(st, k)->name, tk_dtype_name(tk_safetensors_at(st, k)->dtype));
		TT_CHECK(tk_safetensors_metadata(st, "format") && !strcmp(tk_safetensors_metadata(st, "format"), "pt"),
			 "metadata format");
		tk_safetensors_close(st);
	}
	tk_model_free(&m2);
	fix_free(&f);
}

static void test_round_trip_gpt2(void)
{
	round_trip("gpt2");
}

static void test_round_trip_llama(void)
{
	round_trip("llama");
}

static void test_round_trip_qwen2(void)
{
	round_trip("qwen2");
}

static void test_round_trip_qwen3(void)
{
	round_trip("qwen3");
	round_trip("smollm3");
	round_trip("gemma2");
	round_trip("gemma3");
}

/* each scaling's keys are written back as they were read */
static void test_round_trip_rope(void)
{
	round_trip("rope-llama3");
	round_trip("rope-linear");
	round_trip("rope-yarn");
	round_trip("rope-longrope");
	round_trip("rope-dynamic");
}

/* Phi-3: the fused tensors saved under their names, partial rotary and
 * LongRoPE's keys (original_max_position_embeddings at the top) kept */
static void test_round_trip_phi3(void)
{
	round_trip("phi3");
	round_trip("phi3-partial");
	round_trip("phi3-longrope");
}

/* sliding_window, use_sliding_window, max_window_layers, layer_types */
static void test_round_trip_swa(void)
{
	round_trip("swa-mistral");
	round_trip("swa-qwen2");
	round_trip("swa-phi3");
}

/* Writes dir/ with the fixture's config.json and a model.safetensors holding
 * the fixture's tensors, except that `drop` is left out and `reshape` gets
 * shape [1, n]. */
static int write_bad(const char *name, const char *dir, const char *drop, const char *reshape,
		     struct tk_diag *d)
{
	tk_safetensors_t *st;
	tk_safetensors_writer_t *w;
	size_t i;
	int err;

	mkdir(dir, 0777);
	if (copy_file(path2(path2(fixdir(), name), "config.json"), path2(dir, "config.json")))
		return TK_E_IO;
	err = tk_safetensors_open(&st, path2(fixdir(), name), d);
	if (err)
		return err;
	err = tk_safetensors_writer_new(&w);
	for (i = 0; !err && i < tk_safetensors_count(st); i++) {
		const struct tk_tensor_info *t = tk_safetensors_at(st, i);
		int64_t sh[2] = { 1, (int64_t)t->nelem };
		if (drop && !strcmp(t->name, drop))
			continue;
		if (reshape && !strcmp(t->name, reshape))
			err = tk_safetensors_writer_add(w, t->name, t->dtype, 2, sh, t->data, d);
		else
			err = tk_safetensors_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, d);
	}
	if (!err)
		err = tk_safetensors_writer_commit(w, path2(dir, "model.safetensors"), 1, d);
	else
		tk_safetensors_writer_free(w);
	tk_safetensors_close(st);
	return err;
}

static void test_missing_tensor(void)
{
	struct tk_diag d;
	struct tk_model m;
	char dir[4096];
	const char *nm = "model.layers.1.self_attn.k_proj.weight";
	int err;

	tk_diag_clear(&d);
	snprintf(dir, sizeof(dir), "%s/missing", tt_tmpdir());
	TT_REQUIRE(!write_bad("llama", dir, nm, NULL, &d), "%s", d.msg);
	err = tk_model_load(&m, dir, &be, &d);
	TT_CHECK(err == TK_E_FORMAT, "err %d", err);
	TT_CHECK(!strcmp(d.msg, "missing tensor model.layers.1.self_attn.k_proj.weight"),
		 "message: %s", d.msg);
	TT_CHECK(m.params == NULL && m.n_tensors == 0, "model left half made");
	tk_model_free(&m);

	/* a tied model without lm_head.weight is fine (the qwen2 fixture has none);
	 * an untied one without it is not */
	TT_REQUIRE(!write_bad("llama", dir, "lm_head.weight", NULL, &d), "%s", d.msg);
	err = tk_model_load(&m, dir, &be, &d);
	TT_CHECK(err == TK_E_FORMAT && !strcmp(d.msg, "missing tensor lm_head.weight"),
		 "err %d: %s", err, d.msg);
	tk_model_free(&m);
}

static void test_wrong_shape(void)
{
	struct tk_diag d;
	struct tk_model m;
	char dir[4096];
	int err;

	tk_diag_clear(&d);
	snprintf(dir, sizeof(dir), "%s/shape", tt_tmpdir());
	TT_REQUIRE(!write_bad("gpt2", dir, NULL, "transformer.h.0.attn.c_attn.weight", &d), "%s",
		   d.msg);
	err = tk_model_load(&m, dir, &be, &d);
	TT_CHECK(err == TK_E_FORMAT, "err %d", err);
	TT_CHECK(!strcmp(d.msg, "tensor transformer.h.0.attn.c_attn.weight has shape "
				"[1, 6912], expected [48, 144]"), "message: %s", d.msg);
	TT_CHECK(strstr(d.path, "model.safetensors") != NULL, "path: %s", d.path);
	tk_model_free(&m);
}

/* GPT-2 checkpoints with attn.bias buffers and without the transformer.
 * prefix (as the original gpt2 files) load. */
/* A tensor stored as integers is refused, naming it and the dtypes read. */
static void test_wrong_dtype(void)
{
	struct tk_diag d;
	struct tk_model m;
	tk_safetensors_t *st;
	tk_safetensors_writer_t *w;
	char dir[4096];
	const char *nm = "model.layers.0.mlp.up_proj.weight";
	size_t i;
	int err;

	tk_diag_clear(&d);
	snprintf(dir, sizeof(dir), "%s/dtype", tt_tmpdir());
	mkdir(dir, 0777);
	TT_REQUIRE(!copy_file(path2(path2(fixdir(), "llama"), "config.json"),
			      path2(dir, "config.json")), "copy");
	TT_REQUIRE(!tk_safetensors_open(&st, path2(fixdir(), "llama"), &d), "%s", d.msg);
	TT_REQUIRE(!tk_safetensors_writer_new(&w), "writer");
	for (i = 0; i < tk_safetensors_count(st); i++) {
		const struct tk_tensor_info *t = tk_safetensors_at(st, i);
		TT_REQUIRE(t->dtype == TK_DT_BF16, "the llama fixture is BF16");
		err = tk_safetensors_writer_add(w, t->name, strcmp(t->name, nm) ? t->dtype : TK_DT_I16,
				       t->ndim, t->shape, t->data, &d);
		TT_REQUIRE(!err, "%s", d.msg);
	}
	err = tk_safetensors_writer_commit(w, path2(dir, "model.safetensors"), 1, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	tk_safetensors_close(st);
	err = tk_model_load(&m, dir, &be, &d);
	TT_CHECK(err == TK_E_UNSUPPORTED, "err %d", err);
	TT_CHECK(!strcmp(d.msg, "tensor model.layers.0.mlp.up_proj.weight has dtype I16, "
				"expected F32, F16 or BF16"), "message: %s", d.msg);
	TT_CHECK(m.params == NULL, "model left half made");
	tk_model_free(&m);
}

/* A checkpoint in two shards with model.safetensors.index.json loads to
 * the same parameters. */
static void test_sharded(void)
{
	struct tk_diag d;
	struct tk_model m, ref;
	tk_safetensors_t *st;
	tk_safetensors_writer_t *w[2];
	char dir[4096];
	struct tk_buf idx = { 0 };
	FILE *fp;
	size_t i, n;
	int err, k;

	tk_diag_clear(&d);
	snprintf(dir, sizeof(dir), "%s/sharded", tt_tmpdir());
	mkdir(dir, 0777);
	TT_REQUIRE(!copy_file(path2(path2(fixdir(), "qwen2"), "config.json"),
			      path2(dir, "config.json")), "copy");
	TT_REQUIRE(!tk_safetensors_open(&st, path2(fixdir(), "qwen2"), &d), "%s", d.msg);
	TT_REQUIRE(!tk_safetensors_writer_new(&w[0]) && !tk_safetensors_writer_new(&w[1]), "writer");
	n = tk_safetensors_count(st);
	{
		const char *head = "{\"metadata\": {}, \"weight_map\": {";
		tk_buf_append(&idx, head, strlen(head));
	}
	for (i = 0; i < n; i++) {
		const struct tk_tensor_info *t = tk_safetensors_at(st, i);
		char line[512];
		k = i >= n / 2;
		err = tk_safetensors_writer_add(w[k], t->name, t->dtype, t->ndim, t->shape, t->data, &d);
		TT_REQUIRE(!err, "%s", d.msg);
		snprintf(line, sizeof(line), "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
			 i ? ", " : "", t->name, k + 1);
		tk_buf_append(&idx, line, strlen(line));
	}
	tk_buf_append(&idx, "}}\n", 3);
	for (k = 0; k < 2; k++) {
		char fn[64];
		snprintf(fn, sizeof(fn), "model-0000%d-of-00002.safetensors", k + 1);
		err = tk_safetensors_writer_commit(w[k], path2(dir, fn), 1, &d);
		TT_REQUIRE(!err, "%s", d.msg);
	}
	tk_safetensors_close(st);
	fp = fopen(path2(dir, "model.safetensors.index.json"), "w");
	TT_REQUIRE(fp && fwrite(idx.data, 1, idx.len, fp) == idx.len && !fclose(fp), "index");
	tk_buf_free(&idx);
	err = tk_model_load(&m, dir, &be, &d);
	TT_REQUIRE(!err, "%s: %s", d.path, d.msg);
	err = tk_model_load(&ref, path2(fixdir(), "qwen2"), &be, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	TT_CHECK(!memcmp(m.params, ref.params, m.n_params * sizeof(float)), "params differ");
	tk_model_free(&m);
	tk_model_free(&ref);
}

static void test_gpt2_variants(void)
{
	struct tk_diag d;
	struct tk_model m, ref;
	tk_safetensors_t *st;
	tk_safetensors_writer_t *w;
	char dir[4096];
	float *mask = NULL;
	int64_t msh[4] = { 1, 1, 64, 64 };
	size_t i;
	int err;

	tk_diag_clear(&d);
	snprintf(dir, sizeof(dir), "%s/gpt2-bare", tt_tmpdir());
	mkdir(dir, 0777);
	TT_REQUIRE(!copy_file(path2(path2(fixdir(), "gpt2"), "config.json"),
			      path2(dir, "config.json")), "copy");
	TT_REQUIRE(!tk_safetensors_open(&st, path2(fixdir(), "gpt2"), &d), "%s", d.msg);
	TT_REQUIRE(!tk_safetensors_writer_new(&w), "writer");
	mask = calloc(64 * 64, sizeof(float));
	TT_REQUIRE(mask, "out of memory");
	for (i = 0; i < tk_safetensors_count(st); i++) {
		const struct tk_tensor_info *t = tk_safetensors_at(st, i);
		const char *nm = t->name;
		if (!strncmp(nm, "transformer.", 12))
			nm += 12;
		TT_REQUIRE(!tk_safetensors_writer_add(w, nm, t->dtype, t->ndim, t->shape, t->data, &d), "%s",
			   d.msg);
	}
	TT_REQUIRE(!tk_safetensors_writer_add(w, "h.0.attn.bias", TK_DT_F32, 4, msh, mask, &d), "%s",
		   d.msg);
	TT_REQUIRE(!tk_safetensors_writer_add(w, "h.1.attn.bias", TK_DT_F32, 4, msh, mask, &d), "%s",
		   d.msg);
	err = tk_safetensors_writer_commit(w, path2(dir, "model.safetensors"), 1, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	tk_safetensors_close(st);
	err = tk_model_load(&m, dir, &be, &d);
	TT_REQUIRE(!err, "%s: %s", d.path, d.msg);
	err = tk_model_load(&ref, path2(fixdir(), "gpt2"), &be, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	TT_CHECK(!memcmp(m.params, ref.params, m.n_params * sizeof(float)), "params differ");
	TT_CHECK(tk_model_find(&m, "h.0.attn.c_attn.weight") != NULL, "names keep no prefix");
	tk_model_free(&m);
	tk_model_free(&ref);
	free(mask);
}

/* The last forward must exist before logits and backward; bad ids. */
static void test_bad_calls(void)
{
	struct tk_diag d;
	struct fix f;
	struct tk_model_loss l;
	uint32_t ids[3] = { 1, 97, 2 };
	int32_t tg[3] = { 1, 2, 97 };
	float out[97];
	int err;

	tk_diag_clear(&d);
	err = fix_load(&f, "gpt2", &d);
	TT_REQUIRE(!err, "%s", d.msg);
	TT_CHECK(tk_model_logits(&f.m, 0, 1, out, &d) == TK_E_INVAL, "logits before forward");
	TT_CHECK(tk_model_backward(&f.m, &d) == TK_E_INVAL, "backward before forward");
	err = tk_model_forward(&f.m, ids, NULL, 1, 3, 0, 0, NULL, &d);
	TT_CHECK(err == TK_E_INVAL && !strcmp(d.msg, "token id 97 (sequence 0, position 1) is "
				 "not below the model's vocab_size 97"), "%d: %s", err, d.msg);
	ids[1] = 5;
	err = tk_model_forward(&f.m, ids, tg, 1, 3, 0, 0, &l, &d);
	TT_CHECK(err == TK_E_INVAL && strstr(d.msg, "label 97"), "%d: %s", err, d.msg);
	err = tk_model_forward(&f.m, f.ids, NULL, 1, 65, 0, 0, NULL, &d);
	TT_CHECK(err == TK_E_INVAL && strstr(d.msg, "longer than the model's 64 positions"),
		 "%d: %s", err, d.msg);
	/* no counted target: NaN loss as transformers, zero gradient */
	tg[0] = tg[1] = tg[2] = -100;
	err = tk_model_forward(&f.m, ids, tg, 1, 3, 1, 0, &l, &d);
	TT_CHECK(!err && isnan(l.loss) && l.count == 0, "%d %g %ld", err, l.loss, l.count);
	/* inference without targets */
	err = tk_model_forward(&f.m, ids, NULL, 1, 3, 0, 0, NULL, &d);
	TT_CHECK(!err, "%s", d.msg);
	TT_CHECK(!tk_model_logits(&f.m, 2, 1, out, &d), "%s", d.msg);
	TT_CHECK(tk_model_logits(&f.m, 2, 2, out, &d) == TK_E_INVAL, "rows past the batch");
	fix_free(&f);
}

/* Initialisation from a config: transformers' scheme, seeded. */
static void test_init(void)
{
	struct tk_diag d;
	struct tk_model_config c;
	struct tk_model a, b;
	int err, k;

	tk_diag_clear(&d);
	err = tk_config_load(&c, path2(fixdir(), "gpt2"), &d);
	TT_REQUIRE(!err, "%s", d.msg);
	c.initializer_range = 0.02f;
	err = tk_model_init(&a, &c, 7, &be, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	for (k = 0; k < a.n_tensors; k++) {
		const struct tk_model_tensor *t = &a.tensors[k];
		const float *p = a.params + t->off;
		double s = 0, s2 = 0, want;
		size_t i;

		for (i = 0; i < t->n; i++) {
			s += p[i];
			s2 += (double)p[i] * p[i];
		}
		if (t->ndim == 1) {
			want = strstr(t->name, ".bias") ? 0.0 : 1.0;
			TT_CHECK(s == want * t->n && s2 == want * t->n, "%s not all %g", t->name,
				 want);
			continue;
		}
		want = 0.02;
		if (strstr(t->name, "c_proj.weight"))
			want = 0.02 / sqrt(2.0 * c.n_layer);
		s2 = sqrt(s2 / t->n - (s / t->n) * (s / t->n));
		/* within 4 standard errors (sigma / sqrt(2n)) of sigma */
		TT_CHECK(fabs(s2 - want) < 4 * want / sqrt(2.0 * t->n), "%s: std %g, expected %g", t->name, s2,
			 want);
		TT_CHECK(fabs(s / t->n) < 4 * want / sqrt((double)t->n), "%s: mean %g", t->name,
			 s / t->n);
	}
	err = tk_model_init(&b, &c, 7, &be, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	TT_CHECK(!memcmp(a.params, b.params, a.n_params * sizeof(float)), "same seed differs");
	tk_model_free(&b);
	err = tk_model_init(&b, &c, 8, &be, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	TT_CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)), "seeds 7 and 8 agree");
	tk_model_free(&b);
	tk_model_free(&a);

	/* Llama family: the padding row of the embedding is zero */
	err = tk_config_load(&c, path2(fixdir(), "llama"), &d);
	TT_REQUIRE(!err, "%s", d.msg);
	c.pad_id = 5;
	err = tk_model_init(&a, &c, 7, &be, &d);
	TT_REQUIRE(!err, "%s", d.msg);
	{
		const struct tk_model_tensor *e = tk_model_find(&a, "model.embed_tokens.weight");
		const float *row = a.params + e->off;
		int nz5 = 0, nz4 = 0;
		for (k = 0; k < c.hidden; k++) {
			nz5 += row[5 * c.hidden + k] != 0;
			nz4 += row[4 * c.hidden + k] != 0;
		}
		TT_CHECK(nz5 == 0 && nz4 == c.hidden, "padding row %d nonzero, next %d", nz5, nz4);
	}
	tk_model_free(&a);
}

/* With TK_MODEL_KEEP: a freshly initialised model of each configuration
 * and its logits, for check-model.py to compare with transformers. */
static void test_keep_init(void)
{
	const char *keep = getenv("TK_MODEL_KEEP");
	struct tk_diag d;
	int i;

	if (!keep || !*keep)
		TT_SKIP("TK_MODEL_KEEP not set (make parity sets it)");
	tk_diag_clear(&d);
	for (i = 0; i < N_MODELS; i++) {
		struct tk_model_config c;
		struct fix f;
		struct tk_model m;
		tk_safetensors_writer_t *w;
		float *lg;
		char sub[256];
		int64_t sh[3];
		int err;

		err = fix_load(&f, NAMES[i], &d);
		TT_REQUIRE(!err, "%s", d.msg);
		c = f.m.cfg;
		err = tk_model_init(&m, &c, 42, &be, &d);
		TT_REQUIRE(!err, "%s", d.msg);
		snprintf(sub, sizeof(sub), "%s-init", NAMES[i]);
		err = tk_model_save(&m, path2(keep, sub), 1, &d);
		TT_REQUIRE(!err, "%s", d.msg);
		err = tk_model_forward(&m, f.ids, NULL, f.B, f.T, 0, 0, NULL, &d);
		TT_REQUIRE(!err, "%s", d.msg);
		lg = malloc((size_t)f.B * f.T * c.vocab_size * sizeof(float));
		TT_REQUIRE(lg && !tk_model_logits(&m, 0, f.B * f.T, lg, &d), "logits");
		sh[0] = f.B;
		sh[1] = f.T;
		sh[2] = c.vocab_size;
		snprintf(sub, sizeof(sub), "%s-init.logits.safetensors", NAMES[i]);
		TT_REQUIRE(!tk_safetensors_writer_new(&w), "writer");
		err = tk_safetensors_writer_add(w, "logits", TK_DT_F32, 3, sh, lg, &d);
		if (!err)
			err = tk_safetensors_writer_commit(w, path2(keep, sub), 1, &d);
		else
			tk_safetensors_writer_free(w);
		TT_CHECK(!err, "%s", d.msg);
		free(lg);
		tk_model_free(&m);
		fix_free(&f);
	}
}

int main(void)
{
	struct tk_diag d;

	if (tk_backend_cpu_init(&be, 0, &d)) {
		printf("FAIL backend: %s\n", d.msg);
		return 1;
	}
	TT_RUN(test_parity_gpt2);
	TT_RUN(test_parity_llama);
	TT_RUN(test_parity_qwen2);
	TT_RUN(test_parity_qwen3);
	TT_RUN(test_parity_smollm3);
	TT_RUN(test_parity_gemma2);
	TT_RUN(test_parity_gemma3);
	TT_RUN(test_parity_phi3);
	TT_RUN(test_parity_swa);
	TT_RUN(test_parity_rope);
	TT_RUN(test_chunked_rows);
	TT_RUN(test_grad_accumulation);
	TT_RUN(test_checkpointing);
	TT_RUN(test_round_trip_gpt2);
	TT_RUN(test_round_trip_llama);
	TT_RUN(test_round_trip_qwen2);
	TT_RUN(test_round_trip_qwen3);
	TT_RUN(test_round_trip_phi3);
	TT_RUN(test_round_trip_swa);
	TT_RUN(test_round_trip_rope);
	TT_RUN(test_missing_tensor);
	TT_RUN(test_wrong_shape);
	TT_RUN(test_wrong_dtype);
	TT_RUN(test_sharded);
	TT_RUN(test_gpt2_variants);
	TT_RUN(test_bad_calls);
	TT_RUN(test_init);
	TT_RUN(test_keep_init);
	tk_backend_free(&be);
	return tt_done();
}

/* test-cuda-model.c - the whole model on the CUDA backend against the CPU:
 * the fixture models (GPT-2, Llama, Qwen2: LayerNorm and RMSNorm, GELU and
 * SwiGLU, learned positions and RoPE, GQA, biases) loaded on each backend,
 * one forward with targets (some ignored) and a backward through
 * tk_model_forward / tk_model_backward, then the loss, the logits and
 * every parameter's gradient compared.  SKIP without a GPU.
 */
#include "gpu.h"
#include "model.h"

/* Tolerances: the loss relative; logits absolute; each gradient tensor
 * relative to its largest CPU magnitude (as tests/unit/test-model.c holds
 * the CPU to transformers: sums in other orders through a few layers). */
#define TOL_LOSS 1e-5
#define TOL_LOGITS 2e-5
#define TOL_GRAD 1e-4

static const char *NAMES[] = { "gpt2", "llama", "qwen2" };

static void one_model(const char *name)
{
	struct tk_model mc, mg;
	struct tk_diag d;
	char dir[4096];
	int B = 2, T = 11, N = B * T;
	snprintf(dir, sizeof(dir), "%s", tt_fixture("models"));
	snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/%s", name);
	memset(&mc, 0, sizeof(mc));
	memset(&mg, 0, sizeof(mg));
	TT_REQUIRE(!tk_model_load(&mc, dir, &cpu, &d), "%s: %s", name, d.msg);
	if (tk_model_load(&mg, dir, &gpu, &d)) {
		tk_model_free(&mc);
		TT_REQUIRE(0, "%s on cuda: %s (%s)", name, d.msg, tk_backend_cuda_last_error(&gpu));
	}
	uint32_t ids[2 * 11];
	int32_t tg[2 * 11];
	for (int i = 0; i < N; i++) {
		ids[i] = rng_u32() % (uint32_t)mc.cfg.vocab_size;
		tg[i] = i % 4 == 1 ? -100 : (int32_t)(rng_u32() % (uint32_t)mc.cfg.vocab_size);
	}
	struct tk_model_loss lc, lg;
	int e1 = tk_model_forward(&mc, ids, tg, B, T, 1, 0, &lc, &d);
	int e2 = e1 ? e1 : tk_model_forward(&mg, ids, tg, B, T, 1, 0, &lg, &d);
	if (!e2)
		e2 = tk_model_backward(&mc, &d);
	if (!e2)
		e2 = tk_model_backward(&mg, &d);
	TT_CHECK(!e2, "%s: %s (%s)", name, d.msg, tk_backend_cuda_last_error(&gpu));
	if (!e2) {
		TT_CHECK(lc.count == lg.count, "%s: count %ld vs %ld", name, lg.count, lc.count);
		TT_CHECK(fabs(lc.sum - lg.sum) <= TOL_LOSS * fabs(lc.sum),
			 "%s: loss sum cuda %.9g cpu %.9g", name, lg.sum, lc.sum);
		size_t nl = (size_t)N * mc.cfg.vocab_size;
		float *xc = malloc(nl * sizeof(float)), *xg = malloc(nl * sizeof(float));
		if (xc && xg && !tk_model_logits(&mc, 0, N, xc, &d) &&
		    !tk_model_logits(&mg, 0, N, xg, &d))
			check_close("logits", xg, xc, nl, TOL_LOGITS, 0);
		else
			TT_CHECK(0, "%s: logits: %s", name, d.msg);
		free(xc);
		free(xg);
		for (int t = 0; t < mc.n_tensors && !tt_failed_now; t++) {
			const struct tk_model_tensor *tc = &mc.tensors[t];
			if (tc->q || !tc->trainable)
				continue;
			const float *gc = mc.grads + tc->off, *gg = mg.grads + mg.tensors[t].off;
			double mx = 0;
			for (size_t i = 0; i < tc->n; i++)
				mx = fabs(gc[i]) > mx ? fabs(gc[i]) : mx;
			char what[200];
			snprintf(what, sizeof(what), "%s: grad %s (max |g| %.3g)", name, tc->name, mx);
			check_close(what, gg, gc, tc->n, TOL_GRAD * mx + 1e-12, 0);
		}
	}
	tk_model_free(&mc);
	tk_model_free(&mg);
}

static void test_models(void)
{
	NEED_GPU();
	rng_seed(42);
	for (size_t i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]) && !tt_failed_now; i++)
		one_model(NAMES[i]);
}

int main(void)
{
	gpu_setup();
	TT_RUN(test_models);
	gpu_teardown();
	return tt_done();
}

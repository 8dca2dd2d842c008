/* test-cuda-model.c - the whole model on the CUDA backend against the CPU:
 * the fixture models (GPT-2, Llama, Qwen2: LayerNorm and RMSNorm, GELU and
 * SwiGLU, learned positions and RoPE, GQA, biases) loaded on each backend,
 * one forward with targets (some ignored) and a backward through
 * tk_model_forward / tk_model_backward, then the loss, the logits and
 * every parameter's gradient compared.  Also QLoRA: the quantized fixture
 * models (tests/fixtures/qlora: FP4, NF4 with double quantization) with
 * their adapters, whose frozen 4-bit weights the CUDA backend dequantizes
 * on the GPU (tk_dequant_rows), the adapters' gradients compared as well.
 * DoRA has no CUDA path yet: loading a DoRA adapter onto a CUDA model is
 * refused (TK_E_UNSUPPORTED) rather than computed wrongly.
 * SKIP without a GPU.
 */
#include "gpu.h"
#include "compute/qweight-dev.h"
#include "model/model.h"
#include "model/peft.h"

/* Tolerances: the loss relative; logits absolute; each gradient tensor
 * relative to its largest CPU magnitude (as tests/unit/test-model.c holds
 * the CPU to transformers: sums in other orders through a few layers). */
#define TOL_LOSS 1e-5
#define TOL_LOGITS 2e-5
#define TOL_GRAD 1e-4

static const char *NAMES[] = { "models/gpt2", "models/llama", "models/qwen2" };
static const char *QNAMES[][2] = {
	{ "qlora/gpt2-fp4", "qlora/gpt2-fp4-adapter" },
	{ "qlora/llama-nf4-dq", "qlora/llama-nf4-dq-adapter" },
};

/* name: a directory under tests/fixtures; adapter: a peft adapter under
 * tests/fixtures to load onto both models, or NULL. */
static void one_model(const char *name, const char *adapter)
{
	struct tk_model mc, mg;
	struct tk_diag d;
	char dir[4096], adir[4096] = "";
	int B = 2, T = 11, N = B * T;
	snprintf(dir, sizeof(dir), "%s", tt_fixture(name));
	if (adapter)
		snprintf(adir, sizeof(adir), "%s", tt_fixture(adapter));
	memset(&mc, 0, sizeof(mc));
	memset(&mg, 0, sizeof(mg));
	TT_REQUIRE(!tk_model_load(&mc, dir, &cpu, &d), "%s: %s", name, d.msg);
	if (tk_model_load(&mg, dir, &gpu, &d)) {
		tk_model_free(&mc);
		TT_REQUIRE(0, "%s on cuda: %s (%s)", name, d.msg, tk_backend_cuda_last_error(&gpu));
	}
	for (int t = 0; t < mg.n_tensors; t++)
		TT_CHECK(!mg.tensors[t].q || tk_qweight_backend(mg.tensors[t].q) == &gpu,
			 "%s: quantized %s not moved to the device", name, mg.tensors[t].name);
	if (adapter && (tk_peft_load(&mc, adir, &d) || tk_peft_load(&mg, adir, &d))) {
		tk_model_free(&mc);
		tk_model_free(&mg);
		TT_REQUIRE(0, "%s: adapter %s: %s", name, adapter, d.msg);
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
		if (mc.lora && mg.lora && mc.lora->grads && mg.lora->grads) {
			const float *gc = mc.lora->grads, *gg = mg.lora->grads;
			size_t n = mc.lora->n_params;
			double mx = 0;
			for (size_t i = 0; i < n; i++)
				mx = fabs(gc[i]) > mx ? fabs(gc[i]) : mx;
			char what[200];
			snprintf(what, sizeof(what), "%s: adapter grads (max |g| %.3g)", name, mx);
			TT_CHECK(mx > 0, "%s: adapter gradients all zero", name);
			check_close(what, gg, gc, n, TOL_GRAD * mx + 1e-12, 0);
		} else if (adapter) {
			TT_CHECK(0, "%s: no adapter gradients", name);
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
		one_model(NAMES[i], NULL);
}

static void test_qlora(void)
{
	NEED_GPU();
	rng_seed(43);
	for (size_t i = 0; i < sizeof(QNAMES) / sizeof(QNAMES[0]) && !tt_failed_now; i++)
		one_model(QNAMES[i][0], QNAMES[i][1]);
}

/* A DoRA adapter on the CUDA backend: refused, the model left as it was. */
static void test_dora_refused(void)
{
	struct tk_model mg;
	struct tk_diag d;
	int rc;

	NEED_GPU();
	TT_REQUIRE(!tk_model_load(&mg, tt_fixture("models/gpt2"), &gpu, &d), "%s", d.msg);
	rc = tk_peft_load(&mg, tt_fixture("dora/gpt2"), &d);
	TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "CPU backend only"), "%d: %s", rc,
		 d.msg);
	TT_CHECK(!mg.lora, "an adapter was left attached");
	tk_model_free(&mg);
}

int main(void)
{
	gpu_setup();
	TT_RUN(test_models);
	TT_RUN(test_qlora);
	TT_RUN(test_dora_refused);
	gpu_teardown();
	return tt_done();
}

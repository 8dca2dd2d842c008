/* qlora-mem.c - peak memory and time of one QLoRA training step on a
 * model too large for fp32 memory: a random Llama-2-7B-shaped model
 * (tk_model_init_quantized: NF4 + double quantization, made without ever
 * holding it in fp32), LoRA r=16 alpha=32 on all seven projections,
 * gradient checkpointing, batch 1 x seq 256, forward + backward + AdamW on
 * the adapters.
 *
 *	make build/bench-qlora-mem && build/bench-qlora-mem [7b|1b|tiny] [SEQ] [THREADS]
 *
 * Prints the peak RSS (getrusage) after loading and after the step, the
 * bytes of the quantized weights, and the step's time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "model/model.h"

static const char *const configs[][2] = {
	{ "7b", "{\"model_type\": \"llama\", \"vocab_size\": 32000, \"hidden_size\": 4096, "
		"\"intermediate_size\": 11008, \"num_hidden_layers\": 32, "
		"\"num_attention_heads\": 32, \"num_key_value_heads\": 32, "
		"\"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-5, "
		"\"tie_word_embeddings\": false}" },
	{ "1b", "{\"model_type\": \"llama\", \"vocab_size\": 32000, \"hidden_size\": 2048, "
		"\"intermediate_size\": 5632, \"num_hidden_layers\": 22, "
		"\"num_attention_heads\": 32, \"num_key_value_heads\": 4, "
		"\"max_position_embeddings\": 2048, \"rms_norm_eps\": 1e-5, "
		"\"tie_word_embeddings\": false}" },
	{ "tiny", "{\"model_type\": \"llama\", \"vocab_size\": 512, \"hidden_size\": 128, "
		  "\"intermediate_size\": 256, \"num_hidden_layers\": 2, "
		  "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
		  "\"max_position_embeddings\": 512, \"tie_word_embeddings\": false}" },
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_gib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1048576.0;
}

static int fail(const char *what, const struct tk_diag *d)
{
	fprintf(stderr, "bench-qlora-mem: %s: %s\n", what, d->msg);
	return 1;
}

int main(int argc, char **argv)
{
	const char *which = argc > 1 ? argv[1] : "7b", *json = NULL;
	int T = argc > 2 ? atoi(argv[2]) : 256, threads = argc > 3 ? atoi(argv[3]) : 0;
	struct tk_model_config c;
	struct tk_backend be;
	struct tk_model m;
	struct tk_lora_config lc;
	struct tk_model_loss loss;
	struct tk_diag d;
	const struct tk_param *tp;
	int ntp;
	static const char *const seven[] = { "q_proj", "k_proj", "v_proj", "o_proj",
					     "gate_proj", "up_proj", "down_proj" };

	for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++)
		if (!strcmp(configs[i][0], which))
			json = configs[i][1];
	if (!json || T < 2) {
		fprintf(stderr, "usage: bench-qlora-mem [7b|1b|tiny] [SEQ] [THREADS]\n");
		return 2;
	}
	if (tk_config_parse(&c, json, which, &d))
		return fail("config", &d);
	if (tk_backend_cpu_init(&be, threads, &d))
		return fail("backend", &d);
	double t0 = now();
	if (tk_model_init_quantized(&m, &c, TK_Q4_NF4, 1, 1, &be, &d))
		return fail("init", &d);
	size_t qbytes = 0;
	for (int i = 0; i < m.n_tensors; i++)
		if (m.tensors[i].q)
			qbytes += tk_qweight_bytes(m.tensors[i].q);
	printf("model %s: %llu parameters, NF4+double-quant weights %.2f GiB, fp32 rest %.2f GiB, "
	       "made in %.1f s, peak RSS %.2f GiB\n", which,
	       (unsigned long long)tk_model_count_params(&m), qbytes / 1073741824.0,
	       m.n_params * 4.0 / 1073741824.0, now() - t0, peak_gib());
	tk_lora_config_init(&lc);
	lc.r = 16;
	lc.alpha = 32;
	for (int i = 0; i < 7; i++)
		snprintf(lc.targets[i], TK_LORA_NAME, "%s", seven[i]);
	lc.n_targets = 7;
	if (tk_lora_attach(&m, &lc, 1, &d))
		return fail("lora", &d);
	tk_model_set_checkpointing(&m, 1);
	if (tk_model_trainable(&m, &tp, &ntp, &d))
		return fail("trainable", &d);
	size_t nt = 0;
	for (int i = 0; i < ntp; i++)
		nt += tp[i].n;
	float *mo = calloc(nt, sizeof(float)), *vo = calloc(nt, sizeof(float));
	uint32_t *ids = malloc((size_t)T * sizeof(*ids));
	int32_t *lab = malloc((size_t)T * sizeof(*lab)), *tg = malloc((size_t)T * sizeof(*tg));
	if (!mo || !vo || !ids || !lab || !tg) {
		fprintf(stderr, "bench-qlora-mem: out of memory\n");
		return 1;
	}
	for (int i = 0; i < T; i++)
		ids[i] = (uint32_t)(i * 7919 % c.vocab_size), lab[i] = (int32_t)ids[i];
	tk_model_shift_labels(lab, 1, T, tg);
	for (int step = 0; step < 2; step++) { /* the second step is timed */
		double t1 = now();
		if (tk_model_zero_grad(&m, &d) ||
		    tk_model_forward(&m, ids, tg, 1, T, 1, 0, &loss, &d) ||
		    tk_model_backward(&m, &d))
			return fail("step", &d);
		size_t off = 0;
		for (int i = 0; i < ntp; i++) {
			tk_adamw(&be, tp[i].p, tp[i].g, mo + off, vo + off, tp[i].n, 2e-4, 0.9, 0.999,
				 1e-8, 0.0, step + 1);
			off += tp[i].n;
		}
		printf("step %d: loss %.4f, %.1f s (%.1f tokens/s), trainable %zu, peak RSS %.2f GiB\n",
		       step + 1, loss.loss, now() - t1, T / (now() - t1), nt, peak_gib());
	}
	free(mo);
	free(vo);
	free(ids);
	free(lab);
	free(tg);
	tk_model_free(&m);
	tk_backend_free(&be);
	return 0;
}

/* test-train.c - the training loop against transformers' Trainer.
 *
 * tests/fixtures/train/ was made by tests/parity/gen-train-fixture.py: a
 * tiny GPT-2, tk-pack blocks, the TrainingArguments (train-args.json) and
 * what Trainer.train() did with them (expected/: the final weights and the
 * log history).  tk trains the same model on the same blocks in the same
 * order and must end with the same weights and log the same values.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/afile.h"
#include "compute/backend.h"
#include "formats/config.h"
#include "model/memplan.h"
#include "model/model.h"
#include "formats/safetensors.h"
#include "train/schedule.h"
#include "train/train.h"
#include "train-args.h"
#include "tt.h"

static struct tk_backend be;
static char tmpdir[512];

static const char *tmp_path(const char *name)
{
	static char buf[4][1024];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
	return buf[k];
}

/* The options of train-args.json, as tk-train --config would set them. */
static int fixture_opts(struct tk_train_opts *o, cJSON **hold)
{
	return tt_train_args(o, "train/train-args.json", &be, hold);
}

/* Largest |a - b| / max|b| over the tensors of two safetensors files.
 * One slice is left out and checked apart (*kbias: its largest |a - b|):
 * GPT-2's key bias (the middle third of attn.c_attn.bias).  Its gradient is
 * zero in exact arithmetic (softmax does not change when the same number
 * is added to every score of a row), so both sides update it from rounding
 * noise alone, which AdamW scales up to steps of a few 1e-6. */
static double compare_weights(const char *got, const char *want, char *worst, size_t wsize,
			      int *n_tensors, double *kbias)
{
	tk_safetensors_t *a, *b;
	struct tk_diag d;
	if (tk_safetensors_open(&a, got, &d))
		return INFINITY;
	if (tk_safetensors_open(&b, want, &d)) {
		tk_safetensors_close(a);
		return INFINITY;
	}
	double worst_err = 0;
	*n_tensors = 0;
	for (size_t i = 0; i < tk_safetensors_count(b); i++) {
		const struct tk_tensor_info *tb = tk_safetensors_at(b, i), *ta = tk_safetensors_find(a, tb->name);
		if (!ta || ta->nelem != tb->nelem) {
			snprintf(worst, wsize, "%s missing or resized", tb->name);
			worst_err = INFINITY;
			break;
		}
		float *x = malloc(ta->nelem * sizeof(float)), *y = malloc(tb->nelem * sizeof(float));
		tk_safetensors_to_f32(ta, x, &d);
		tk_safetensors_to_f32(tb, y, &d);
		double diff = 0, scale = 0;
		int is_kb = strstr(tb->name, "attn.c_attn.bias") != NULL;
		uint64_t third = tb->nelem / 3;
		for (uint64_t k = 0; k < tb->nelem; k++) {
			if (is_kb && k >= third && k < 2 * third) {
				*kbias = fmax(*kbias, fabs((double)x[k] - y[k]));
				continue;
			}
			diff = fmax(diff, fabs((double)x[k] - y[k]));
			scale = fmax(scale, fabs((double)y[k]));
		}
		double e = diff / (scale > 0 ? scale : 1);
		if (e > worst_err) {
			worst_err = e;
			snprintf(worst, wsize, "%s", tb->name);
		}
		(*n_tensors)++;
		free(x);
		free(y);
	}
	tk_safetensors_close(a);
	tk_safetensors_close(b);
	return worst_err;
}

static double rel(double a, double b)
{
	return fabs(a - b) / fmax(fabs(b), 1e-30);
}

static void test_parity_trainer(void)
{
	struct tk_train_opts o;
	cJSON *args;
	TT_REQUIRE(!fixture_opts(&o, &args), "cannot read train-args.json");
	o.output_dir = tmp_path("parity");
	struct tk_diag d;
	int rc = tk_train_run(&o, NULL, &d);
	TT_REQUIRE(rc == 0, "tk_train_run: %d %s: %s", rc, d.path, d.msg);

	char worst[256] = "";
	int n = 0;
	double kbias = 0;
	char want[1024];
	snprintf(want, sizeof(want), "%s", tt_fixture("train/expected/model.safetensors"));
	double err = compare_weights(tmp_path("parity/model.safetensors"), want, worst,
				     sizeof(worst), &n, &kbias);
	printf("info weights after 10 steps: %d tensors, worst relative error %.2e (%s); "
	       "key biases (zero gradient) within %.2e\n", n, err, worst, kbias);
	TT_CHECK(n > 0 && err < 1e-5, "weights differ: %.3e in %s", err, worst);
	TT_CHECK(kbias < 1e-4, "key biases moved apart by %.3e", kbias);

	snprintf(want, sizeof(want), "%s", tt_fixture("train/expected/expected.json"));
	cJSON *ref = tt_read_json(want);
	TT_REQUIRE(ref, "cannot read expected.json");
	cJSON *hist = cJSON_GetObjectItem(ref, "log_history");
	FILE *fp = fopen(tmp_path("parity/metrics.jsonl"), "r");
	TT_REQUIRE(fp, "no metrics.jsonl");
	char line[4096];
	int i = 0;
	double worst_loss = 0, worst_norm = 0, worst_lr = 0, worst_eval = 0;
	while (fgets(line, sizeof(line), fp)) {
		cJSON *e = cJSON_Parse(line);
		TT_CHECK(e, "metrics.jsonl line %d is not JSON", i + 1);
		if (!e || cJSON_GetObjectItem(e, "train_loss")) {
			cJSON_Delete(e);
			continue;
		}
		cJSON *w = cJSON_GetArrayItem(hist, i++);
		TT_CHECK(w, "more log entries than the Trainer's (%d)", i);
		if (!w) {
			cJSON_Delete(e);
			break;
		}
		TT_CHECK(tt_num(e, "step") == tt_num(w, "step"), "entry %d: step %g, want %g", i,
			 tt_num(e, "step"), tt_num(w, "step"));
		TT_CHECK(rel(tt_num(e, "epoch"), tt_num(w, "epoch")) < 1e-12, "entry %d: epoch %.17g, want %.17g",
			 i, tt_num(e, "epoch"), tt_num(w, "epoch"));
		if (cJSON_GetObjectItem(w, "loss")) {
			worst_loss = fmax(worst_loss, rel(tt_num(e, "loss"), tt_num(w, "loss")));
			worst_norm = fmax(worst_norm, rel(tt_num(e, "grad_norm"), tt_num(w, "grad_norm")));
			double lr = tt_num(w, "learning_rate");
			worst_lr = fmax(worst_lr, lr ? rel(tt_num(e, "learning_rate"), lr)
						     : fabs(tt_num(e, "learning_rate")));
		} else {
			TT_CHECK(cJSON_GetObjectItem(w, "eval_loss") && cJSON_GetObjectItem(e, "eval_loss"),
				 "entry %d: not an eval entry on both sides", i);
			worst_eval = fmax(worst_eval, rel(tt_num(e, "eval_loss"), tt_num(w, "eval_loss")));
			TT_CHECK(rel(tt_num(e, "eval_perplexity"), exp(tt_num(w, "eval_loss"))) < 1e-5,
				 "entry %d: eval_perplexity", i);
		}
		cJSON_Delete(e);
	}
	fclose(fp);
	printf("info log: %d entries; worst relative error loss %.2e, grad_norm %.2e, "
	       "learning_rate %.2e, eval_loss %.2e\n", i, worst_loss, worst_norm, worst_lr,
	       worst_eval);
	TT_CHECK(i == cJSON_GetArraySize(hist), "%d log entries, the Trainer has %d", i,
		 cJSON_GetArraySize(hist));
	TT_CHECK(worst_loss < 1e-5 && worst_norm < 1e-5 && worst_eval < 1e-5 && worst_lr < 1e-15,
		 "logged values differ");
	cJSON_Delete(ref);
	cJSON_Delete(args);
}

static void test_eval_only(void)
{
	struct tk_train_opts o;
	cJSON *args;
	TT_REQUIRE(!fixture_opts(&o, &args), "cannot read train-args.json");
	o.eval_only = 1;
	double loss = NAN;
	struct tk_diag d;
	int rc = tk_train_run(&o, &loss, &d);
	TT_REQUIRE(rc == 0, "tk_train_run: %d %s", rc, d.msg);
	char p[1024];
	snprintf(p, sizeof(p), "%s", tt_fixture("train/expected/expected.json"));
	cJSON *ref = tt_read_json(p);
	TT_REQUIRE(ref, "cannot read expected.json");
	double want = tt_num(ref, "eval_loss_before");
	printf("info eval_loss %.9g, trainer.evaluate() %.9g\n", loss, want);
	TT_CHECK(rel(loss, want) < 1e-6, "eval_loss %.9g, want %.9g", loss, want);
	cJSON_Delete(ref);
	cJSON_Delete(args);
}

/* Resuming from a checkpoint ends with the same bytes as running straight. */
static void test_resume_same_bytes(void)
{
	struct tk_train_opts o;
	cJSON *args;
	TT_REQUIRE(!fixture_opts(&o, &args), "cannot read train-args.json");
	o.save_strategy = TK_INTERVAL_STEPS;
	o.save_steps = 3;
	o.shuffle = 1;
	o.output_dir = tmp_path("straight");
	struct tk_diag d;
	int rc = tk_train_run(&o, NULL, &d);
	TT_REQUIRE(rc == 0, "straight: %d %s", rc, d.msg);
	struct stat st;
	TT_REQUIRE(stat(tmp_path("straight/checkpoint-3/optimizer.safetensors"), &st) == 0,
		   "no checkpoint-3");
	TT_REQUIRE(stat(tmp_path("straight/checkpoint-10/trainer_state.json"), &st) == 0,
		   "no final checkpoint-10");

	mkdir(tmp_path("resumed"), 0755);
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "cp -r '%s' '%s'", tmp_path("straight/checkpoint-3"),
		 tmp_path("resumed/"));
	TT_REQUIRE(system(cmd) == 0, "cp failed");
	o.output_dir = tmp_path("resumed");
	o.resume = "latest";
	rc = tk_train_run(&o, NULL, &d);
	TT_REQUIRE(rc == 0, "resumed: %d %s", rc, d.msg);
	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", tmp_path("straight/model.safetensors"),
		 tmp_path("resumed/model.safetensors"));
	TT_CHECK(system(cmd) == 0, "resumed model.safetensors differs from the straight run's");
	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'",
		 tmp_path("straight/checkpoint-9/optimizer.safetensors"),
		 tmp_path("resumed/checkpoint-9/optimizer.safetensors"));
	TT_CHECK(system(cmd) == 0, "optimizer state at step 9 differs");
	cJSON_Delete(args);
}

/* A checkpoint directory with every file (empty), or all but skip. */
static void fake_ckpt(const char *dir, const char *skip)
{
	const char *files[] = { "trainer_state.json", "optimizer.safetensors", "config.json",
				"model.safetensors" };
	char p[1024];
	mkdir(tmp_path(dir), 0755);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (skip && !strcmp(skip, files[i]))
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmp_path(dir), files[i]);
		FILE *f = fopen(p, "w");
		if (f)
			fclose(f);
	}
}

static void test_latest_checkpoint(void)
{
	const char *names[] = { "latest", "latest/checkpoint-11.tmp-99", "latest/checkpoint-x" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		mkdir(tmp_path(names[i]), 0755);
	fake_ckpt("latest/checkpoint-2", NULL);
	fake_ckpt("latest/checkpoint-10", NULL);
	fake_ckpt("latest/checkpoint-9", NULL);
	/* incomplete ones (a rotation or a copy cut short) are never taken */
	fake_ckpt("latest/checkpoint-12", "trainer_state.json");
	fake_ckpt("latest/checkpoint-13", "model.safetensors");
	mkdir(tmp_path("latest/checkpoint-14"), 0755);
	char buf[1024];
	struct tk_diag d;
	int rc = tk_train_latest_checkpoint(tmp_path("latest"), buf, sizeof(buf), &d);
	TT_REQUIRE(rc == 0, "%s", d.msg);
	TT_CHECK(!strcmp(buf, tmp_path("latest/checkpoint-10")), "got %s", buf);
	mkdir(tmp_path("none"), 0755);
	rc = tk_train_latest_checkpoint(tmp_path("none"), buf, sizeof(buf), &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "no checkpoint"), "rc %d: %s", rc, d.msg);
	mkdir(tmp_path("half"), 0755);
	fake_ckpt("half/checkpoint-4", "optimizer.safetensors");
	rc = tk_train_latest_checkpoint(tmp_path("half"), buf, sizeof(buf), &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "no complete checkpoint") &&
		 strstr(d.msg, "checkpoint-4 has no optimizer.safetensors"), "rc %d: %s", rc, d.msg);
}

/* The plan from a configuration alone (before anything is allocated) is
 * what the plan of the made model counts for its weights, gradients and
 * optimizer state, for GPT-2 (tied), a Llama-family layout with biases,
 * LayerNorm and an untied head, and Phi-3's fused layout, in full and with
 * a sharded optimizer; and
 * weights only when the base is frozen. */
static void test_mem_plan_model(void)
{
	const char *cfgs[] = {
		"{\"model_type\": \"gpt2\", \"n_embd\": 36, \"n_head\": 3, \"n_layer\": 2, "
		"\"n_positions\": 64, \"vocab_size\": 301}",
		"{\"model_type\": \"qwen2\", \"hidden_size\": 40, \"num_attention_heads\": 4, "
		"\"num_key_value_heads\": 2, \"num_hidden_layers\": 3, \"intermediate_size\": 52, "
		"\"vocab_size\": 97, \"tie_word_embeddings\": false, \"hidden_act\": \"silu\"}",
		"{\"model_type\": \"llama\", \"hidden_size\": 24, \"num_attention_heads\": 2, "
		"\"num_hidden_layers\": 2, \"intermediate_size\": 30, \"vocab_size\": 50, "
		"\"attention_bias\": true, \"mlp_bias\": true, \"hidden_act\": \"silu\"}",
		/* Phi-3: fused qkv_proj and gate_up_proj */
		"{\"model_type\": \"phi3\", \"hidden_size\": 40, \"num_attention_heads\": 5, "
		"\"num_key_value_heads\": 1, \"num_hidden_layers\": 2, \"intermediate_size\": 52, "
		"\"vocab_size\": 97, \"pad_token_id\": 0}",
	};
	for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
		struct tk_model_config c;
		struct tk_model m;
		struct tk_diag d;
		TT_REQUIRE(!tk_config_parse(&c, cfgs[i], "config.json", &d), "%zu: %s", i, d.msg);
		TT_REQUIRE(!tk_model_init(&m, &c, 1, &be, &d), "%zu: %s", i, d.msg);
		for (int shards = 1; shards <= 3; shards += 2) {
			struct tk_memplan_args a = { .batch = 2, .seq_len = 8, .opt_shards = shards };
			struct tk_memplan full, cfg;
			TT_REQUIRE(!tk_memplan_train(&m, &be, &a, &full), "plan");
			TT_REQUIRE(!tk_memplan_model(&c, 1, 0, shards, 0, &cfg), "plan from the config");
			TT_CHECK(cfg.weights == full.weights && cfg.grads == full.grads &&
				 cfg.optimizer == full.optimizer,
				 "%zu, %d shards: %zu %zu %zu from the config, %zu %zu %zu made", i,
				 shards, cfg.weights, cfg.grads, cfg.optimizer, full.weights,
				 full.grads, full.optimizer);
			TT_CHECK(cfg.total <= full.total, "%zu: not a lower bound", i);
			TT_REQUIRE(!tk_memplan_model(&c, 0, 0, shards, 0, &cfg), "frozen");
			TT_CHECK(cfg.weights == full.weights && !cfg.grads && !cfg.optimizer, "%zu", i);
		}
		/* --optim adamw_8bit: bitsandbytes' state, the same from the config */
		struct tk_memplan_args a8 = { .batch = 2, .seq_len = 8, .optim8 = 1 };
		struct tk_memplan full8, cfg8;
		TT_REQUIRE(!tk_memplan_train(&m, &be, &a8, &full8), "plan");
		TT_REQUIRE(!tk_memplan_model(&c, 1, 0, 1, 1, &cfg8), "plan from the config");
		TT_CHECK(cfg8.optimizer == full8.optimizer, "%zu: 8-bit state %zu from the config, "
			 "%zu made", i, cfg8.optimizer, full8.optimizer);
		tk_model_free(&m);
	}
}

/* GPT-2 small under --optim adamw_8bit: about 2 bytes a parameter for the
 * blocks' matrices (n codes twice, an absmax per 256), 8 for the rest
 * (embeddings, as the Trainer sets bitsandbytes up, and the vectors). */
static void test_memplan_adamw8_gpt2(void)
{
	struct tk_model_config c;
	struct tk_memplan p8, p32;
	struct tk_diag d;
	TT_REQUIRE(!tk_config_parse(&c, "{\"model_type\": \"gpt2\", \"n_embd\": 768, "
				    "\"n_head\": 12, \"n_layer\": 12, \"n_positions\": 1024, "
				    "\"vocab_size\": 50257}", "config.json", &d), "%s", d.msg);
	TT_REQUIRE(!tk_memplan_model(&c, 1, 0, 1, 1, &p8) && !tk_memplan_model(&c, 1, 0, 1, 0, &p32),
		   "plan");
	double C = 768, mats = 12 * (C * 3 * C + C * C + 2 * C * 4 * C);
	double rest = (double)(p32.optimizer / 8) - mats; /* floats, 16-aligned each */
	double per_mat = ((double)p8.optimizer - 8 * rest) / mats;
	printf("# gpt2 small, adamw_8bit: optimizer %.1f MB (fp32 AdamW %.1f MB), %.4f bytes a "
	       "block matrix parameter\n", p8.optimizer / 1e6, p32.optimizer / 1e6, per_mat);
	TT_CHECK(per_mat > 2.0 && per_mat < 2.04, "%.4f bytes a parameter", per_mat);
	TT_CHECK(p8.optimizer < p32.optimizer / 2, "%zu of %zu", p8.optimizer, p32.optimizer);
}

static void test_nan_stops(void)
{
	struct tk_train_opts o;
	cJSON *args;
	TT_REQUIRE(!fixture_opts(&o, &args), "cannot read train-args.json");
	o.lr = 1e30;
	o.warmup = 0;
	o.max_grad_norm = 0;
	o.save_strategy = TK_INTERVAL_STEPS;
	o.save_steps = 1;
	o.output_dir = tmp_path("nan");
	struct tk_diag d;
	int rc = tk_train_run(&o, NULL, &d);
	TT_CHECK(rc == TK_E_FORMAT, "rc %d", rc);
	TT_CHECK(strstr(d.msg, "step 2 ") && strstr(d.msg, "checkpoint-1"), "message: %s", d.msg);
	struct stat st;
	TT_CHECK(stat(tmp_path("nan/checkpoint-1/model.safetensors"), &st) == 0,
		 "the good checkpoint is gone");
	TT_CHECK(stat(tmp_path("nan/checkpoint-2"), &st) != 0, "a checkpoint after the failure");
	TT_CHECK(stat(tmp_path("nan/model.safetensors"), &st) != 0, "a final model after the failure");
	cJSON_Delete(args);
}

int main(void)
{
	struct tk_diag d;
	snprintf(tmpdir, sizeof(tmpdir), "%s/test-train-XXXXXX",
		 getenv("TK_TMP") ? getenv("TK_TMP") : "/tmp");
	if (!mkdtemp(tmpdir) || tk_backend_cpu_init(&be, 1, &d)) {
		printf("FAIL setup: %s\n", d.msg);
		return 1;
	}
	TT_RUN(test_parity_trainer);
	TT_RUN(test_eval_only);
	TT_RUN(test_resume_same_bytes);
	TT_RUN(test_latest_checkpoint);
	TT_RUN(test_memplan_adamw8_gpt2);
	TT_RUN(test_nan_stops);
	TT_RUN(test_mem_plan_model);
	tk_backend_free(&be);
	tk_afile_rmtree(tmpdir);
	return tt_done();
}

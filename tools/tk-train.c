/* tk-train - full fine-tuning or training from scratch (see man/tk-train.1). */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "jobs/cli.h"
#include "compute/dist.h"
#include "formats/tboard.h"
#include "base/path.h"
#include "train/data.h"
#include "train/train.h"

static const char *const usage[] = {
	"tk-train --model DIR --data DIR|FILE|- --output-dir OUT [OPTIONS]",
	"tk-train --init CONFIG.json --data DIR|FILE|- --output-dir OUT [OPTIONS]",
	"tk-train --resume-from-checkpoint PATH|latest --output-dir OUT [OPTIONS]",
	"tk-train --eval-only --model DIR --data DIR|FILE|- [OPTIONS]",
	NULL,
};

static const char about[] =
	"Trains a causal language model on the blocks from tk-pack, as Hugging Face's Trainer "
	"does with the same TrainingArguments: --model fine-tunes a model directory, --init "
	"trains a new model from a config.json.  Progress goes to stderr, one JSON object per "
	"log or eval step to OUT/metrics.jsonl, checkpoints to OUT/checkpoint-STEP/, and at the "
	"end OUT/ is a model directory that transformers loads; the final metrics go to stdout "
	"as one JSON object.  Architectures (config.json model_type): gpt2, llama (Llama 1-3.x, "
	"SmolLM), mistral, qwen2, qwen3, smollm3, phi3 (Phi-3, Phi-3.5, Phi-4-mini), gemma2, "
	"gemma3_text (Gemma 3's text model); rotary "
	"scaling (rope_type) default, linear, dynamic, yarn, longrope, llama3.";

/* Keys of a TrainingArguments JSON that are not options of tk-train: they
 * mean nothing to it, or (use_cpu, no_cuda) apply_config reads them itself.
 * None may be an option too (main asserts it): the option would never be
 * set from the JSON. */
static const char *const ignored_keys[] = {
	"run_name", "push_to_hub", "hub_model_id", "hub_strategy", "hub_token",
	"hub_private_repo", "hub_always_push", "hub_revision", "logging_strategy",
	"logging_nan_inf_filter", "do_train", "do_eval", "do_predict", "overwrite_output_dir",
	"disable_tqdm", "dataloader_num_workers", "dataloader_pin_memory",
	"dataloader_persistent_workers", "dataloader_prefetch_factor", "dataloader_drop_last",
	"remove_unused_columns", "save_safetensors", "save_on_each_node", "save_only_model",
	"local_rank", "log_level", "log_level_replica", "log_on_each_node", "skip_memory_metrics",
	"prediction_loss_only", "use_cpu", "no_cuda", "ddp_backend", "ddp_timeout",
	"ddp_find_unused_parameters", "ignore_data_skip", "include_num_input_tokens_seen",
	"trust_remote_code", "eval_delay", "torch_empty_cache_steps", "torch_compile",
	"torch_compile_backend", "torch_compile_mode", "deepspeed", "fsdp", "fsdp_config",
	"use_mps_device", "jit_mode_eval", "use_ipex", NULL,
};

/* Of those, the ones that ask for something tk-train cannot do (upload,
 * compile, shard with another framework, run elsewhere): set to anything
 * but false, null, 0, "" or [], they get one warning, and the run goes on.
 * hub_* keys count only with push_to_hub (they mean nothing without it). */
static const char *const cannot_keys[] = {
	"push_to_hub", "torch_compile", "torch_compile_backend", "torch_compile_mode",
	"deepspeed", "fsdp", "fsdp_config", "use_mps_device", "jit_mode_eval", "use_ipex",
	"ddp_backend", NULL,
};

/* --report-to integrations of transformers that tk-train has not: named,
 * they get one warning and the run goes on (tensorboard is there, and
 * OUT/metrics.jsonl holds every logged value). */
static const char *const foreign_reporters[] = {
	"wandb", "mlflow", "comet_ml", "neptune", "clearml", "dagshub", "dvclive", "flyte",
	"codecarbon", "azure_ml", "swanlab", "trackio", NULL,
};

static int listed(const char *const *list, const char *s)
{
	for (int i = 0; list[i]; i++)
		if (!strcmp(list[i], s))
			return 1;
	return 0;
}

/* The options go straight into train and lora, whose defaults main sets
 * (tk_train_opts_init, tk_lora_config_init) before parsing.  a holds
 * what is the tool's (messages, reporting, the device). */
static struct tk_train_opts train;
static struct tk_lora_config lora;

static const struct tk_opt_choice eval_strategies[] = {
	{ "no", TK_INTERVAL_NO }, { "steps", TK_INTERVAL_STEPS }, { "epoch", TK_INTERVAL_EPOCH },
	{ NULL, 0 },
};
static const struct tk_opt_choice save_strategies[] = {
	{ "no", TK_INTERVAL_NO }, { "steps", TK_INTERVAL_STEPS }, { "epoch", TK_INTERVAL_EPOCH },
	{ "best", TK_INTERVAL_BEST }, { NULL, 0 },
};

static struct {
	const char *config, *device, *logging_dir;
	const char *optim; /* the --optim word given, for messages */
	double warmup_ratio;
	int threads, quiet, bf16, fp16, tf32;
	struct tk_strlist report_to, lora_targets, modules_to_save;
	int lora_r_given, lora_given, warmup_ratio_given; /* .given */
} a;

static const struct tk_opt opts[] = {
	TK_OPT_GROUP("Model and data:"),
	TK_OPT_STR(0, "model", &train.model_dir, "DIR",
		   "fine-tune this Hugging Face model directory, or a GGUF file (imported as "
		   "tk-convert does)"),
	TK_OPT_STR(0, "init", &train.init_config, "CONFIG.json",
		   "train a new model from this config.json (weights drawn with --seed)"),
	TK_OPT_STR(0, "tokenizer", &train.tokenizer, "PATH",
		   "the tokenizer the blocks must come from, copied to the outputs (default: the "
		   "model directory's)"),
	TK_OPT_STR(0, "data", &train.data, "PATH",
		   "blocks from tk-pack: a directory (train-*.tks), a .tks file or - (stdin)"),
	TK_OPT_STR(0, "eval-data", &train.eval_data, "PATH",
		   "eval blocks (default: the --data directory's eval-*.tks)"),
	TK_OPT_STR('o', "output-dir", &train.output_dir, "OUT",
		   "checkpoints, metrics.jsonl and the final model go here", .path = 1),
	TK_OPT_STR(0, "config", &a.config, "FILE.json",
		   "TrainingArguments as JSON (snake_case keys); the command line wins"),
	TK_OPT_STR(0, "resume-from-checkpoint", &train.resume, "PATH|latest",
		   "continue from a checkpoint directory, or the newest one in OUT"),
	TK_OPT_GROUP("LoRA (peft's LoraConfig; the base is frozen, OUT/ is a PEFT adapter):"),
	TK_OPT_INT32(0, "lora-r", &lora.r, "R", 1, 1 << 20,
		     "train LoRA adapters of rank R instead of the whole model",
		     .given = &a.lora_r_given, .no_default = 1),
	TK_OPT_DOUBLE(0, "lora-alpha", &lora.alpha, "A", 0, 1e9,
		      "scale alpha/R, or alpha/sqrt(R) with --use-rslora", .given = &a.lora_given),
	TK_OPT_DOUBLE(0, "lora-dropout", &lora.dropout, "P", 0, 1,
		      "dropout on the adapters' input while training", .given = &a.lora_given),
	TK_OPT_LIST(0, "lora-target-modules", &a.lora_targets, "NAMES",
		    "modules to adapt, comma-separated (q_proj,v_proj...; c_attn for GPT-2; "
		    "qkv_proj,o_proj,gate_up_proj,down_proj for Phi-3; all-linear); default as "
		    "peft: c_attn (GPT-2), q_proj,v_proj (Llama family), none (Phi-3)",
		    .given = &a.lora_given),
	TK_OPT_CHOICE(0, "lora-bias", &lora.bias, tk_lora_biases,
		      "which biases train along", .given = &a.lora_given),
	TK_OPT_BOOL(0, "use-rslora", &lora.use_rslora, "rank-stabilized scale alpha/sqrt(R)",
		    .given = &a.lora_given),
	TK_OPT_BOOL(0, "use-dora", &lora.use_dora,
		    "DoRA: a trained magnitude per output times the normalized weight (CPU only)",
		    .given = &a.lora_given),
	TK_OPT_LIST(0, "modules-to-save", &a.modules_to_save, "NAMES",
		    "base modules trained in full and saved with the adapter (lm_head...)",
		    .given = &a.lora_given),
	TK_OPT_BOOL(0, "ensure-weight-tying", &lora.ensure_weight_tying,
		    "a saved embedding that the lm head is tied to trains for both (peft's "
		    "ensure_weight_tying)", .given = &a.lora_given),
	TK_OPT_STR(0, "adapter", &train.adapter, "DIR",
		   "continue training this PEFT adapter on --model"),
	TK_OPT_GROUP("Training (Hugging Face TrainingArguments):"),
	TK_OPT_DOUBLE(0, "num-train-epochs", &train.num_train_epochs, "N", 0, 1e9,
		      "epochs, may be fractional"),
	TK_OPT_INT64(0, "max-steps", &train.max_steps, "N", -1, 1e15,
		     "optimizer steps; > 0 overrides --num-train-epochs"),
	TK_OPT_INT32(0, "per-device-train-batch-size", &train.batch, "N", 1, 1 << 20,
		     "blocks per batch"),
	TK_OPT_INT32(0, "gradient-accumulation-steps", &train.grad_accum, "N", 1, 1 << 20,
		     "batches per optimizer step"),
	TK_OPT_DOUBLE(0, "learning-rate", &train.lr, "LR", 0, 1e300, "peak learning rate"),
	TK_OPT_DOUBLE(0, "weight-decay", &train.weight_decay, "W", 0, 1e9,
		      "AdamW weight decay, not on biases and norms"),
	TK_OPT_DOUBLE(0, "adam-beta1", &train.beta1, "B", 0, 1, ""),
	TK_OPT_DOUBLE(0, "adam-beta2", &train.beta2, "B", 0, 1, ""),
	TK_OPT_DOUBLE(0, "adam-epsilon", &train.eps, "E", 0, 1, ""),
	TK_OPT_DOUBLE(0, "neftune-noise-alpha", &train.neftune_alpha, "A", 0, 1e6,
		      "NEFTune: uniform noise of A / sqrt(seq_len * hidden) on the input "
		      "embeddings while training (5 is the paper's; 0: none)"),
	TK_OPT_DOUBLE(0, "max-grad-norm", &train.max_grad_norm, "N", 0, 1e300,
		      "clip the gradient norm to N; 0: no clipping"),
	TK_OPT_CHOICE(0, "lr-scheduler-type", &train.sched, tk_sched_types,
		      "learning-rate schedule"),
	TK_OPT_STR(0, "lr-scheduler-kwargs", &train.sched_kwargs, "JSON",
		   "the schedule's options as a JSON object, transformers' names "
		   "(e.g. '{\"num_cycles\": 2}')"),
	TK_OPT_DOUBLE(0, "warmup-steps", &train.warmup, "N", 0, 1e15,
		      "linear warmup: N >= 1 steps, or a fraction of the steps below 1"),
	TK_OPT_DOUBLE(0, "warmup-ratio", &a.warmup_ratio, "F", 0, 1,
		      "warmup as a fraction of the steps (as --warmup-steps F)",
		      .given = &a.warmup_ratio_given),
	TK_OPT_CHOICE(0, "optim", &train.optim, tk_train_optims,
		      "the optimizer: torch.optim.AdamW (adamw_torch, adamw_torch_fused: the same), "
		      "or bitsandbytes' AdamW with 8-bit state, about 2 bytes a parameter instead "
		      "of 8 (adamw_8bit, adamw_bnb_8bit; paged_adamw_8bit is the same optimizer, "
		      "its paging a GPU memory detail)", .word = &a.optim),
	TK_OPT_UINT64(0, "seed", &train.seed, "S", 0, 9e18,
		      "seed of the block order and of --init"),
	TK_OPT_BOOL(0, "shuffle", &train.shuffle,
		    "a seeded random block order each epoch (default); --no-shuffle: file order"),
	TK_OPT_BOOL(0, "gradient-checkpointing", &train.gradient_checkpointing,
		    "keep only each layer's input and recompute its activations in the backward "
		    "pass: less memory, one more forward per step, the same results"),
	TK_OPT_INT32(0, "zero", &train.zero, "STAGE", 0, 1,
		     "1: under mpirun, shard the AdamW state over the processes (ZeRO stage 1), "
		     "each holding 1/N of it; the same results"),
	TK_OPT_BOOL(0, "bf16", &a.bf16,
		    "matmuls in bfloat16 (operands rounded, fp32 sums; all else fp32); on a GPU "
		    "without bf16 (T4): fp16 with loss scaling, with a note"),
	TK_OPT_BOOL(0, "fp16", &a.fp16,
		    "matmuls in IEEE half with dynamic loss scaling (torch.amp.GradScaler): steps "
		    "whose gradients overflow are skipped"),
	TK_OPT_BOOL(0, "tf32", &a.tf32, "matmuls in TF32 (fp32 range, 10-bit mantissa)"),
	TK_OPT_INT32(0, "initial-scale-power", &train.initial_scale_power, "P", 0, 127,
		     "--fp16: the first loss scale is 2^P (GradScaler's 65536 is 2^16)"),
	TK_OPT_INT64(0, "loss-scale-window", &train.loss_scale_window, "N", 1, 1e15,
		     "--fp16: double the loss scale after N steps without overflow"),
	TK_OPT_GROUP("Logging, evaluation and checkpoints:"),
	TK_OPT_DOUBLE(0, "logging-steps", &train.logging_steps, "N", 0, 1e15,
		      "log every N steps, or a fraction of the steps below 1"),
	TK_OPT_BOOL(0, "logging-first-step", &train.logging_first_step, "log the first step too"),
	TK_OPT_LIST(0, "report-to", &a.report_to, "none|tensorboard|all",
		    "tensorboard: also write the logged metrics as TensorBoard events; the last "
		    "one given wins (none)"),
	TK_OPT_STR(0, "logging-dir", &a.logging_dir, "DIR",
		   "TensorBoard event files go here (OUT/runs/TIME_HOST)"),
	TK_OPT_CHOICE(0, "eval-strategy", &train.eval_strategy, eval_strategies,
		      "when to evaluate"),
	TK_OPT_DOUBLE(0, "eval-steps", &train.eval_steps, "N", 0, 1e15,
		      "evaluate every N steps (default: --logging-steps)", .no_default = 1),
	TK_OPT_INT32(0, "per-device-eval-batch-size", &train.eval_batch, "N", 1, 1 << 20,
		     "blocks per eval batch"),
	TK_OPT_CHOICE(0, "save-strategy", &train.save_strategy, save_strategies,
		      "when to write a checkpoint; best: after an evaluation that found a new "
		      "best --metric-for-best-model"),
	TK_OPT_DOUBLE(0, "save-steps", &train.save_steps, "N", 0, 1e15,
		      "checkpoint every N steps, or a fraction of the steps below 1"),
	TK_OPT_INT64(0, "save-total-limit", &train.save_total_limit, "N", 0, 1e15,
		     "keep only the newest N checkpoints, and the best one (0: all)"),
	TK_OPT_BOOL(0, "load-best-model-at-end", &train.load_best_model_at_end,
		    "write the best checkpoint's model as OUT's (needs matching eval and save "
		    "strategies, or --save-strategy best)"),
	TK_OPT_STR(0, "metric-for-best-model", &train.metric_for_best_model, "loss|perplexity",
		   "the eval metric that picks the best checkpoint (loss when "
		   "--load-best-model-at-end is given)"),
	TK_OPT_BOOL(0, "greater-is-better", &train.greater_is_better,
		    "a greater metric is better (default: not for a loss)"),
	TK_OPT_INT64(0, "early-stopping-patience", &train.early_stopping_patience, "N", 0, 1e15,
		     "stop after N evaluations without a better metric (EarlyStoppingCallback; "
		     "0: never)"),
	TK_OPT_DOUBLE(0, "early-stopping-threshold", &train.early_stopping_threshold, "F", 0, 1e300,
		      "how much better a metric must be to count as better"),
	TK_OPT_GROUP("tk:"),
	TK_OPT_BOOL(0, "eval-only", &train.eval_only,
		    "evaluate without training: --eval-data, else the --data directory's eval "
		    "split, else the --data blocks; metrics to stdout"),
	TK_OPT_STR(0, "device", &a.device, "auto|cpu|cuda[:N]",
		   "where to compute: auto takes a CUDA GPU when there is one (unverified), else "
		   "the CPU (auto)"),
	TK_OPT_INT32(0, "threads", &a.threads, "N", 0, 4096, "CPU threads (0: one per core)"),
	TK_OPT_CPU_KERNEL(),
	TK_OPT_BOOL('f', "force", &train.force, "replace an earlier run in OUT"),
	TK_OPT_BOOL('q', "quiet", &a.quiet, "no progress on stderr"),
	TK_OPT_HELP(),
	TK_OPT_END,
};

struct view {
	int quiet;
	struct tk_status st; /* the progress between logging lines (jobs/cli.h) */
	struct tk_train_event end;
	/* --report-to tensorboard: events to tb in logdir; tb_rc: the first
	 * failure (reported at once; the run goes on, tk-train exits 1). */
	int report;
	char logdir[4096];
	struct tk_tb tb;
	int tb_rc, saved;
	struct tk_diag tb_diag;
};

/* Closes the event file of a run that stopped early; where tk_train_run
 * left nothing of the run (failed before a checkpoint), removes it too. */
static void report_end(struct view *v, int failed)
{
	if (!v->tb.fp)
		return;
	if (failed && !v->saved) {
		unlink(v->tb.path);
		rmdir(v->logdir);
		if (!a.logging_dir) { /* OUT/runs when it holds nothing else */
			char *slash = strrchr(v->logdir, '/');
			*slash = 0;
			rmdir(v->logdir);
		}
	}
	if (tk_tboard_close(&v->tb, &v->tb_diag) && !failed)
		v->tb_rc = tk_cli_fail(TK_E_IO, &v->tb_diag);
}

/* --report-to: the last value given (none, tensorboard or all: tensorboard
 * is the only integration), then the default --logging-dir as
 * transformers' default_logdir() names it. */
static int report_setup(struct view *v)
{
	char foreign[256] = "";
	for (int i = 0; i < a.report_to.n; i++) {
		const char *r = a.report_to.v[i];
		if (listed(foreign_reporters, r)) {
			size_t n = strlen(foreign);
			snprintf(foreign + n, sizeof(foreign) - n, "%s%s", n ? ", " : "", r);
			continue;
		}
		if (strcmp(r, "none") && strcmp(r, "tensorboard") && strcmp(r, "all"))
			return tk_cli_usage_error("--report-to: '%s' is not one of none, "
						  "tensorboard, all", r);
		v->report = strcmp(r, "none") != 0;
	}
	if (foreign[0] && !a.quiet)
		fprintf(stderr, "%s: warning: report_to %s: not in tk-train (tensorboard is, and "
			"OUT/metrics.jsonl has every logged value); going on without\n", tk_prog,
			foreign);
	if (!v->report || train.eval_only)
		return v->report = 0;
	char stamp[64] = "", host[256] = "localhost";
	time_t t = time(NULL);
	strftime(stamp, sizeof(stamp), "%b%d_%H-%M-%S", localtime(&t));
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = 0;
	int n = a.logging_dir ? snprintf(v->logdir, sizeof(v->logdir), "%s", a.logging_dir)
			      : snprintf(v->logdir, sizeof(v->logdir), "%s/runs/%s_%s",
					 train.output_dir ? train.output_dir : ".", stamp, host);
	if (n >= (int)sizeof(v->logdir))
		return tk_cli_usage_error("--logging-dir: path too long");
	return 0;
}

/* The event as TensorBoardCallback writes Trainer's logs: rewrite_logs()
 * tags (train/..., eval/...) at global_step. */
static void report(struct view *v, const struct tk_train_event *ev)
{
	struct tk_tb *w = &v->tb;
	struct tk_diag *d = &v->tb_diag;
	struct rusage ru;
	v->saved |= ev->kind == TK_TRAIN_EV_SAVE;
	if (!v->report || v->tb_rc || (ev->kind == TK_TRAIN_EV_STEP && !ev->logged) ||
	    ev->kind == TK_TRAIN_EV_SAVE)
		return;
	if (ev->kind == TK_TRAIN_EV_START) {
		v->tb_rc = tk_tboard_open(w, v->logdir, d);
		goto out;
	}
	getrusage(RUSAGE_SELF, &ru);
	tk_tboard_begin(w, ev->step, 0);
	int rc = 0;
	if (ev->kind == TK_TRAIN_EV_STEP) {
		rc = rc ? rc : tk_tboard_scalar(w, "train/loss", ev->logged_loss);
		rc = rc ? rc : tk_tboard_scalar(w, "train/grad_norm", ev->grad_norm);
		rc = rc ? rc : tk_tboard_scalar(w, "train/learning_rate", ev->lr);
		rc = rc ? rc : tk_tboard_scalar(w, "train/tokens_per_second", ev->tokens_per_s);
		rc = rc ? rc : tk_tboard_scalar(w, "train/peak_rss_mb", (double)ru.ru_maxrss / 1024);
		if (ev->dev_total) { /* a GPU: nvidia-smi's used, and tk's peak */
			rc = rc ? rc : tk_tboard_scalar(w, "train/device_mem_used_mb",
						    (double)ev->dev_used / (1 << 20));
			rc = rc ? rc : tk_tboard_scalar(w, "train/device_mem_peak_mb",
						    (double)ev->mem_peak / (1 << 20));
		}
	} else if (ev->kind == TK_TRAIN_EV_EVAL) {
		rc = rc ? rc : tk_tboard_scalar(w, "eval/loss", ev->eval_loss);
		rc = rc ? rc : tk_tboard_scalar(w, "eval/perplexity", ev->eval_perplexity);
	} else if (ev->kind == TK_TRAIN_EV_END) {
		rc = rc ? rc : tk_tboard_scalar(w, "train/train_loss", ev->loss);
		rc = rc ? rc : tk_tboard_scalar(w, "train/train_runtime", ev->elapsed);
		rc = rc ? rc : tk_tboard_scalar(w, "train/train_tokens_per_second", ev->tokens_per_s);
	}
	rc = rc ? rc : tk_tboard_scalar(w, "train/epoch", ev->epoch);
	if (rc)
		tk_diag_set(d, rc, w->path, -1, "out of memory");
	else if (!(rc = tk_tboard_end(w, d)))
		rc = ev->kind == TK_TRAIN_EV_END ? tk_tboard_close(w, d) : tk_tboard_flush(w, d);
	v->tb_rc = rc;
out:
	if (v->tb_rc)
		tk_cli_fail(v->tb_rc, d);
}

/* n with thousands separators, as Python's format(n, ",d") (PEFT's line). */
static const char *commas(char *buf, unsigned long long n)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof(tmp), "%llu", n), j = 0;
	for (int i = 0; i < len; i++) {
		if (i && (len - i) % 3 == 0)
			buf[j++] = ',';
		buf[j++] = tmp[i];
	}
	buf[j] = 0;
	return buf;
}

static void fmt_time(char *buf, size_t n, double s)
{
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
	else
		snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

/* " gpu 5120 MB used, 4800 MB peak": on a device that reports its memory
 * (CUDA), what nvidia-smi shows used and the peak of tk's own; "" on the
 * CPU. */
static const char *dev_mem(char *buf, size_t size, const struct tk_train_event *ev)
{
	buf[0] = 0;
	if (ev->dev_total)
		snprintf(buf, size, " gpu %llu MB used, %llu MB peak",
			 (unsigned long long)(ev->dev_used >> 20),
			 (unsigned long long)(ev->mem_peak >> 20));
	return buf;
}

/* --bf16, --fp16, --tf32 onto be: 0 with o->prec set (a note when --bf16
 * became fp16), or the exit code of the failure. */
static int prec_setup(struct tk_backend *be, struct tk_train_opts *o)
{
	struct tk_diag d;
	int want = a.bf16 ? TK_PREC_BF16 : a.fp16 ? TK_PREC_FP16 :
		   a.tf32 ? TK_PREC_TF32 : TK_PREC_FP32;
	int rc = tk_train_set_prec(be, want, &o->prec, &d);
	if (rc)
		return tk_cli_fail(rc, &d);
	if (d.msg[0] && !a.quiet && !tk_dist_rank())
		fprintf(stderr, "%s: note: %s\n", tk_prog, d.msg);
	return 0;
}

/* --model FILE.gguf: imported into a temporary directory for this run
 * (tk_cli_model_gguf).  An adapter records the GGUF as its base, and a
 * resumed run takes the tokenizer of this import, not the directory the
 * first run recorded, which is gone. */
static int gguf_model(struct tk_train_opts *o, struct tk_lora_config *c)
{
	struct tk_diag d;
	const char *given = o->model_dir;
	int rc = tk_cli_model_gguf(&o->model_dir, a.quiet || tk_dist_rank() > 0, &d);
	if (rc)
		return tk_cli_fail(rc, &d);
	if (o->model_dir == given)
		return 0;
	if (o->lora)
		snprintf(c->base_model, sizeof(c->base_model), "%s", given);
	if (o->resume && !o->tokenizer)
		o->tokenizer = o->model_dir;
	return 0;
}

/* Says so when --eval-data DIR has no eval split and its training blocks
 * are evaluated (tk_data_eval_split decides for tk_train_run). */
static void eval_data_note(void)
{
	const char *e = train.eval_data;
	if (e && !a.quiet && !tk_dist_rank() && tk_path_is_dir(e) &&
	    !strcmp(tk_data_eval_split(e), "train"))
		fprintf(stderr, "%s: note: %s: no eval-*.tks; evaluating its train-*.tks\n",
			tk_prog, e);
}

static void on_event(void *ctx, const struct tk_train_event *ev)
{
	struct view *v = ctx;
	report(v, ev);
	if (ev->kind == TK_TRAIN_EV_END)
		v->end = *ev;
	if (v->quiet)
		return;
	if (ev->kind != TK_TRAIN_EV_STEP)
		tk_status_clear(&v->st);
	char eta[32], n1[40], n2[40], dm[64];
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	switch (ev->kind) {
	case TK_TRAIN_EV_START:
		fprintf(stderr, "trainable params: %s || all params: %s || trainable%%: %.4f\n",
			commas(n1, ev->trainable), commas(n2, ev->n_params),
			ev->n_params ? 100.0 * (double)ev->trainable / (double)ev->n_params : 0.0);
		if (ev->dropout > 0)
			fprintf(stderr, "%s: warning: the model's config asks for dropout %g, which tk "
				"does not apply (transformers' Trainer would)\n", tk_prog,
				(double)ev->dropout);
		if (ev->vocab_taken)
			fprintf(stderr, "%s: note: %s: no vocab_size; the tokenizer's %d taken, as "
				"AutoConfig(..., vocab_size=len(tokenizer)) would\n", tk_prog, train.init_config,
				ev->vocab_taken);
		fprintf(stderr, "%s: %llu blocks of %d tokens (%llu eval), %s at step %ld of %ld\n",
			tk_prog, (unsigned long long)ev->n_blocks, ev->seq_len,
			(unsigned long long)ev->n_eval_blocks, ev->step ? "resuming" : "starting",
			ev->step, ev->max_steps);
		if (tk_dist_size() > 1)
			fprintf(stderr, "%s: data parallel: %d processes x %d blocks x %d "
				"accumulation = global batch of %lld blocks\n", tk_prog, tk_dist_size(),
				train.batch, train.grad_accum,
				(long long)tk_dist_size() * train.batch * train.grad_accum);
		if (train.zero)
			fprintf(stderr, "%s: zero 1: AdamW state %.4g MB in this process (%.4g MB "
				"unsharded)\n", tk_prog, ev->opt_bytes / 1e6, ev->opt_bytes_full / 1e6);
		if (train.optim == TK_OPTIM_ADAMW_8BIT)
			fprintf(stderr, "%s: %s: optimizer state %.4g MB, %.2f bytes a parameter "
				"(fp32 AdamW: %.4g MB)\n", tk_prog, a.optim, ev->opt_bytes / 1e6,
				ev->trainable ? (double)ev->opt_bytes / (double)ev->trainable : 0.0,
				ev->opt_bytes_full / 1e6);
		break;
	case TK_TRAIN_EV_STEP: {
		long done = ev->step - ev->first_step;
		double frac = ev->max_steps ? (double)ev->step / (double)ev->max_steps : -1;
		if (ev->skipped) {
			tk_status_clear(&v->st);
			fprintf(stderr, "%s: step %ld: fp16 gradients overflowed, update skipped; "
				"loss scale now %.9g\n", tk_prog, ev->step, ev->loss_scale);
		}
		double left = done ? ev->elapsed / done * (double)(ev->max_steps - ev->step) : 0;
		fmt_time(eta, sizeof(eta), left);
		if (ev->logged) {
			tk_status_clear(&v->st);
			fprintf(stderr, "%s: step %ld/%ld epoch %.2f loss %.4f grad_norm %.4g lr %.4g "
				"%.0f tokens/s ETA %s mem %ld MB%s\n", tk_prog, ev->step, ev->max_steps,
				ev->epoch, ev->logged_loss, ev->grad_norm, ev->lr, ev->tokens_per_s, eta,
				ru.ru_maxrss / 1024, dev_mem(dm, sizeof(dm), ev));
			/* a logging line is a progress line too: the next report is
			 * due from here (a redrawn bar still follows it at once) */
			if (!tk_status_inplace(&v->st)) {
				tk_pace_mark(&v->st.pace, tk_now(), frac);
				break;
			}
		}
		/* between logging steps (HF's default is 500), a report every
		 * few seconds (TK_PROGRESS, jobs/cli.h): a notebook cell or a
		 * log is never silent for minutes */
		if (!ev->logged && !tk_status_due(&v->st, frac))
			break;
		if (tk_status_inplace(&v->st)) {
			int w = 24, fill = ev->max_steps ? (int)(w * ev->step / ev->max_steps) : w;
			tk_status_show(&v->st, frac, "training [%.*s%*s] %ld/%ld loss %.4f lr %.3g "
				       "%.0f tok/s ETA %s mem %ld MB%s", fill,
				       "########################", w - fill, "", ev->step,
				       ev->max_steps, ev->loss, ev->lr, ev->tokens_per_s, eta,
				       ru.ru_maxrss / 1024, dev_mem(dm, sizeof(dm), ev));
		} else {
			tk_status_show(&v->st, frac, "progress: step %ld/%ld (%.0f%%) epoch %.2f loss "
				       "%.4f %.0f tokens/s ETA %s mem %ld MB%s", ev->step,
				       ev->max_steps, frac >= 0 ? 100 * frac : 0.0, ev->epoch, ev->loss,
				       ev->tokens_per_s, eta, ru.ru_maxrss / 1024,
				       dev_mem(dm, sizeof(dm), ev));
		}
		break;
	}
	case TK_TRAIN_EV_EVAL:
		fprintf(stderr, "%s: step %ld epoch %.2f eval_loss %.4f eval_perplexity %.4g\n",
			tk_prog, ev->step, ev->epoch, ev->eval_loss, ev->eval_perplexity);
		break;
	case TK_TRAIN_EV_SAVE:
		fprintf(stderr, "%s: saved %s\n", tk_prog, ev->path);
		break;
	case TK_TRAIN_EV_END:
		if (ev->stopped_early)
			fprintf(stderr, "%s: early stopping at step %ld: no better eval metric in the "
				"last evaluations (--early-stopping-patience)\n", tk_prog, ev->step);
		if (ev->best)
			fprintf(stderr, "%s: best checkpoint: %s\n", tk_prog, ev->best);
		fmt_time(eta, sizeof(eta), ev->elapsed);
		fprintf(stderr, "%s: done: %ld steps, train_loss %.4f, %s, %.0f tokens/s; model in %s\n",
			tk_prog, ev->step, ev->loss, eta, ev->tokens_per_s, ev->path);
		break;
	}
}

/* Comma-separated entries of list l into names (at most max). */
static int split_names(const struct tk_strlist *l, char (*names)[TK_LORA_NAME], int max,
		       int *n, const char *opt)
{
	*n = 0;
	for (int i = 0; i < l->n; i++)
		for (const char *p = l->v[i]; *p;) {
			size_t k = strcspn(p, ", ");
			if (k && *n == max)
				return tk_cli_usage_error("--%s: more than %d names", opt, max);
			if (k >= TK_LORA_NAME)
				return tk_cli_usage_error("--%s: '%.*s' is too long", opt, (int)k, p);
			if (k)
				snprintf(names[(*n)++], TK_LORA_NAME, "%.*s", (int)k, p);
			p += k + (p[k] != 0);
		}
	return 0;
}

/* The rest of the LoRA options into lora (the table wrote r, alpha,
 * dropout, bias, use_rslora, use_dora and ensure_weight_tying), and train.lora pointed at it when
 * --lora-r was given.  Any other LoRA option without --lora-r is a usage
 * error: the table recorded which were given. */
static int lora_setup(struct tk_lora_config *c)
{
	int ec;
	if (!a.lora_r_given && a.lora_given)
		return tk_cli_usage_error("LoRA options need --lora-r (e.g. --lora-r 16)");
	if (a.lora_r_given && train.adapter)
		return tk_cli_usage_error("--adapter trains an existing adapter: leave out --lora-r");
	if (c->alpha <= 0)
		return tk_cli_usage_error("--lora-alpha: must be above 0");
	if (c->dropout >= 1)
		return tk_cli_usage_error("--lora-dropout: must be below 1");
	train.lora = a.lora_r_given ? c : NULL;
	if ((ec = split_names(&a.lora_targets, c->targets, TK_LORA_MAX_TARGETS, &c->n_targets,
			      "lora-target-modules")))
		return ec;
	return split_names(&a.modules_to_save, c->modules_to_save, TK_LORA_MAX_TARGETS,
			   &c->n_modules_to_save, "modules-to-save");
}

/* The usage errors between options (command line and --config alike). */
static int check_args(void)
{
	if (a.warmup_ratio_given && train.warmup > 0)
		return tk_cli_usage_error("--warmup-steps and --warmup-ratio do not go together");
	if (a.warmup_ratio >= 1)
		return tk_cli_usage_error("--warmup-ratio: '%g' is not below 1", a.warmup_ratio);
	if (a.bf16 && a.fp16)
		return tk_cli_usage_error("--bf16 and --fp16 do not go together (pick one)");
	if (train.optim == TK_OPTIM_ADAMW_8BIT && train.zero)
		return tk_cli_usage_error("--optim %s does not go with --zero 1: bitsandbytes' "
					  "blocks of 256 do not split at the shards' bounds", a.optim);
	return 0;
}

/* One warning for the keys of the --config JSON that ask for what
 * tk-train cannot do (cannot_keys, set), naming them all. */
static void warn_cannot(const char *json)
{
	cJSON *root = cJSON_Parse(json);
	int push = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "push_to_hub"));
	char names[512] = "";
	for (cJSON *it = root ? root->child : NULL; it; it = it->next) {
		int set = cJSON_IsTrue(it) || (cJSON_IsNumber(it) && it->valuedouble != 0) ||
			  (cJSON_IsString(it) && it->valuestring[0]) ||
			  ((cJSON_IsArray(it) || cJSON_IsObject(it)) && it->child);
		int hub = push && !strncmp(it->string, "hub_", 4);
		size_t n = strlen(names);
		if (set && (hub || listed(cannot_keys, it->string)))
			snprintf(names + n, sizeof(names) - n, "%s%s", n ? ", " : "", it->string);
	}
	cJSON_Delete(root);
	if (names[0] && !a.quiet)
		fprintf(stderr, "%s: warning: %s: %s: not done by tk-train, going on without%s\n",
			tk_prog, a.config, names, push ? " (to upload OUT: "
			"huggingface-cli upload REPO OUT)" : "");
}

/* use_cpu: true in the --config JSON (or no_cuda: true, its old name in
 * transformers) is --device cpu, unless a device is named already (by the
 * file, or by the command line, which wins anyway). */
static void take_use_cpu(const char *json)
{
	cJSON *root = cJSON_Parse(json);
	if (!a.device && (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_cpu")) ||
			  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "no_cuda"))))
		a.device = "cpu";
	cJSON_Delete(root);
}

/* --config: the JSON, then the command line again so that it wins. */
static int apply_config(int argc, char **argv, void **hold)
{
	struct tk_diag d;
	struct tk_buf b = { 0 };
	int given[sizeof(opts) / sizeof(opts[0])];
	/* list options add up: the file's lists replace nothing given on the
	 * command line, whose lists are parsed again below and replace the
	 * file's */
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		struct tk_strlist *l = opts[i].value;
		given[i] = opts[i].type == TK_OPT_TYPE_LIST && l->n;
		if (given[i])
			l->n = 0;
	}
	int rc = tk_read_file(a.config, &b, &d);
	if (rc)
		return tk_cli_fail(rc, &d);
	rc = tk_options_apply_json(opts, b.data, a.config, ignored_keys, hold, &d);
	if (!rc) {
		warn_cannot(b.data);
		take_use_cpu(b.data);
	}
	tk_buf_free(&b);
	if (rc)
		return tk_cli_fail(rc, &d);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (given[i])
			((struct tk_strlist *)opts[i].value)->n = 0;
	int npos;
	if ((rc = tk_options_parse(argc, argv, opts, &npos, &d)))
		return tk_cli_usage_error("%s", d.msg);
	return 0;
}

/* v as a JSON number, or null when it is not finite (JSON has no nan). */
static const char *jnum(char *buf, size_t size, const char *fmt, double v)
{
	if (!isfinite(v))
		return "null";
	snprintf(buf, size, fmt, v);
	return buf;
}

/* Data parallel: a rank that failed ends the job (the others may wait in an
 * all-reduce); the others leave MPI. */
static int dist_exit(int ec)
{
	if (ec)
		tk_dist_abort(ec);
	tk_dist_finalize();
	return ec;
}

/* argv before parsing (which reorders it), for the second pass; lives
 * until exit. */
static char **copy;

int main(int argc, char **argv)
{
	tk_cli_init(argv[0]);
	assert(!tk_options_json_key_taken(opts, ignored_keys));
	assert(!tk_options_json_key_taken(opts, cannot_keys));
	copy = calloc((size_t)argc + 1, sizeof(*copy));
	if (!copy)
		return tk_cli_error("out of memory");
	memcpy(copy, argv, (size_t)argc * sizeof(*copy));
	tk_train_opts_init(&train);
	tk_lora_config_init(&lora);
	int npos, exit_now;
	int ec = tk_cli_parse(argc, argv, opts, usage, about, &npos, &exit_now);
	if (exit_now)
		return ec;
	if (npos)
		return tk_cli_usage_error("unexpected argument '%s'", argv[0]);
	void *hold = NULL;
	if (a.config && (ec = apply_config(argc, copy, &hold)))
		return ec;
	if ((ec = check_args())) {
		tk_options_json_free(hold);
		return ec;
	}

	static struct view v;
	v.quiet = a.quiet;
	tk_status_init(&v.st, !a.quiet);
	if ((ec = report_setup(&v)))
		return ec;
	if (a.warmup_ratio_given)
		train.warmup = a.warmup_ratio;
	if ((ec = lora_setup(&lora)))
		return ec;
	if ((ec = gguf_model(&train, &lora)))
		return ec;

	struct tk_backend be;
	struct tk_diag d;
	int rc = tk_dist_init(&d);
	if (tk_dist_size() > 1) /* whole lines from each process */
		setvbuf(stderr, NULL, _IOLBF, 0);
	v.quiet |= tk_dist_rank() > 0; /* rank 0 alone reports */
	v.report &= tk_dist_rank() == 0;
	char spec[32]; /* several ranks: cuda:(local rank mod devices) */
	if (rc || (rc = tk_cli_backend(&be, tk_dist_device_spec(a.device, spec, sizeof(spec)),
				       (int)a.threads, a.quiet, &d))) {
		tk_options_json_free(hold);
		return dist_exit(tk_cli_fail(rc, &d));
	}
	if ((ec = prec_setup(&be, &train))) {
		tk_backend_free(&be);
		tk_options_json_free(hold);
		return dist_exit(ec);
	}
	eval_data_note();
	train.be = &be;
	train.on_event = on_event;
	train.ctx = &v;
	double eval_loss = -1; /* a loss is never negative: -1 until evaluated */
	rc = tk_train_run(&train, &eval_loss, &d);
	tk_status_clear(&v.st); /* a redrawn line, before a message */
	if (rc && tk_dist_rank()) /* where rank 0 failed alike, its abort ends us first */
		sleep(1);
	tk_backend_free(&be);
	tk_options_json_free(hold);
	report_end(&v, rc && !train.resume);
	if (rc == TK_E_INVAL && !d.msg[0])
		return dist_exit(tk_cli_usage_error("invalid options"));
	if (rc == TK_E_INVAL && !d.path[0])
		return dist_exit(tk_cli_usage_error("%s", d.msg));
	char b1[32], b2[32], b3[32], b4[32];
	/* --eval-only: the metrics also when the loss is not finite (then
	 * null, and exit 1 with the error) */
	if (train.eval_only && !tk_dist_rank() && (!rc || (rc == TK_E_FORMAT && eval_loss != -1)))
		printf("{\"eval_loss\": %s, \"eval_perplexity\": %s}\n",
		       jnum(b1, sizeof(b1), "%.9g", eval_loss),
		       jnum(b2, sizeof(b2), "%.9g", exp(eval_loss)));
	if (rc || tk_dist_rank()) {
		fflush(stdout);
		return dist_exit(rc ? tk_cli_fail(rc, &d) : 0);
	}
	if (!train.eval_only)
		printf("{\"global_step\": %ld, \"epoch\": %s, \"train_loss\": %s, "
		       "\"train_runtime\": %s, \"train_tokens_per_second\": %s}\n", v.end.step,
		       jnum(b1, sizeof(b1), "%.9g", v.end.epoch), jnum(b2, sizeof(b2), "%.9g", v.end.loss),
		       jnum(b3, sizeof(b3), "%.4f", v.end.elapsed),
		       jnum(b4, sizeof(b4), "%.1f", v.end.tokens_per_s));
	if (fflush(stdout))
		return dist_exit(tk_cli_error("<stdout>: write failed"));
	return dist_exit(v.tb_rc ? TK_EXIT_FAIL : TK_EXIT_OK);
}

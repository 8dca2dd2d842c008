/* train.c - see train.h.  The loop follows transformers' Trainer
 * (_inner_training_loop, _run_epoch, _maybe_log_save_evaluate,
 * DefaultFlowCallback) so that steps, epochs, logs, evaluations and saves
 * happen at the same points with the same values.  This file runs it from
 * the options to the end; train-int.h says which file does what. */
#include "train/train.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/afile.h"
#include "base/path.h"
#include "compute/bf16.h"
#include "compute/dist.h"
#include "formats/config.h"
#include "train/train-int.h"

void tk_train_opts_init(struct tk_train_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->num_train_epochs = 3;
	o->max_steps = -1;
	o->batch = 8;
	o->eval_batch = 8;
	o->grad_accum = 1;
	o->lr = 5e-5;
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->eps = 1e-8;
	o->max_grad_norm = 1.0;
	o->sched = TK_SCHED_LINEAR;
	o->logging_steps = 500;
	o->eval_strategy = TK_INTERVAL_NO;
	o->save_strategy = TK_INTERVAL_STEPS;
	o->save_steps = 500;
	o->greater_is_better = -1;
	o->seed = 42;
	o->shuffle = 1;
	o->prec = TK_PREC_FP32;
	o->initial_scale_power = 16;
	o->loss_scale_window = 2000;
}

double train_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int train_event(struct trainer *tr, struct tk_train_event *ev)
{
	struct tk_mem_info mi;
	if (tr->planned && !tk_backend_mem_info(tr->be, &mi)) {
		ev->mem_planned = tr->mplan.total;
		ev->mem_in_use = mi.in_use;
		ev->mem_peak = mi.peak;
		ev->mem_limit = mi.limit;
		ev->dev_used = mi.dev_used;
		ev->dev_total = mi.dev_total;
	}
	if (tr->o->on_event)
		tr->o->on_event(tr->o->ctx, ev);
	return 0;
}

/* Steps from a TrainingArguments interval: >= 1 steps, < 1 a fraction of
 * max_steps (rounded up). */
static long interval(double v, long max_steps)
{
	if (v >= 1)
		return (long)v;
	long s = (long)ceil((double)max_steps * v);
	return s > 0 ? s : 1;
}

static uint64_t hash_data(const struct tk_data *dt)
{
	uint64_t h = TK_FNV1A64_INIT;
	size_t n = (size_t)(dt->n_blocks * dt->seq_len);
	h = tk_fnv1a64(h, dt->ids, n * sizeof(*dt->ids));
	if (dt->mask)
		h = tk_fnv1a64(h, dt->mask, n);
	return h;
}

/* metric_for_best_model: the Trainer's default, "loss", where it sets one */
static const char *metric_name(const struct tk_train_opts *o)
{
	if (o->metric_for_best_model)
		return o->metric_for_best_model;
	return o->load_best_model_at_end || o->sched == TK_SCHED_REDUCE_ON_PLATEAU ? "loss" : NULL;
}

static int metric_of(const char *name)
{
	if (!name)
		return METRIC_NONE;
	if (!strncmp(name, "eval_", 5))
		name += 5;
	return !strcmp(name, "loss") ? METRIC_LOSS : !strcmp(name, "perplexity") ? METRIC_PERPLEXITY
										 : -1;
}

/* The Trainer's checks of load_best_model_at_end, save_strategy best and
 * EarlyStoppingCallback's, as TrainingArguments and the callback make them. */
static int check_best(const struct tk_train_opts *o, struct tk_diag *d)
{
	const char *name = metric_name(o);
	if (metric_of(name) < 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "metric_for_best_model '%.60s' is not "
				   "a metric tk-train evaluates (use loss or perplexity)", name);
	if (o->save_strategy == TK_INTERVAL_BEST && !name)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "save_strategy best needs "
				   "--metric-for-best-model (e.g. loss)");
	if ((o->save_strategy == TK_INTERVAL_BEST || o->early_stopping_patience > 0 ||
	     o->load_best_model_at_end) && o->eval_strategy == TK_INTERVAL_NO)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%s needs an eval strategy "
				   "(--eval-strategy steps or epoch, and --eval-data)",
				   o->early_stopping_patience > 0 ? "early stopping" :
				   o->load_best_model_at_end ? "load_best_model_at_end" :
				   "save_strategy best");
	if (o->early_stopping_patience > 0 && !name)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "early stopping needs "
				   "--metric-for-best-model (e.g. loss) or --load-best-model-at-end");
	if (o->early_stopping_patience < 0 || !(o->early_stopping_threshold >= 0))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "early_stopping_patience and threshold must be 0 or above");
	if ((o->early_stopping_patience > 0 || o->save_strategy == TK_INTERVAL_BEST) &&
	    tk_dist_size() > 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "early stopping and save_strategy best "
				   "are not supported in data-parallel runs (only rank 0 evaluates)");
	if (!o->load_best_model_at_end || o->save_strategy == TK_INTERVAL_BEST)
		return 0;
	if (o->eval_strategy != o->save_strategy)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "load_best_model_at_end needs the save "
				   "and eval strategies to match (or --save-strategy best)");
	double e = o->eval_steps > 0 ? o->eval_steps : o->logging_steps, s = o->save_steps;
	if (o->eval_strategy == TK_INTERVAL_STEPS &&
	    ((e >= 1) != (s >= 1) || (e >= 1 && fmod(s, e) != 0) ||
	     (e < 1 && fmod(round(s * 1e6), round(e * 1e6)) != 0)))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "load_best_model_at_end needs "
				   "save_steps (%g) to be a multiple of eval_steps (%g)", s, e);
	return 0;
}

int tk_train_optim_parse(const char *name, int *optim, struct tk_diag *d)
{
	if (!strcmp(name, "adamw_torch") || !strcmp(name, "adamw_torch_fused"))
		*optim = TK_OPTIM_ADAMW_TORCH;
	else if (!strcmp(name, "adamw_8bit") || !strcmp(name, "adamw_bnb_8bit") ||
		 !strcmp(name, "paged_adamw_8bit"))
		*optim = TK_OPTIM_ADAMW_8BIT;
	else
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "optim %s is not one of adamw_torch, "
				   "adamw_torch_fused, adamw_8bit, adamw_bnb_8bit, paged_adamw_8bit",
				   name);
	return 0;
}


static int check_opts(const struct tk_train_opts *o, struct tk_diag *d)
{
	if (!o->model_dir && !o->init_config && !o->resume)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "no model (use --model DIR or --init CONFIG.json)");
	if (o->model_dir && o->init_config)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "--model and --init do not go together");
	if (o->resume && o->adapter)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "--adapter does not go with --resume-from-checkpoint: the checkpoint "
				   "holds the adapter that resumes (leave it out)");
	if (!o->data && (!o->resume || o->eval_only))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "no data (use --data DIR|FILE|-)");
	if (!o->output_dir && !o->eval_only)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "no output directory (use --output-dir DIR)");
	if (tk_dist_size() > 1 && o->data && !strcmp(o->data, "-"))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "--data -: under mpirun only rank 0 reads stdin (give a file or "
				   "directory)");
	if (o->eval_only && o->resume && !o->output_dir && !strcmp(o->resume, "latest"))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "--resume-from-checkpoint latest needs --output-dir");
	if (o->batch < 1 || o->eval_batch < 1 || o->grad_accum < 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "batch sizes and accumulation must be >= 1");
	if (o->max_steps <= 0 && !(o->num_train_epochs > 0))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "nothing to train: num_train_epochs and max_steps are both 0");
	if (o->logging_steps <= 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "logging_steps must be above 0");
	if (!(o->neftune_alpha >= 0 && o->neftune_alpha < 1e30))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "neftune_noise_alpha must be 0 or above");
	if (o->sched == TK_SCHED_REDUCE_ON_PLATEAU && o->eval_strategy == TK_INTERVAL_NO &&
	    !o->eval_only)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "lr_scheduler_type reduce_lr_on_plateau "
				   "lowers the rate when eval_loss stops improving: it needs an "
				   "eval strategy (--eval-strategy steps or epoch, and --eval-data)");
	int rc = o->eval_only ? 0 : check_best(o, d);
	if (rc)
		return rc;
	if (o->sched == TK_SCHED_REDUCE_ON_PLATEAU && tk_dist_size() > 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "reduce_lr_on_plateau is not supported "
				   "in data-parallel runs (only rank 0 evaluates)");
	if (o->prec < TK_PREC_FP32 || o->prec > TK_PREC_FP16)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "unknown precision %d", o->prec);
	if (o->initial_scale_power < 0 || o->initial_scale_power > 127)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "--initial-scale-power: %d is not in 0..127", o->initial_scale_power);
	if (o->loss_scale_window < 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "--loss-scale-window must be >= 1");
	if (o->zero < 0 || o->zero > 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "--zero: stage %d is not 0 or 1", o->zero);
	if (o->optim != TK_OPTIM_ADAMW_TORCH && o->optim != TK_OPTIM_ADAMW_8BIT)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "unknown optimizer %d", o->optim);
	for (int k = 0; k < 2; k++) { /* torch.optim.AdamW's and bitsandbytes' checks */
		double b = k ? o->beta2 : o->beta1;
		if (!(b >= 0 && b < 1))
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "adam_beta%d: %g is not in [0, 1) "
					   "(torch.optim.AdamW and bitsandbytes refuse it)", k + 1, b);
	}
	if (!(o->lr >= 0) || !(o->eps >= 0) || !(o->weight_decay >= 0))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "learning_rate, adam_epsilon and "
				   "weight_decay must not be negative");
	if (o->optim == TK_OPTIM_ADAMW_8BIT && o->zero)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "--optim adamw_8bit with --zero 1: "
				   "bitsandbytes' blocks of 256 do not split at the shards' "
				   "bounds (use --zero 0)");
	if (o->save_strategy == TK_INTERVAL_STEPS && o->save_steps <= 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "save_strategy steps needs save_steps above 0");
	return 0;
}

static void train_free(struct trainer *tr)
{
	tk_model_free(&tr->m);
	tk_data_free(&tr->train);
	tk_data_free(&tr->eval);
	tk_backend_free_mem(tr->be, tr->exp_avg);
	tk_backend_free_mem(tr->be, tr->exp_avg_sq);
	tk_adamw8_state_free(&tr->a8);
	free(tr->popt);
	free(tr->seg);
	free(tr->zoff);
	free(tr->zbound);
	free(tr->zcnt);
	free(tr->zwin);
	free(tr->zwin2);
	free(tr->zrun);
	free(tr->ztmp);
	free(tr->ids);
	free(tr->labels);
	free(tr->targets);
	free(tr->rows);
	cJSON_Delete(tr->log_history);
	train_state_file_free(&tr->resumed);
	if (tr->metrics)
		fclose(tr->metrics);
	train_unlock_output(tr);
}

/* Schedules and intervals from the data size, as set_initial_training_values. */
static int plan(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	uint64_t nb = tr->train.n_blocks;
	tr->steps_in_epoch = (long)((nb + (uint64_t)o->batch - 1) / (uint64_t)o->batch);
	long ga = (long)o->grad_accum * tk_dist_size(); /* micro-batches per step, all ranks */
	tr->nupe = tr->steps_in_epoch / ga + (tr->steps_in_epoch % ga > 0);
	if (tr->nupe < 1)
		tr->nupe = 1;
	if (o->max_steps > 0) {
		tr->max_steps = (long)o->max_steps;
		tr->num_epochs = tr->max_steps / tr->nupe + (tr->max_steps % tr->nupe > 0);
	} else {
		tr->max_steps = (long)ceil(o->num_train_epochs * (double)tr->nupe);
		tr->num_epochs = (long)ceil(o->num_train_epochs);
	}
	tr->logging_steps = interval(o->logging_steps, tr->max_steps);
	tr->eval_steps = interval(o->eval_steps > 0 ? o->eval_steps : o->logging_steps,
				  tr->max_steps);
	tr->save_steps = interval(o->save_steps > 0 ? o->save_steps : 500, tr->max_steps);
	const char *mname = metric_name(o);
	tr->metric = metric_of(mname) > 0 ? metric_of(mname) : METRIC_NONE;
	tr->best.greater = o->greater_is_better >= 0 ? o->greater_is_better
			   : mname && !strstr(mname, "loss") ? 1 : 0; /* as the Trainer */
	tr->best.patience = o->early_stopping_patience;
	tr->best.threshold = o->early_stopping_threshold;
	tk_sched_init(&tr->sched, o->sched, o->lr, tk_sched_warmup_steps(o->warmup, tr->max_steps),
		      tr->max_steps);
	return tk_sched_kwargs(&tr->sched, o->sched_kwargs, d);
}

static int setup(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	int rc;
	if (o->output_dir)
		snprintf(tr->out, sizeof(tr->out), "%s", o->output_dir);
	if (!o->eval_only && !tk_dist_rank() && tr->out[0] && (rc = train_lock_output(tr, d)))
		return rc;
	if (o->resume && !strcmp(o->resume, "latest")) {
		if ((rc = tk_train_latest_checkpoint(tr->out, tr->resume_dir, sizeof(tr->resume_dir),
						     d)))
			return rc;
	} else if (o->resume) {
		if (!tk_path_is_dir(o->resume))
			return tk_diag_set(d, TK_E_FORMAT, o->resume, -1,
					   "no such checkpoint directory");
		snprintf(tr->resume_dir, sizeof(tr->resume_dir), "%s", o->resume);
	}
	if (tr->resume_dir[0] && ((rc = train_read_state(tr, &tr->resumed, d)) ||
				  (rc = train_read_source(tr, &tr->resumed, d))))
		return rc;
	if (o->data)
		snprintf(tr->data_path, sizeof(tr->data_path), "%s", o->data);
	else if ((rc = train_stored_data_path(tr, &tr->resumed, d)))
		return rc;
	if ((rc = train_load_model(tr, d)))
		return rc;
	if (!o->eval_only && !tk_dist_rank() && (rc = train_prepare_output(tr, d)))
		return rc;
	if ((rc = train_load_data(tr, d)))
		return rc;
	if ((o->eval_only || o->eval_strategy != TK_INTERVAL_NO) && !tr->eval.n_blocks)
		return tk_diag_set(d, TK_E_INVAL, tr->data_path, -1,
				   "no eval blocks to evaluate (tk-pack --eval-fraction writes "
				   "eval-*.tks, or give --eval-data)");
	return 0;
}

int tk_train_set_prec(struct tk_backend *be, int prec, int *used, struct tk_diag *d)
{
	struct tk_diag why = { 0 };
	int rc = tk_backend_set_prec(be, prec, &why);
	*used = rc ? be->prec : prec;
	if (rc == TK_E_UNSUPPORTED && prec == TK_PREC_BF16 &&
	    !tk_backend_set_prec(be, TK_PREC_FP16, NULL)) {
		*used = TK_PREC_FP16;
		tk_diag_set(d, 0, NULL, -1, "%s; training in fp16 with loss scaling instead",
			    why.msg);
		return 0;
	}
	if (rc) {
		if (d)
			*d = why;
		return rc;
	}
	if (d)
		d->msg[0] = 0;
	if (prec == TK_PREC_BF16 && !strcmp(be->i->name, "cpu") &&
	    tk_bf16_path() == TK_BF16_EMULATE)
		tk_diag_set(d, 0, NULL, -1, "--bf16 on this CPU: %s", tk_bf16_describe());
	return 0;
}

/* --eval-only: *eval_loss (NULL: not wanted) gets the loss whenever it was
 * computed; one that is not finite is TK_E_FORMAT, as training stops on a
 * loss that is not. */
static int eval_only(struct trainer *tr, double *eval_loss, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	double loss;
	int rc = train_evaluate(tr, &loss, d);
	if (!rc && eval_loss)
		*eval_loss = loss;
	if (!rc && !isfinite(loss))
		rc = tk_diag_set(d, TK_E_FORMAT, tr->resume_dir[0] ? tr->resume_dir :
				 o->model_dir ? o->model_dir : o->init_config, -1,
				 "eval_loss is %s: the model's loss on the eval blocks is not "
				 "a finite number (are its weights finite?)",
				 isnan(loss) ? "nan" : "inf");
	return rc;
}

/* What the loop needs once the model and data are loaded: the schedule and
 * intervals, the memory plan, the optimizer state, the batch buffers, a
 * resumed checkpoint's state, metrics.jsonl, and rank 0's weights on every
 * rank (as DDP). */
static int prepare(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	int rc;
	tr->data_hash = hash_data(&tr->train);
	tr->T = (int)tr->train.seq_len;
	if ((rc = plan(tr, d)) || (rc = train_mem_plan(tr, d)) || (rc = train_opt_setup(tr, d)))
		return rc;
	size_t per = (size_t)o->batch * tr->T * o->grad_accum;
	tr->ids = tk_mallocn(per, sizeof(*tr->ids));
	tr->labels = tk_mallocn(per, sizeof(*tr->labels));
	tr->targets = tk_mallocn(per, sizeof(*tr->targets));
	tr->rows = tk_mallocn((size_t)o->grad_accum, sizeof(*tr->rows));
	tr->log_history = cJSON_CreateArray();
	if (!tr->ids || !tr->labels || !tr->targets || !tr->rows || !tr->log_history)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	if (tr->resume_dir[0] && (rc = train_load_checkpoint(tr, d)))
		return rc;
	if (!tk_dist_rank() && (rc = train_open_metrics(tr, d)))
		return rc;
	for (int i = 0; i < tr->n_tp && !rc; i++)
		rc = tk_dist_bcast(tr->tp[i].p, tr->tp[i].n * sizeof(float), 0, d);
	return rc;
}

/* The start event, the loop, the final model; then a rotation, as a run
 * killed between a save and its rotation leaves one checkpoint too many,
 * which a resumed run that saves nothing more would keep. */
static int train(struct trainer *tr, struct tk_diag *d)
{
	uint64_t trainable = 0;
	int rc;
	tr->first_step = tr->global_step;
	for (int i = 0; i < tr->n_tp; i++)
		trainable += tr->tp[i].n;
	struct tk_train_event ev = { .kind = TK_TRAIN_EV_START,
				     .n_params = tk_model_count_params(&tr->m),
				     .trainable = trainable,
				     .n_blocks = tr->train.n_blocks,
				     .n_eval_blocks = tr->eval.n_blocks, .seq_len = tr->T,
				     .step = tr->global_step, .max_steps = tr->max_steps,
				     .first_step = tr->first_step, .epoch = tr->epoch_f,
				     .dropout = tk_config_max_dropout(&tr->m.cfg),
				     .vocab_taken = tr->vocab_taken ? tr->m.cfg.vocab_size : 0,
				     .opt_bytes = 2 * tr->n_opt * sizeof(float),
				     .opt_bytes_full = 2 * tr->n_opt_full * sizeof(float) };
	if (tr->a8.mem) /* bitsandbytes' 8-bit state; fp32 AdamW's for comparison */
		ev.opt_bytes = tr->a8.bytes;
	train_event(tr, &ev);
	tr->t0 = train_now();
	if (!(rc = train_loop(tr, d)))
		rc = train_finish(tr, d);
	if (!rc && !tk_dist_rank())
		rc = train_rotate(tr, d);
	return rc;
}

/* After a failure: the message of an allocation that failed although the
 * plan fitted, and what the run made that holds nothing worth keeping
 * removed (an output directory it created, else its metrics and spill). */
static void failed(struct trainer *tr, int rc, struct tk_diag *d)
{
	if (rc == TK_E_NOMEM && tr->planned)
		train_oom_message(tr, d);
	if (!tr->saved && tr->created_top[0]) /* made by this run, nothing in it */
		tk_afile_rmtree(tr->created_top);
	else if (!tr->o->resume && !tr->saved && tr->out[0]) { /* nothing worth keeping */
		char p[PATH_LEN];
		if (tr->metrics && !tk_path_join(p, sizeof(p), tr->out, "metrics.jsonl"))
			unlink(p);
		if (tr->spilled && !tk_path_join(p, sizeof(p), tr->out, SPILL_NAME))
			unlink(p);
	}
}

int tk_train_run(const struct tk_train_opts *o, double *eval_loss, struct tk_diag *d)
{
	struct trainer tr;
	memset(&tr, 0, sizeof(tr));
	tr.lock_fd = -1;
	tr.o = o;
	tr.be = o->be;
	tr.last_eval_loss = NAN;
	tr.loss_scale = ldexpf(1.0f, o->initial_scale_power);
	int rc = check_opts(o, d);
	if (!rc)
		rc = tk_backend_set_prec(o->be, o->prec, d);
	if (!rc)
		rc = setup(&tr, d);
	if (!rc && o->eval_only) {
		rc = eval_only(&tr, eval_loss, d);
		train_free(&tr);
		return rc;
	}
	if (!rc)
		rc = prepare(&tr, d);
	if (!rc)
		rc = train(&tr, d);
	if (rc)
		failed(&tr, rc, d);
	train_free(&tr);
	return rc;
}

/* loop.c - the training loop (train-int.h): epochs of optimizer steps as
 * the Trainer's _inner_training_loop, each step's micro-batches, loss
 * scaling, gradient norm, clipping and AdamW, evaluation, the log entries
 * (log_history and metrics.jsonl) and the run's summary. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/afile.h"
#include "base/path.h"
#include "compute/bf16.h"
#include "compute/blas.h"
#include "compute/dist.h"
#include "train/train-int.h"

/* One log_history entry: to the history, to metrics.jsonl. */
static int log_entry(struct trainer *tr, cJSON *e, struct tk_diag *d)
{
	add_num(e, "epoch", tr->epoch_f);
	add_num(e, "step", (double)tr->global_step);
	cJSON_AddItemToArray(tr->log_history, e);
	if (!tr->metrics)
		return 0;
	char *line = cJSON_PrintUnformatted(e);
	if (!line)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	int bad = fprintf(tr->metrics, "%s\n", line) < 0 || fflush(tr->metrics);
	cJSON_free(line);
	if (bad) {
		return tk_diag_sys(d, tr->metrics_path, "write failed");
	}
	return 0;
}

/* HF's num_items_in_batch for n rows: the labels that are not -100.
 * transformers' Trainer counts labels[..., 1:] (the predicted positions)
 * only for models whose loss_type is ForCausalLM (LlamaForCausalLM,
 * MistralForCausalLM, Qwen2ForCausalLM); GPT2LMHeadModel has no loss_type,
 * so there it counts every label, position 0 of each row included.  The
 * loss it reports and the gradient it takes are the sum over the counted
 * predictions divided by that number, so tk counts alike. */
static long count_items(const struct trainer *tr, const int32_t *labels, const int32_t *targets,
			size_t n)
{
	long c = 0;
	const int32_t *v = tr->m.cfg.arch == TK_ARCH_GPT2 ? labels : targets;
	for (size_t i = 0; i < n; i++)
		c += v[i] != -100 && v[i] >= 0;
	return c;
}

/* eval_loss as Trainer.evaluate(): the mean over blocks of their batch's
 * mean loss (each batch's loss repeated batch-size times), in fp32. */
int train_evaluate(struct trainer *tr, double *out, struct tk_diag *d)
{
	const struct tk_data *ev = &tr->eval;
	int T = (int)ev->seq_len, eb = tr->o->eval_batch;
	uint64_t *order;
	if (tk_data_order(ev, 0, 0, 0, &order))
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	uint32_t *ids = tk_mallocn((size_t)eb * T, sizeof(*ids));
	int32_t *labels = tk_mallocn((size_t)eb * T, sizeof(*labels));
	int32_t *targets = tk_mallocn((size_t)eb * T, sizeof(*targets));
	int rc = 0;
	if (!ids || !labels || !targets)
		rc = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	double acc = 0;
	for (uint64_t first = 0; first < ev->n_blocks && !rc; first += (uint64_t)eb) {
		int n = (int)(ev->n_blocks - first < (uint64_t)eb ? ev->n_blocks - first : (uint64_t)eb);
		tk_data_batch(ev, order, first, n, ids, labels);
		tk_model_shift_labels(labels, n, T, targets);
		struct tk_model_loss l;
		if ((rc = tk_model_forward(&tr->m, ids, targets, n, T, 0, 0, &l, d)))
			break;
		long items = count_items(tr, labels, targets, (size_t)n * T);
		float lb = items ? (float)(l.sum / (double)items) : NAN;
		acc += (double)lb * n;
	}
	free(order);
	free(ids);
	free(labels);
	free(targets);
	if (!rc)
		*out = (double)(float)(acc / (double)ev->n_blocks);
	return rc;
}

static int do_eval(struct trainer *tr, struct tk_diag *d)
{
	double t = train_now(), loss;
	if (tk_dist_rank()) /* data parallel: rank 0 evaluates and logs */
		return 0;
	int rc = train_evaluate(tr, &loss, d);
	if (rc)
		return rc;
	double rt = train_now() - t;
	long nb = (long)((tr->eval.n_blocks + tr->o->eval_batch - 1) / tr->o->eval_batch);
	cJSON *e = cJSON_CreateObject();
	if (!e)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	add_num(e, "eval_loss", loss);
	add_num(e, "eval_perplexity", exp(loss));
	add_num(e, "eval_runtime", round(rt * 1e4) / 1e4);
	add_num(e, "eval_samples_per_second",
		rt > 0 ? round((double)tr->eval.n_blocks / rt * 1e3) / 1e3 : 0);
	add_num(e, "eval_steps_per_second", rt > 0 ? round(nb / rt * 1e3) / 1e3 : 0);
	tr->last_eval_loss = loss;
	/* the metric: EarlyStoppingCallback, then _determine_best_metric, then
	 * ReduceLROnPlateau, in the Trainer's order */
	double value = tr->metric == METRIC_PERPLEXITY ? exp(loss) : loss;
	tr->new_best = tr->metric ? tk_best_eval(&tr->best, value, tr->global_step,
						 &tr->stop_early) : 0;
	if (tr->sched.type == TK_SCHED_REDUCE_ON_PLATEAU)
		tk_sched_plateau_step(&tr->sched, value);
	struct tk_train_event ev = { .kind = TK_TRAIN_EV_EVAL, .step = tr->global_step,
				     .max_steps = tr->max_steps, .epoch = tr->epoch_f,
				     .eval_loss = loss, .eval_perplexity = exp(loss) };
	train_event(tr, &ev);
	return log_entry(tr, e, d);
}

static int nonfinite(struct trainer *tr, const char *what, double v, struct tk_diag *d)
{
	char ck[PATH_LEN + 64];
	if (tr->saved)
		snprintf(ck, sizeof(ck), "the last good checkpoint is %s", tr->last_ckpt);
	else
		snprintf(ck, sizeof(ck), "no checkpoint was saved before it");
	return tk_diag_set(d, TK_E_FORMAT, NULL, -1,
			   "step %ld (epoch %.2f): %s is %s, training stopped (try a lower "
			   "--learning-rate); %s", tr->global_step + 1, tr->epoch_f, what,
			   isnan(v) ? "nan" : "inf", ck);
}

/* The optimizer steps taken: the scheduler's position (and AdamW's step
 * minus one).  Steps skipped for fp16 overflow do not count, as in the
 * Trainer (no lr_scheduler.step() after a skipped optimizer step). */
static long sched_pos(const struct trainer *tr)
{
	return tr->global_step - tr->skipped;
}

/* fp16: a micro-batch's loss is inf or NaN.  Its gradients are made NaN
 * (the first gradient element times NaN), so that the step is skipped
 * as GradScaler skips it - on every process, as the all-reduce carries the
 * NaN - and, as the Trainer's logging_nan_inf_filter, the running loss
 * gets the mean of the window so far instead of it. */
static int poison_step(struct trainer *tr, struct tk_diag *d)
{
	int rc = tk_scale(tr->be, tr->tp[0].g, NAN, 1);
	if (rc)
		return tk_diag_set(d, rc, NULL, -1, "loss scaling: %s", tk_strerror(rc));
	if (tk_dist_size() == 1)
		tr->tr_loss += tr->tr_loss / (float)(1 + tr->global_step - tr->last_logged);
	return 0;
}

/* The micro-batches of one optimizer step that this process computes. */
struct step {
	long mb0;       /* the first, in the epoch's order */
	int n_mb;       /* how many (perhaps none) */
	long items;     /* the predicted tokens of the whole step (every rank's) */
	double rows;    /* the rows of the whole step (every rank's) */
	float loss;     /* the step's loss (this process's part until reduced) */
};

/* Data parallel, rank r of N computes micro-batches [n_mb * r / N,
 * n_mb * (r + 1) / N) of the n_mb from mb0: the step sees the micro-batches
 * one process with N times the accumulation would.  Reads them into
 * tr->ids, labels and targets (tr->rows: each one's rows), and counts the
 * step's items and rows over the ranks. */
static int read_batches(struct trainer *tr, const uint64_t *order, long mb0, int n_mb,
			struct step *s, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	int T = tr->T, world = tk_dist_size(), rank = tk_dist_rank();
	size_t per = (size_t)o->batch * T;
	long items = 0;
	double counts[2] = { 0, 0 }; /* items, rows */
	long skip = (long)n_mb * rank / world; /* the micro-batches of lower ranks */
	s->mb0 = mb0 + skip;
	s->n_mb = (int)((long)n_mb * (rank + 1) / world - skip);
	for (int i = 0; i < s->n_mb; i++) {
		uint64_t first = (uint64_t)(s->mb0 + i) * (uint64_t)o->batch;
		uint64_t left = tr->train.n_blocks - first;
		int n = left < (uint64_t)o->batch ? (int)left : o->batch;
		tr->rows[i] = n;
		tk_data_batch(&tr->train, order, first, n, tr->ids + i * per, tr->labels + i * per);
		tk_model_shift_labels(tr->labels + i * per, n, T, tr->targets + i * per);
		items += count_items(tr, tr->labels + i * per, tr->targets + i * per, (size_t)n * T);
		counts[1] += n;
	}
	counts[0] = (double)items;
	if (world > 1) {
		int rc = tk_dist_allreduce_f64(counts, 2, d);
		if (rc)
			return rc;
	}
	s->items = (long)counts[0];
	s->rows = counts[1];
	return 0;
}

/* The forward and backward passes of the step's micro-batches, from zeroed
 * gradients: each micro-batch's loss is its summed cross-entropy divided
 * by the step's items (fp16: the gradient of that times the loss scale, a
 * power of 2: exact).  s->loss gets their sum; one process counts the loss
 * and the tokens into the run's here, several after train_reduce_step. */
static int forward_backward(struct trainer *tr, struct step *s, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	struct tk_model *m = &tr->m;
	int T = tr->T, rc, world = tk_dist_size(), fp16 = o->prec == TK_PREC_FP16;
	size_t per = (size_t)o->batch * T;
	/* LoRA dropout masks are keyed by the micro-batch's place in the whole
	 * run (epoch and index): the same in a resumed run and on any number
	 * of processes */
	uint64_t mb_global = (uint64_t)tr->cur_epoch * (uint64_t)tr->steps_in_epoch +
			     (uint64_t)s->mb0;
	double gdiv = fp16 ? (double)s->items / (double)tr->loss_scale : (double)s->items;
	if ((rc = tk_model_zero_grad(m, d)))
		return rc;
	s->loss = 0;
	for (int i = 0; i < s->n_mb && s->items > 0; i++) {
		struct tk_model_loss l;
		if (m->lora) /* the forward counts it up by one */
			m->lora->step = mb_global + (uint64_t)i;
		m->noise_step = mb_global + (uint64_t)i; /* NEFTune's, as the masks */
		if ((rc = tk_model_forward(m, tr->ids + i * per, tr->targets + i * per, tr->rows[i],
					   T, 1, gdiv, &l, d)))
			return rc;
		float li = (float)(l.sum / (double)s->items);
		if (!isfinite(li) && !fp16)
			return nonfinite(tr, "the loss", li, d);
		if ((rc = tk_model_backward(m, d)))
			return rc;
		if (!isfinite(li)) {
			if ((rc = poison_step(tr, d)))
				return rc;
			continue;
		}
		s->loss += li;
		if (world > 1)
			continue;
		tr->tr_loss += li;
		tr->tokens_run += (uint64_t)tr->rows[i] * T;
		tr->tokens_seen += (uint64_t)tr->rows[i] * T;
	}
	return 0;
}

/* fp16, GradScaler.unscale_: this process's gradients times 1 / scale,
 * exact in fp32. */
static int unscale_grads(struct trainer *tr, struct tk_diag *d)
{
	const struct tr_seg *sg = tr->seg;
	float inv = (float)(1.0 / (double)tr->loss_scale);
	int rc = 0;
	for (int s = 0; s < tr->n_seg && !rc; s++)
		rc = tk_scale(tr->be, tr->tp[sg[s].i].g + sg[s].a, inv, sg[s].n);
	return rc ? tk_diag_set(d, rc, NULL, -1, "loss scaling: %s", tk_strerror(rc)) : 0;
}

/* The gradients' norm before clipping (ZeRO-1: the shards' sums of squares
 * summed over the ranks). */
static int grad_norm(struct trainer *tr, double *norm, struct tk_diag *d)
{
	const struct tr_seg *sg = tr->seg;
	double ss = 0;
	int rc = 0;
	for (int s = 0; s < tr->n_seg && !rc; s++)
		rc = tk_sum_squares(tr->be, &ss, tr->tp[sg[s].i].g + sg[s].a, sg[s].n);
	if (rc)
		return tk_diag_set(d, rc, NULL, -1, "gradient norm: %s", tk_strerror(rc));
	if (tr->o->zero && tk_dist_size() > 1 && (rc = tk_dist_allreduce_f64(&ss, 1, d)))
		return rc;
	*norm = sqrt(ss);
	return 0;
}

/* fp16, gradients that overflowed: GradScaler makes no optimizer step and
 * multiplies the scale by backoff_factor 0.5 (not below the smallest
 * float, as torch's fp32 scale). */
static void skip_update(struct trainer *tr)
{
	tr->step_skipped = 1;
	tr->skipped++;
	tr->growth_tracker = 0;
	if (tr->loss_scale * 0.5f > 0.0f)
		tr->loss_scale *= 0.5f;
}

/* clip_grad_norm_: the gradients times max_grad_norm / norm when the norm
 * is above it (max_grad_norm 0: never). */
static int clip_grads(struct trainer *tr, double norm, struct tk_diag *d)
{
	const struct tr_seg *sg = tr->seg;
	int rc = 0;
	if (tr->o->max_grad_norm <= 0)
		return 0;
	float coef = tk_clip_coef(tr->o->max_grad_norm, norm);
	for (int s = 0; s < tr->n_seg && coef < 1.0f && !rc; s++)
		rc = tk_scale(tr->be, tr->tp[sg[s].i].g + sg[s].a, coef, sg[s].n);
	return rc ? tk_diag_set(d, rc, NULL, -1, "clipping: %s", tk_strerror(rc)) : 0;
}

/* torch.optim.AdamW on this process's parts of the parameters, at the
 * scheduler's learning rate. */
static int adamw_update(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	const struct tr_seg *sg = tr->seg;
	double lr = tk_sched_lr(&tr->sched, sched_pos(tr));
	int rc = 0;
	if (o->optim == TK_OPTIM_ADAMW_8BIT)
		return tk_adamw8_state_step(&tr->a8, tr->tp, lr, o->beta1, o->beta2, o->eps,
					    o->weight_decay, (int)(sched_pos(tr) + 1), d);
	for (int s = 0; s < tr->n_seg && !rc; s++) {
		const struct tk_param *p = &tr->tp[sg[s].i];
		rc = tk_adamw(tr->be, p->p + sg[s].a, p->g + sg[s].a, tr->exp_avg + sg[s].loc,
			      tr->exp_avg_sq + sg[s].loc, sg[s].n, lr, o->beta1, o->beta2, o->eps,
			      p->decay ? o->weight_decay : 0.0, (int)(sched_pos(tr) + 1));
	}
	return rc ? tk_diag_set(d, rc, NULL, -1, "optimizer step: %s", tk_strerror(rc)) : 0;
}

/* fp16, after an update: GradScaler's growth_factor 2 once
 * loss_scale_window steps in a row were not skipped, kept while the scale
 * is finite. */
static void grow_scale(struct trainer *tr)
{
	if (++tr->growth_tracker < tr->o->loss_scale_window)
		return;
	if (isfinite(tr->loss_scale * 2.0f))
		tr->loss_scale *= 2.0f;
	tr->growth_tracker = 0;
}

/* One optimizer step over n_mb micro-batches starting at micro-batch mb0
 * of the epoch's order: *loss_out gets its loss, *norm_out its gradient
 * norm, and global_step counts it, skipped (fp16) or not. */
static int train_step(struct trainer *tr, const uint64_t *order, long mb0, int n_mb,
		      float *loss_out, double *norm_out, struct tk_diag *d)
{
	int fp16 = tr->o->prec == TK_PREC_FP16, several = tk_dist_size() > 1, rc;
	struct step s;
	double norm = 0;
	if ((rc = read_batches(tr, order, mb0, n_mb, &s, d)) ||
	    (rc = forward_backward(tr, &s, d)) ||
	    (several && (rc = train_reduce_step(tr, &s.loss, s.items, s.rows, d))) ||
	    (fp16 && (rc = unscale_grads(tr, d))) || (rc = grad_norm(tr, &norm, d)))
		return rc;
	tr->step_skipped = 0;
	if (!isfinite(norm) && fp16) {
		skip_update(tr);
	} else if (!isfinite(norm)) {
		return nonfinite(tr, "the gradient norm", norm, d);
	} else {
		if ((rc = clip_grads(tr, norm, d)) || (rc = adamw_update(tr, d)))
			return rc;
		/* ZeRO-1: every shard's new weights to every process */
		if (tr->o->zero && several && (rc = train_zero_allgather(tr, d)))
			return rc;
		if (fp16)
			grow_scale(tr);
	}
	tr->global_step++;
	*loss_out = s.loss;
	*norm_out = norm;
	return 0;
}

static int maybe_log(struct trainer *tr, double lr, double norm, float step_loss, int final,
		     struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	int rc = 0;
	int do_log = (tr->global_step == 1 && o->logging_first_step) ||
		     tr->global_step % tr->logging_steps == 0;
	int want_eval = o->eval_strategy == TK_INTERVAL_STEPS &&
		      (tr->global_step % tr->eval_steps == 0 || final);
	int do_save = o->save_strategy == TK_INTERVAL_STEPS &&
		      (tr->global_step % tr->save_steps == 0 || final);
	struct tk_train_event ev = { .kind = TK_TRAIN_EV_STEP, .step = tr->global_step,
				     .max_steps = tr->max_steps, .first_step = tr->first_step,
				     .epoch = tr->epoch_f, .loss = step_loss, .lr = lr,
				     .grad_norm = norm, .skipped = tr->step_skipped,
				     .loss_scale = o->prec == TK_PREC_FP16 ? tr->loss_scale : 0 };
	if (do_log && tr->global_step > tr->last_logged) {
		double loss = (double)tr->tr_loss / (double)(tr->global_step - tr->last_logged);
		tr->total_loss += (double)tr->tr_loss;
		tr->tr_loss = 0;
		tr->last_logged = tr->global_step;
		cJSON *e = cJSON_CreateObject();
		if (!e)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		add_num(e, "loss", loss);
		add_num(e, "grad_norm", norm);
		add_num(e, "learning_rate", lr);
		if ((rc = log_entry(tr, e, d)))
			return rc;
		ev.logged = 1;
		ev.logged_loss = loss;
	}
	ev.elapsed = train_now() - tr->t0;
	ev.tokens_per_s = ev.elapsed > 0 ? (double)tr->tokens_run / ev.elapsed : 0;
	train_event(tr, &ev);
	if (want_eval && (rc = do_eval(tr, d)))
		return rc;
	do_save |= o->save_strategy == TK_INTERVAL_BEST && want_eval && tr->new_best;
	if (do_save && (rc = train_save_checkpoint(tr, d)))
		return rc;
	return 0;
}

int train_loop(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	int rc = 0, stop = tr->global_step >= tr->max_steps;
	long ga = (long)o->grad_accum * tk_dist_size();
	for (long epoch = tr->global_step / tr->nupe; epoch < tr->num_epochs && !stop; epoch++) {
		uint64_t *order;
		if (tk_data_order(&tr->train, o->seed, (uint64_t)epoch, o->shuffle, &order))
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		long rem = tr->steps_in_epoch % ga ? tr->steps_in_epoch % ga : ga;
		long upd0 = epoch == tr->global_step / tr->nupe ? tr->global_step % tr->nupe : 0;
		for (long upd = upd0; upd < tr->nupe && !rc; upd++) {
			int n_mb = (int)(upd != tr->nupe - 1 ? ga : rem);
			double lr = tk_sched_lr(&tr->sched, sched_pos(tr));
			float loss = 0;
			double norm = 0;
			tr->cur_epoch = epoch;
			if ((rc = train_step(tr, order, upd * ga, n_mb, &loss, &norm, d)))
				break;
			long step_mb = upd * ga + n_mb - 1; /* HF's step within the epoch */
			tr->epoch_f = (double)epoch + (double)(step_mb + 1) / (double)tr->steps_in_epoch;
			stop = tr->global_step >= tr->max_steps;
			if ((rc = maybe_log(tr, lr, norm, loss, stop, d)))
				break;
			if (stop || (stop = tr->stop_early))
				break;
		}
		free(order);
		if (rc)
			return rc;
		if (o->eval_strategy == TK_INTERVAL_EPOCH && (rc = do_eval(tr, d)))
			return rc;
		if ((o->save_strategy == TK_INTERVAL_EPOCH ||
		     (o->save_strategy == TK_INTERVAL_BEST && o->eval_strategy == TK_INTERVAL_EPOCH &&
		      tr->new_best)) && (rc = train_save_checkpoint(tr, d)))
			return rc;
		stop |= tr->stop_early;
	}
	return 0;
}

int train_open_metrics(struct trainer *tr, struct tk_diag *d)
{
	char *path = tr->metrics_path;
	if (tk_path_join(path, sizeof(tr->metrics_path), tr->out, "metrics.jsonl"))
		return tk_diag_set(d, TK_E_INVAL, tr->out, -1, "path too long");
	if (tr->resume_dir[0]) { /* the history up to the checkpoint, then on */
		struct tk_afile f;
		int rc = tk_afile_open(&f, path, 1, d);
		if (rc)
			return rc;
		int n = cJSON_GetArraySize(tr->log_history);
		for (int i = 0; i < n && !rc; i++) {
			char *line = cJSON_PrintUnformatted(cJSON_GetArrayItem(tr->log_history, i));
			if (!line || fprintf(f.fp, "%s\n", line) < 0)
				rc = tk_diag_sys(d, path, "write failed");
			cJSON_free(line);
		}
		if (rc) {
			tk_afile_abort(&f);
			return rc;
		}
		if ((rc = tk_afile_commit(&f, d)))
			return rc;
	}
	if (!(tr->metrics = fopen(path, tr->resume_dir[0] ? "a" : "w")))
		return tk_diag_sys(d, path, "cannot create");
	return 0;
}

int train_finish(struct trainer *tr, struct tk_diag *d)
{
	double rt = train_now() - tr->t0;
	long steps = tr->global_step - tr->first_step;
	double train_loss = tr->global_step ? (tr->total_loss + tr->tr_loss) / (double)tr->global_step
					    : 0;
	cJSON *e = cJSON_CreateObject();
	if (!e)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	add_num(e, "train_runtime", round(rt * 1e4) / 1e4);
	add_num(e, "train_samples_per_second",
		rt > 0 ? round((double)steps * tr->o->batch * tr->o->grad_accum * tk_dist_size() /
			       rt * 1e3) / 1e3 : 0);
	add_num(e, "train_steps_per_second", rt > 0 ? round((double)steps / rt * 1e3) / 1e3 : 0);
	add_num(e, "total_flos", 0);
	add_num(e, "train_loss", train_loss);
	/* tk's addition (transformers' memory metrics are off by default): the
	 * process's peak resident memory, as the progress line shows it */
	struct rusage ru;
	if (!getrusage(RUSAGE_SELF, &ru))
		add_num(e, "train_mem_peak_rss_mb", round(ru.ru_maxrss / 1024.0 * 10) / 10);
	/* and the CPU's GEMM kernel (blas.h), so that a run's speed can be
	 * read with the kernel it ran on */
	if (tk_blas_kernel_name()[0] && !cJSON_AddStringToObject(e, "train_cpu_gemm_kernel",
								 tk_blas_kernel_name())) {
		cJSON_Delete(e);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	/* and, for --bf16 on the CPU, the path its matmuls took (bf16.h) */
	if (tr->o->prec == TK_PREC_BF16 && !strcmp(tr->be->i->name, "cpu") &&
	    !cJSON_AddStringToObject(e, "train_cpu_bf16_path", tk_bf16_path_name(tk_bf16_path()))) {
		cJSON_Delete(e);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	/* on a device that reports its memory (CUDA): nvidia-smi's used now,
	 * and the peak of what tk allocated there */
	struct tk_mem_info mi;
	if (!tk_backend_mem_info(tr->be, &mi) && mi.dev_total) {
		add_num(e, "train_device_mem_used_mb", round(mi.dev_used / 1048576.0 * 10) / 10);
		add_num(e, "train_device_mem_peak_mb", round(mi.peak / 1048576.0 * 10) / 10);
	}
	int rc = log_entry(tr, e, d);
	if (!rc && !tk_dist_rank() && tr->o->load_best_model_at_end && tr->best_ckpt[0])
		rc = train_write_best(tr, d);
	else if (!rc && !tk_dist_rank())
		rc = train_save_model(tr, tr->out, d);
	if (!rc && !tk_dist_rank())
		rc = train_copy_side_files(tr, tr->out, d);
	if (!rc)
		rc = train_keep_only_best(tr, d);
	if (rc)
		return rc;
	struct tk_train_event ev = { .kind = TK_TRAIN_EV_END, .step = tr->global_step,
				     .max_steps = tr->max_steps, .first_step = tr->first_step,
				     .epoch = tr->epoch_f, .loss = train_loss, .elapsed = rt,
				     .tokens_per_s = rt > 0 ? (double)tr->tokens_run / rt : 0,
				     .path = tr->out, .stopped_early = tr->stop_early,
				     .best = tr->best_ckpt[0] ? tr->best_ckpt : NULL };
	train_event(tr, &ev);
	return 0;
}

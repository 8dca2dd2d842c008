/* state.c - trainer_state.json (train-int.h): HF's TrainerState keys plus
 * a "tk" object with the data position and what a resumed run must agree
 * on, written with each checkpoint and read back as strictly as a
 * safetensors header. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/afile.h"
#include "base/path.h"
#include "compute/dist.h"
#include "formats/hf-dir.h"
#include "train/train-int.h"

#define STATE_VERSION 1
#define STATE_RNG "none: the block order is a function of seed and epoch"

static int write_json(cJSON *root, const char *path, struct tk_diag *d)
{
	char *text = cJSON_Print(root);
	if (!text)
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	struct tk_afile f;
	int rc = tk_afile_open(&f, path, 1, d);
	if (!rc) {
		if (fputs(text, f.fp) < 0 || fputc('\n', f.fp) < 0) {
			rc = tk_diag_sys(d, path, "write failed");
			tk_afile_abort(&f);
		} else
			rc = tk_afile_commit(&f, d);
	}
	cJSON_free(text);
	return rc;
}

int train_save_state(struct trainer *tr, const char *path, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	char buf[64];
	cJSON *r = cJSON_CreateObject();
	if (!r)
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	if (tr->best.step > 0)
		add_num(r, "best_global_step", (double)tr->best.step);
	else
		cJSON_AddNullToObject(r, "best_global_step");
	if (tr->best.has_metric && isfinite(tr->best.metric))
		add_num(r, "best_metric", tr->best.metric);
	else
		cJSON_AddNullToObject(r, "best_metric");
	if (tr->best_ckpt[0])
		cJSON_AddStringToObject(r, "best_model_checkpoint", tr->best_ckpt);
	else
		cJSON_AddNullToObject(r, "best_model_checkpoint");
	add_num(r, "epoch", tr->epoch_f);
	add_num(r, "eval_steps", (double)tr->eval_steps);
	add_num(r, "global_step", (double)tr->global_step);
	cJSON_AddFalseToObject(r, "is_hyper_param_search");
	cJSON_AddTrueToObject(r, "is_local_process_zero");
	cJSON_AddTrueToObject(r, "is_world_process_zero");
	cJSON_AddItemToObject(r, "log_history", cJSON_Duplicate(tr->log_history, 1));
	add_num(r, "logging_steps", (double)tr->logging_steps);
	add_num(r, "max_steps", (double)tr->max_steps);
	add_num(r, "num_input_tokens_seen", (double)tr->tokens_seen);
	add_num(r, "num_train_epochs", (double)tr->num_epochs);
	add_num(r, "save_steps", (double)tr->save_steps);
	cJSON *cbs = cJSON_AddObjectToObject(r, "stateful_callbacks");
	if (cbs && tr->best.patience > 0) { /* EarlyStoppingCallback.state() */
		cJSON *es = cJSON_AddObjectToObject(cbs, "EarlyStoppingCallback");
		cJSON *ea = cJSON_AddObjectToObject(es, "args"), *at;
		add_num(ea, "early_stopping_patience", (double)tr->best.patience);
		add_num(ea, "early_stopping_threshold", tr->best.threshold);
		at = cJSON_AddObjectToObject(es, "attributes");
		add_num(at, "early_stopping_patience_counter", (double)tr->best.bad);
	}
	add_num(r, "total_flos", 0);
	add_num(r, "train_batch_size", o->batch);
	cJSON_AddNullToObject(r, "trial_name");
	cJSON_AddNullToObject(r, "trial_params");

	cJSON *tk = cJSON_AddObjectToObject(r, "tk");
	add_num(tk, "version", STATE_VERSION);
	add_num(tk, "epoch_index", (double)(tr->global_step / tr->nupe));
	add_num(tk, "update_in_epoch", (double)(tr->global_step % tr->nupe));
	add_num(tk, "tr_loss", tr->tr_loss);
	add_num(tk, "total_loss", tr->total_loss);
	add_num(tk, "last_logged", (double)tr->last_logged);
	add_num(tk, "per_device_train_batch_size", o->batch);
	add_num(tk, "gradient_accumulation_steps", o->grad_accum);
	add_num(tk, "world_size", tk_dist_size());
	add_num(tk, "skipped_steps", (double)tr->skipped);
	if (o->prec == TK_PREC_FP16) { /* GradScaler's state_dict */
		cJSON *gs = cJSON_AddObjectToObject(tk, "scaler");
		add_num(gs, "scale", tr->loss_scale);
		add_num(gs, "growth_tracker", (double)tr->growth_tracker);
	}
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)o->seed);
	cJSON_AddStringToObject(tk, "seed", buf);
	cJSON_AddBoolToObject(tk, "shuffle", o->shuffle);
	cJSON_AddStringToObject(tk, "rng", STATE_RNG);
	if (tr->side_mask != -1) { /* where the side files come from (load_tokenizer) */
		cJSON *src = cJSON_AddObjectToObject(tk, "source");
		if (tr->side_file[0])
			cJSON_AddStringToObject(src, "file", tr->side_file);
		else if (tr->side_dir[0]) {
			cJSON_AddStringToObject(src, "dir", tr->side_dir);
			cJSON *files = cJSON_AddArrayToObject(src, "files");
			for (int i = 0; tk_hf_side_files[i]; i++)
				if (tr->side_mask & 1 << i)
					cJSON_AddItemToArray(files,
							     cJSON_CreateString(tk_hf_side_files[i]));
		}
	}
	cJSON *data = cJSON_AddObjectToObject(tk, "data");
	cJSON_AddStringToObject(data, "path", tr->data_path);
	add_num(data, "n_blocks", (double)tr->train.n_blocks);
	add_num(data, "seq_len", tr->train.seq_len);
	cJSON_AddStringToObject(data, "fingerprint", tr->train.info.fingerprint);
	snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)tr->data_hash);
	cJSON_AddStringToObject(data, "hash", buf);
	cJSON *sc = cJSON_AddObjectToObject(tk, "schedule");
	cJSON_AddStringToObject(sc, "type", tk_sched_name(tr->sched.type));
	add_num(sc, "base_lr", tr->sched.base_lr);
	add_num(sc, "warmup_steps", (double)tr->sched.warmup);
	add_num(sc, "total_steps", (double)tr->sched.total);
	if (tr->sched.type == TK_SCHED_REDUCE_ON_PLATEAU) {
		const struct tk_plateau *pl = &tr->sched.plateau;
		cJSON *pj = cJSON_AddObjectToObject(sc, "plateau");
		add_num(pj, "lr", pl->lr);
		if (isfinite(pl->best)) /* no best yet: absent */
			add_num(pj, "best", pl->best);
		add_num(pj, "num_bad_epochs", (double)pl->bad);
		add_num(pj, "cooldown_counter", (double)pl->cooldown_left);
		add_num(pj, "last_epoch", (double)pl->evals);
	}
	int rc = write_json(r, path, d);
	cJSON_Delete(r);
	return rc;
}

int train_read_state(const struct trainer *tr, struct train_state_file *sf,
		     struct tk_diag *d)
{
	sf->root = NULL;
	if (tk_path_join(sf->path, sizeof(sf->path), tr->resume_dir, "trainer_state.json"))
		return tk_diag_set(d, TK_E_INVAL, tr->resume_dir, -1, "path too long");
	struct tk_buf b = { 0 };
	int rc = tk_read_file(sf->path, &b, d);
	if (rc)
		return rc;
	sf->root = cJSON_Parse(b.data);
	tk_buf_free(&b);
	return 0;
}

void train_state_file_free(struct train_state_file *sf)
{
	cJSON_Delete(sf->root);
	sf->root = NULL;
}

/* Checking trainer_state.json as strictly as a safetensors header: each
 * value tk reads back has its type, is an integer where it counts
 * something, lies in its range and agrees with the run; a failure names
 * the file and the key (tk.data.n_blocks). */
struct sv {
	const char *path;
	struct tk_diag *d;
};

static const cJSON *sv_get(const cJSON *obj, const char *key)
{
	return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static int sv_fail(struct sv *v, const char *name, const char *fmt, const char *what)
{
	return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1, fmt, name, what);
}

/* An integer in lo..hi at obj.key (name: the key as messages show it). */
static int sv_int(struct sv *v, const cJSON *obj, const char *key, const char *name,
		  long long lo, long long hi, long long *out)
{
	const cJSON *j = sv_get(obj, key);
	if (!j)
		return sv_fail(v, name, "%s: missing%s", "");
	if (!cJSON_IsNumber(j))
		return sv_fail(v, name, "%s: not a number%s", "");
	double x = j->valuedouble;
	if (!(x == floor(x)) || x < (double)lo || x > (double)hi) {
		if (lo == hi)
			return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1, "%s: %.17g, not %lld",
					   name, x, lo);
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
				   "%s: %.17g is not an integer from %lld to %lld", name, x, lo, hi);
	}
	*out = (long long)x;
	return 0;
}

/* A finite number in lo..hi. */
static int sv_num(struct sv *v, const cJSON *obj, const char *key, const char *name, double lo,
		  double hi, double *out)
{
	const cJSON *j = sv_get(obj, key);
	if (!j)
		return sv_fail(v, name, "%s: missing%s", "");
	if (!cJSON_IsNumber(j))
		return sv_fail(v, name, "%s: not a number%s", "");
	double x = j->valuedouble;
	if (!isfinite(x) || x < lo || x > hi)
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
				   "%s: %.17g is not a number from %g to %g", name, x, lo, hi);
	*out = x;
	return 0;
}

static int sv_str(struct sv *v, const cJSON *obj, const char *key, const char *name,
		  const char **out)
{
	const cJSON *j = sv_get(obj, key);
	if (!j)
		return sv_fail(v, name, "%s: missing%s", "");
	if (!cJSON_IsString(j) || !j->valuestring[0])
		return sv_fail(v, name, "%s: not a non-empty string%s", "");
	*out = j->valuestring;
	return 0;
}

static int sv_obj(struct sv *v, const cJSON *obj, const char *key, const char *name,
		  const cJSON **out)
{
	const cJSON *j = sv_get(obj, key);
	if (!j)
		return sv_fail(v, name, "%s: missing%s", "");
	if (!cJSON_IsObject(j))
		return sv_fail(v, name, "%s: not an object%s", "");
	*out = j;
	return 0;
}

/* The epoch train_loop reaches after global step gs (HF's epoch: the
 * epoch plus the fraction of its micro-batches done). */
static double epoch_at(const struct trainer *tr, long gs)
{
	if (gs <= 0)
		return 0;
	long ga = (long)tr->o->grad_accum * tk_dist_size();
	long e = (gs - 1) / tr->nupe, upd = (gs - 1) % tr->nupe;
	long rem = tr->steps_in_epoch % ga ? tr->steps_in_epoch % ga : ga;
	long step_mb = upd * ga + (upd != tr->nupe - 1 ? ga : rem) - 1;
	return (double)e + (double)(step_mb + 1) / (double)tr->steps_in_epoch;
}

/* log_history: objects of numbers (null for a value that was not finite)
 * whose step is a step up to gs. */
static int check_history(struct sv *v, const cJSON *lh, long gs)
{
	char name[64];
	int i = 0;
	if (!cJSON_IsArray(lh))
		return sv_fail(v, "log_history", "%s: not an array%s", "");
	for (const cJSON *e = lh->child; e; e = e->next, i++) {
		long long step;
		int rc;
		snprintf(name, sizeof(name), "log_history[%d]", i);
		if (!cJSON_IsObject(e))
			return sv_fail(v, name, "%s: not an object%s", "");
		for (const cJSON *m = e->child; m; m = m->next)
			if (!cJSON_IsNumber(m) && !cJSON_IsNull(m)) {
				snprintf(name, sizeof(name), "log_history[%d].%.32s", i, m->string);
				return sv_fail(v, name, "%s: not a number%s", "");
			}
		snprintf(name, sizeof(name), "log_history[%d].step", i);
		if ((rc = sv_int(v, e, "step", name, 0, gs, &step)))
			return rc;
	}
	return 0;
}

/* A decimal uint64 (the seed as a string: JSON numbers lose bits). */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = x;
	return 0;
}

/* What train_load_state reads from trainer_state.json (the ranges checked,
 * not yet that they fit the run). */
struct saved {
	long long gs, max_steps, nb, T, batch, accum, world, skipped, epoch_index, upd;
	long long last_logged, tokens, tracker;
	double epoch, tr_loss, total_loss, scale;
	const cJSON *scaler; /* tk.scaler: NULL when the run had none */
	const cJSON *sched;  /* tk.schedule */
	enum tk_sched_type stype;
};

/* What the checkpoint belongs to: the data, the batch, the processes, the
 * block order; TK_E_MISMATCH for a run that does not agree. */
static int check_origin(struct sv *v, const struct trainer *tr, const cJSON *tk,
			struct saved *s)
{
	const struct tk_train_opts *o = tr->o;
	struct tk_diag *d = v->d;
	const cJSON *data, *shuffle = sv_get(tk, "shuffle");
	const char *fp, *hash, *seed, *dpath;
	uint64_t seed_v;
	char mine[32];
	int rc;
	snprintf(mine, sizeof(mine), "%016llx", (unsigned long long)tr->data_hash);
	if ((rc = sv_obj(v, tk, "data", "tk.data", &data)) ||
	    (rc = sv_str(v, data, "path", "tk.data.path", &dpath)) ||
	    (rc = sv_int(v, data, "n_blocks", "tk.data.n_blocks", 1, 1LL << 53, &s->nb)) ||
	    (rc = sv_int(v, data, "seq_len", "tk.data.seq_len", 1, 1 << 24, &s->T)) ||
	    (rc = sv_str(v, data, "fingerprint", "tk.data.fingerprint", &fp)) ||
	    (rc = sv_str(v, data, "hash", "tk.data.hash", &hash)) ||
	    (rc = sv_int(v, tk, "per_device_train_batch_size", "tk.per_device_train_batch_size",
			 1, 1 << 20, &s->batch)) ||
	    (rc = sv_int(v, tk, "gradient_accumulation_steps", "tk.gradient_accumulation_steps",
			 1, 1 << 20, &s->accum)) ||
	    (sv_get(tk, "world_size") && /* absent before data parallel: 1 */
	     (rc = sv_int(v, tk, "world_size", "tk.world_size", 1, 1 << 20, &s->world))) ||
	    (rc = sv_str(v, tk, "seed", "tk.seed", &seed)))
		return rc;
	if (parse_u64(seed, &seed_v))
		return tk_diag_set(d, TK_E_FORMAT, v->path, -1,
				   "tk.seed: \"%.40s\" is not a decimal from 0 to 18446744073709551615",
				   seed);
	if (!cJSON_IsBool(shuffle))
		return sv_fail(v, "tk.shuffle", "%s: not true or false%s", "");
	if ((uint64_t)s->nb != tr->train.n_blocks || (uint32_t)s->T != tr->train.seq_len ||
	    strcmp(fp, tr->train.info.fingerprint) || strcmp(hash, mine))
		return tk_diag_set(d, TK_E_MISMATCH, tr->data_path, -1,
				   "not the blocks the checkpoint %s was trained on (%lld blocks of "
				   "%lld tokens there, %llu of %u here)", tr->resume_dir, s->nb, s->T,
				   (unsigned long long)tr->train.n_blocks, tr->train.seq_len);
	if (s->batch != o->batch || s->accum != o->grad_accum)
		return tk_diag_set(d, TK_E_MISMATCH, tr->resume_dir, -1,
				   "trained with per_device_train_batch_size %lld and "
				   "gradient_accumulation_steps %lld, not %d and %d", s->batch,
				   s->accum, o->batch, o->grad_accum);
	if (s->world != tk_dist_size())
		return tk_diag_set(d, TK_E_MISMATCH, tr->resume_dir, -1,
				   "trained on %lld process%s, resumed on %d: each step's data "
				   "depends on it (resume it %s%lld)", s->world,
				   s->world == 1 ? "" : "es", tk_dist_size(),
				   s->world == 1 ? "without mpirun, or -np " : "with mpirun -np ",
				   s->world);
	if (seed_v != o->seed || cJSON_IsTrue(shuffle) != !!o->shuffle)
		return tk_diag_set(d, TK_E_MISMATCH, tr->resume_dir, -1,
				   "trained with seed %s%s (the block order depends on it)", seed,
				   cJSON_IsTrue(shuffle) ? "" : " and --no-shuffle");
	return 0;
}

/* Where it stopped: a step of its run, at the place in the data that step
 * reaches with these blocks and batches. */
static int check_position(struct sv *v, const struct trainer *tr, const cJSON *r,
			  const cJSON *tk, struct saved *s)
{
	int rc;
	if ((rc = sv_int(v, r, "max_steps", "max_steps", 1, LONG_MAX / 2, &s->max_steps)) ||
	    (rc = sv_int(v, r, "global_step", "global_step", 0, s->max_steps, &s->gs)) ||
	    (rc = sv_int(v, tk, "epoch_index", "tk.epoch_index", 0, LONG_MAX / 2,
			 &s->epoch_index)) ||
	    (rc = sv_int(v, tk, "update_in_epoch", "tk.update_in_epoch", 0, tr->nupe - 1,
			 &s->upd)) ||
	    (rc = sv_num(v, r, "epoch", "epoch", 0, 1e18, &s->epoch)))
		return rc;
	if (s->epoch_index != s->gs / tr->nupe || s->upd != s->gs % tr->nupe)
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
				   "tk.epoch_index %lld, tk.update_in_epoch %lld: not where global_step "
				   "%lld is with %ld updates per epoch (%lld, %lld)", s->epoch_index,
				   s->upd, s->gs, tr->nupe, s->gs / tr->nupe, s->gs % tr->nupe);
	double want = epoch_at(tr, (long)s->gs);
	if (fabs(s->epoch - want) > 1e-9 * (want > 1 ? want : 1))
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
				   "epoch: %.17g is not the epoch of global_step %lld (%.17g)",
				   s->epoch, s->gs, want);
	return 0;
}

/* The loop's counters and sums, the intervals, and the log history. */
static int check_counters(struct sv *v, const cJSON *r, const cJSON *tk, struct saved *s)
{
	long long n;
	int rc;
	if ((rc = sv_num(v, tk, "tr_loss", "tk.tr_loss", 0, 3.4e38, &s->tr_loss)) ||
	    (rc = sv_num(v, tk, "total_loss", "tk.total_loss", 0, 1e300, &s->total_loss)) ||
	    (rc = sv_int(v, tk, "last_logged", "tk.last_logged", 0, s->gs, &s->last_logged)) ||
	    (sv_get(tk, "skipped_steps") && /* absent before fp16: none */
	     (rc = sv_int(v, tk, "skipped_steps", "tk.skipped_steps", 0, s->gs, &s->skipped))))
		return rc;
	n = s->gs * s->batch * s->accum * s->world; /* at most this many blocks of T tokens */
	if ((rc = sv_int(v, r, "num_input_tokens_seen", "num_input_tokens_seen", 0,
			 n > (1LL << 53) / s->T ? 1LL << 53 : n * s->T, &s->tokens)) ||
	    (rc = sv_int(v, r, "num_train_epochs", "num_train_epochs", 1, LONG_MAX / 2, &n)) ||
	    (rc = sv_int(v, r, "logging_steps", "logging_steps", 1, LONG_MAX / 2, &n)) ||
	    (rc = sv_int(v, r, "eval_steps", "eval_steps", 1, LONG_MAX / 2, &n)) ||
	    (rc = sv_int(v, r, "save_steps", "save_steps", 1, LONG_MAX / 2, &n)) ||
	    (rc = sv_int(v, r, "train_batch_size", "train_batch_size", s->batch, s->batch, &n)))
		return rc;
	return check_history(v, sv_get(r, "log_history"), (long)s->gs);
}

/* The schedule the run had, and the RNG (none: the order is seeded). */
static int check_schedule(struct sv *v, const cJSON *tk, struct saved *s)
{
	const cJSON *sched;
	const char *stype, *rng;
	long long warm, total;
	double base_lr;
	int rc;
	if ((rc = sv_obj(v, tk, "schedule", "tk.schedule", &sched)) ||
	    (rc = sv_str(v, sched, "type", "tk.schedule.type", &stype)) ||
	    (rc = sv_num(v, sched, "base_lr", "tk.schedule.base_lr", 0, 1e300, &base_lr)) ||
	    (rc = sv_int(v, sched, "total_steps", "tk.schedule.total_steps", s->max_steps,
			 s->max_steps, &total)) ||
	    /* --warmup-steps N may exceed the run (the lr then never peaks) */
	    (rc = sv_int(v, sched, "warmup_steps", "tk.schedule.warmup_steps", 0, LONG_MAX / 2,
			 &warm)) ||
	    (rc = sv_str(v, tk, "rng", "tk.rng", &rng)))
		return rc;
	s->sched = sched;
	if (tk_sched_parse(stype, &s->stype, NULL))
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1, "tk.schedule.type: \"%.40s\" is "
				   "not a schedule tk knows", stype);
	if (strcmp(rng, STATE_RNG))
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1, "tk.rng: \"%.40s\" is not a "
				   "state tk can restore (\"%s\")", rng, STATE_RNG);
	return 0;
}

/* GradScaler's state, when the run had one: a power of two as its scale
 * always is. */
static int check_scaler(struct sv *v, const cJSON *tk, struct saved *s)
{
	int ex, rc;
	if (!sv_get(tk, "scaler"))
		return 0;
	if ((rc = sv_obj(v, tk, "scaler", "tk.scaler", &s->scaler)) ||
	    (rc = sv_num(v, s->scaler, "scale", "tk.scaler.scale", 1e-45, 3.4e38, &s->scale)) ||
	    (rc = sv_int(v, s->scaler, "growth_tracker", "tk.scaler.growth_tracker", 0, s->gs,
			 &s->tracker)))
		return rc;
	if (frexp(s->scale, &ex) != 0.5)
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1, "tk.scaler.scale: %.17g is not "
				   "a power of 2", s->scale);
	return 0;
}

/* best_global_step, best_metric, best_model_checkpoint (kept only if
 * it is still there, as the Trainer does) and EarlyStoppingCallback's
 * counter, each null or absent when the run had none. */
static int load_best(struct sv *v, const cJSON *r, struct trainer *tr, long gs)
{
	const cJSON *bs = sv_get(r, "best_global_step"), *bm = sv_get(r, "best_metric");
	const cJSON *bc = sv_get(r, "best_model_checkpoint");
	const cJSON *es = sv_get(sv_get(r, "stateful_callbacks"), "EarlyStoppingCallback");
	long long step = 0, bad = 0;
	int rc;
	if ((bs && !cJSON_IsNull(bs) &&
	     (rc = sv_int(v, r, "best_global_step", "best_global_step", 1, gs, &step))) ||
	    (bm && !cJSON_IsNull(bm) &&
	     (rc = sv_num(v, r, "best_metric", "best_metric", -1e300, 1e300, &tr->best.metric))) ||
	    (es && (rc = sv_int(v, sv_get(es, "attributes"), "early_stopping_patience_counter",
				"stateful_callbacks.EarlyStoppingCallback.attributes."
				"early_stopping_patience_counter", 0, gs, &bad))))
		return rc;
	if (bc && !cJSON_IsNull(bc) && !cJSON_IsString(bc))
		return sv_fail(v, "best_model_checkpoint", "%s: not a string%s", "");
	tr->best.step = (long)step;
	tr->best.has_metric = bm && !cJSON_IsNull(bm);
	tr->best.bad = (long)bad;
	if (cJSON_IsString(bc) && tk_path_is_dir(bc->valuestring))
		snprintf(tr->best_ckpt, sizeof(tr->best_ckpt), "%s", bc->valuestring);
	return 0;
}

/* reduce_lr_on_plateau's state in tk.schedule.plateau, when the run had one */
static int load_plateau(struct sv *v, const cJSON *sched, struct tk_sched *s)
{
	const cJSON *pj = sv_get(sched, "plateau");
	struct tk_plateau p = s->plateau;
	long long bad, cool, evals;
	int rc;
	if (!pj || s->type != TK_SCHED_REDUCE_ON_PLATEAU)
		return 0;
	if ((rc = sv_obj(v, sched, "plateau", "tk.schedule.plateau", &pj)) ||
	    (rc = sv_num(v, pj, "lr", "tk.schedule.plateau.lr", 0, 1e300, &p.lr)) ||
	    (sv_get(pj, "best") &&
	     (rc = sv_num(v, pj, "best", "tk.schedule.plateau.best", -1e300, 1e300, &p.best))) ||
	    (rc = sv_int(v, pj, "num_bad_epochs", "tk.schedule.plateau.num_bad_epochs", 0,
			 LONG_MAX / 2, &bad)) ||
	    (rc = sv_int(v, pj, "cooldown_counter", "tk.schedule.plateau.cooldown_counter", 0,
			 LONG_MAX / 2, &cool)) ||
	    (rc = sv_int(v, pj, "last_epoch", "tk.schedule.plateau.last_epoch", 0, LONG_MAX / 2,
			 &evals)))
		return rc;
	p.bad = (long)bad;
	p.cooldown_left = (long)cool;
	p.evals = (long)evals;
	s->plateau = p;
	return 0;
}

/* The loop state from the checked values s (and r's log_history). */
static void restore(struct trainer *tr, cJSON *r, const struct saved *s)
{
	tr->global_step = (long)s->gs;
	tr->tr_loss = (float)s->tr_loss;
	tr->total_loss = s->total_loss;
	tr->last_logged = (long)s->last_logged;
	tr->epoch_f = s->epoch;
	tr->tokens_seen = (uint64_t)s->tokens;
	/* a run trained without fp16 has no scaler, which then starts anew */
	tr->skipped = (long)s->skipped;
	if (tr->o->prec == TK_PREC_FP16 && s->scaler) {
		tr->loss_scale = (float)s->scale;
		tr->growth_tracker = (long)s->tracker;
	}
	cJSON_Delete(tr->log_history);
	tr->log_history = cJSON_DetachItemFromObject(r, "log_history");
}

/* Reads trainer_state.json of the checkpoint, checks every value tk takes
 * from it (struct sv) and that the run agrees with it, and restores the
 * loop state. */
int train_load_state(struct trainer *tr, struct train_state_file *sf, struct tk_diag *d)
{
	cJSON *r = sf->root;
	const char *path = sf->path;
	int rc = 0;
	struct sv v = { path, d };
	struct saved s = { .world = 1 };
	const cJSON *tk = sv_get(r, "tk"), *ver = sv_get(tk, "version");
	if (!cJSON_IsObject(r) || !cJSON_IsNumber(ver) || ver->valuedouble != STATE_VERSION)
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
				 "not a trainer state that tk-train wrote (version %d)",
				 STATE_VERSION);
	else if (!(rc = check_origin(&v, tr, tk, &s)) &&
		 !(rc = check_position(&v, tr, r, tk, &s)) &&
		 !(rc = check_counters(&v, r, tk, &s)) && !(rc = check_schedule(&v, tk, &s)) &&
		 !(rc = check_scaler(&v, tk, &s)) &&
		 (s.stype != TK_SCHED_REDUCE_ON_PLATEAU ||
		  !(rc = load_plateau(&v, s.sched, &tr->sched))) &&
		 !(rc = load_best(&v, r, tr, (long)s.gs)))
		restore(tr, r, &s);
	return rc;
}

/* tk.source of the resumed checkpoint's trainer_state.json: the side
 * directory (and the side files it had) or file the run started with
 * (src_recorded 0 when the checkpoint records none). */
int train_read_source(struct trainer *tr, const struct train_state_file *sf,
		      struct tk_diag *d)
{
	const cJSON *r = sf->root;
	const char *path = sf->path;
	int rc = 0;
	struct sv v = { path, d };
	const cJSON *src = sv_get(sv_get(r, "tk"), "source"), *files;
	const char *dir = NULL, *file = NULL;
	if (!src)
		goto out;
	if ((rc = sv_obj(&v, sv_get(r, "tk"), "source", "tk.source", &src)))
		goto out;
	if ((sv_get(src, "dir") && (rc = sv_str(&v, src, "dir", "tk.source.dir", &dir))) ||
	    (sv_get(src, "file") && (rc = sv_str(&v, src, "file", "tk.source.file", &file))))
		goto out;
	if (dir && file) {
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tk.source: both a dir and a file");
		goto out;
	}
	files = sv_get(src, "files");
	if (files && !dir) {
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tk.source.files: without tk.source.dir");
		goto out;
	}
	if (dir && !cJSON_IsArray(files)) {
		rc = sv_fail(&v, "tk.source.files", "%s: not an array%s", "");
		goto out;
	}
	int i = 0;
	for (const cJSON *f = files ? files->child : NULL; f; f = f->next, i++) {
		int k = cJSON_IsString(f) ? tk_hf_side_index(f->valuestring) : -1;
		if (k < 0) {
			rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tk.source.files[%d]: not one of "
					 "the tokenizer and generation files tk copies", i);
			goto out;
		}
		tr->src_mask |= 1 << k;
	}
	if (strlen(dir ? dir : file ? file : "") >= PATH_LEN) {
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tk.source: path too long");
		goto out;
	}
	snprintf(tr->src_dir, sizeof(tr->src_dir), "%s", dir ? dir : "");
	snprintf(tr->src_file, sizeof(tr->src_file), "%s", file ? file : "");
	tr->src_recorded = 1;
out:
	return rc;
}

/* The data path a checkpoint was trained on (OUT/data.tks for a stream). */
int train_stored_data_path(struct trainer *tr, const struct train_state_file *sf,
			   struct tk_diag *d)
{
	const cJSON *r = sf->root;
	const char *path = sf->path;
	int rc = 0;
	struct sv v = { path, d };
	const cJSON *data;
	const char *p;
	if (!sv_get(sv_get(r, "tk"), "data"))
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
				 "names no training data (give --data)");
	else if ((rc = sv_obj(&v, sv_get(r, "tk"), "data", "tk.data", &data)) ||
		 (rc = sv_str(&v, data, "path", "tk.data.path", &p)))
		;
	else if (strlen(p) >= sizeof(tr->data_path))
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tk.data.path: too long");
	else if (!strcmp(p, "-"))
		rc = tk_path_join(tr->data_path, sizeof(tr->data_path), tr->out, SPILL_NAME);
	else
		snprintf(tr->data_path, sizeof(tr->data_path), "%s", p);
	return rc;
}

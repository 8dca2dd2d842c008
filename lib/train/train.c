/* train.c - see train.h.  The loop follows transformers' Trainer
 * (_inner_training_loop, _run_epoch, _maybe_log_save_evaluate,
 * DefaultFlowCallback) so that steps, epochs, logs, evaluations and saves
 * happen at the same points with the same values. */
#include "train/train.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/afile.h"
#include "base/path.h"
#include "formats/bnb.h"
#include "formats/config.h"
#include "formats/hf-dir.h"
#include "train/data.h"
#include "compute/blas.h"
#include "compute/dist.h"
#include "model/memplan.h"
#include "model/model.h"
#include "model/peft.h"
#include "formats/safetensors.h"
#include "text/tokenizer.h"

#define PATH_LEN 4096
#define SPILL_NAME "data.tks"
#define STATE_VERSION 1
/* OUT's lock (flock) for the whole run, holding the PID of its holder */
#define LOCK_NAME ".tk-train.lock"
/* an old checkpoint being removed by rotate(): renamed to this prefix
 * first, so that a run killed while deleting it leaves no half checkpoint
 * (the next run removes what is left) */
#define DELETING ".deleting-"
#define STATE_RNG "none: the block order is a function of seed and epoch"

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
	o->seed = 42;
	o->shuffle = 1;
	o->prec = TK_PREC_FP32;
	o->initial_scale_power = 16;
	o->loss_scale_window = 2000;
}

struct trainer {
	const struct tk_train_opts *o;
	struct tk_backend *be;
	struct tk_model m;
	struct tk_data train, eval;
	char fingerprint[17];
	int have_fp;
	char side_dir[PATH_LEN];   /* where tokenizer/generation files come from ("" none) */
	char side_file[PATH_LEN];  /* a lone tokenizer.json given as --tokenizer */
	/* the side files side_dir had when the run (the first of a resumed
	 * chain) started, bits over tk_hf_side_files[]; -1: those it has (a
	 * checkpoint that did not record them) */
	int side_mask;
	/* recorded in the resumed checkpoint's trainer_state.json (tk.source):
	 * the original side directory or file, "" when none was recorded */
	char src_dir[PATH_LEN], src_file[PATH_LEN];
	int src_recorded, src_mask;
	char created_top[PATH_LEN]; /* the first directory of OUT's path this run made */
	int lock_fd;               /* OUT/LOCK_NAME, -1 when not held */
	char lock_path[PATH_LEN];
	char out[PATH_LEN];
	char data_path[PATH_LEN];
	char resume_dir[PATH_LEN];
	char last_ckpt[PATH_LEN];
	int spilled, saved;
	int side_is_tok;           /* side_dir is --tokenizer's: no generation_config.json */
	uint64_t data_hash;

	float *exp_avg, *exp_avg_sq;
	const struct tk_param *tp; /* what the optimizer updates (tk_model_trainable) */
	int n_tp;
	size_t *popt;              /* [n_tp]: offset of each in exp_avg / exp_avg_sq */
	size_t n_opt, n_opt_full;  /* floats of each state arena; _full: without zero */
	/* What this process's AdamW updates: parts of parameters (segs_setup). */
	struct tr_seg { int i; size_t a, n, loc; } *seg; /* tp[i] [a, a + n) at loc */
	int n_seg;
	/* ZeRO-1 (o->zero): the flat sequence of trainable floats, its shards,
	 * windows for the collectives, a parameter's state for checkpoints. */
	size_t *zoff, *zbound, *zcnt; /* [n_tp + 1] starts, [world + 1] shards, [world] */
	size_t ztotal, zlo, zhi, zwin_n;
	float *zwin, *zwin2, *ztmp;
	/* NCCL instead of MPI for the gradients and ZeRO-1's weights (a CUDA
	 * backend on several ranks in a build with NCCL; nccl_setup); zrun:
	 * ZeRO-1's pieces of the parameters, one per shard they cross. */
	int nccl;
	struct tk_dist_run *zrun;
	struct tk_sched sched;
	long nupe, steps_in_epoch, num_epochs, max_steps;
	long logging_steps, eval_steps, save_steps;
	long global_step, last_logged, first_step;
	/* fp16 loss scaling (GradScaler's _scale, _growth_tracker), and the
	 * steps skipped for overflowed gradients: the scheduler and AdamW count
	 * only the others (sched_pos) */
	float loss_scale;
	long growth_tracker, skipped;
	int step_skipped;          /* the last train_step skipped its update */
	double epoch_f;
	float tr_loss;             /* HF's _tr_loss (fp32), since the last log */
	double total_loss;         /* HF's _total_loss_scalar */
	uint64_t tokens_seen, tokens_run;
	long cur_epoch;            /* the epoch train_step is in */
	double t0;
	cJSON *log_history;
	FILE *metrics;
	char metrics_path[PATH_LEN];

	int T;
	uint32_t *ids;             /* grad_accum * batch * T */
	int32_t *labels, *targets;
	int *rows;                 /* rows of each micro-batch */
	double last_eval_loss;
	struct tk_memplan mplan;  /* the backend memory planned (mem_plan) */
	int planned;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int event(struct trainer *tr, struct tk_train_event *ev)
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

static int ckpt_path(char *buf, size_t size, const char *out, long step)
{
	int n = snprintf(buf, size, "%s/checkpoint-%ld", out, step);
	return n < 0 || (size_t)n >= size ? TK_E_INVAL : 0;
}

/* N of a "checkpoint-N" name, -1 for anything else. */
static long ckpt_step(const char *name)
{
	if (strncmp(name, "checkpoint-", 11) || !name[11])
		return -1;
	long v = 0;
	for (const char *p = name + 11; *p; p++) {
		if (*p < '0' || *p > '9' || v > 100000000000L)
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v;
}

struct ckpt_list {
	long *step;
	size_t n, cap;
};

static int list_ckpts(const char *out, struct ckpt_list *l, int stale_too, struct tk_diag *d)
{
	memset(l, 0, sizeof(*l));
	DIR *dp = opendir(out);
	if (!dp)
		return tk_diag_sys(d, out, "cannot open directory");
	struct dirent *e;
	char p[PATH_LEN];
	while ((e = readdir(dp))) {
		long s = ckpt_step(e->d_name);
		if (stale_too && !strncmp(e->d_name, DELETING "checkpoint-", strlen(DELETING) + 11)) {
			/* a rotation that was cut short */
			if (!tk_path_join(p, sizeof(p), out, e->d_name))
				tk_afile_rmtree(p);
			continue;
		}
		if (s < 0 && stale_too && !strncmp(e->d_name, "checkpoint-", 11) &&
		    (strstr(e->d_name, ".tmp-") || strstr(e->d_name, ".old-"))) {
			/* left by a run that was killed while saving */
			if (!tk_path_join(p, sizeof(p), out, e->d_name))
				tk_afile_rmtree(p);
			continue;
		}
		if (s < 0 || tk_path_join(p, sizeof(p), out, e->d_name) || !tk_path_is_dir(p))
			continue;
		if (tk_grow(&l->step, &l->cap, l->n + 1, sizeof(*l->step))) {
			closedir(dp);
			free(l->step);
			return tk_diag_set(d, TK_E_NOMEM, out, -1, "out of memory");
		}
		l->step[l->n++] = s;
	}
	closedir(dp);
	return 0;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

/* NULL when dir holds every file a checkpoint has (trainer_state.json,
 * optimizer.safetensors, and a model or adapter), else the first missing. */
static const char *ckpt_missing(const char *dir)
{
	static const char *const need[] = { "trainer_state.json", "optimizer.safetensors", NULL };
	char p[PATH_LEN];
	for (int i = 0; need[i]; i++)
		if (tk_path_join(p, sizeof(p), dir, need[i]) || !tk_path_exists(p))
			return need[i];
	if (!tk_path_join(p, sizeof(p), dir, "adapter_config.json") && tk_path_exists(p))
		return !tk_path_join(p, sizeof(p), dir, "adapter_model.safetensors") && tk_path_exists(p)
			       ? NULL : "adapter_model.safetensors";
	if (tk_path_join(p, sizeof(p), dir, "config.json") || !tk_path_exists(p))
		return "config.json";
	if ((!tk_path_join(p, sizeof(p), dir, "model.safetensors") && tk_path_exists(p)) ||
	    (!tk_path_join(p, sizeof(p), dir, "model.safetensors.index.json") && tk_path_exists(p)))
		return NULL;
	return "model.safetensors";
}

int tk_train_latest_checkpoint(const char *out_dir, char *buf, size_t size, struct tk_diag *d)
{
	struct ckpt_list l;
	int rc = list_ckpts(out_dir, &l, 0, d);
	if (rc)
		return rc;
	long best = -1, bad = -1;
	const char *what = NULL;
	char p[PATH_LEN];
	for (size_t i = 0; i < l.n; i++) {
		if (l.step[i] <= best || ckpt_path(p, sizeof(p), out_dir, l.step[i]))
			continue;
		const char *m = ckpt_missing(p);
		if (!m)
			best = l.step[i];
		else if (l.step[i] > bad) {
			bad = l.step[i];
			what = m;
		}
	}
	free(l.step);
	if (best < 0 && bad >= 0)
		return tk_diag_set(d, TK_E_FORMAT, out_dir, -1,
				   "no complete checkpoint-N directory to resume from "
				   "(checkpoint-%ld has no %s)", bad, what);
	if (best < 0)
		return tk_diag_set(d, TK_E_FORMAT, out_dir, -1,
				   "no checkpoint-N directory to resume from");
	int n = snprintf(buf, size, "%s/checkpoint-%ld", out_dir, best);
	if (n < 0 || (size_t)n >= size)
		return tk_diag_set(d, TK_E_INVAL, out_dir, -1, "path too long");
	return 0;
}

/* Removes the oldest checkpoints beyond save_total_limit. */
static int rotate(struct trainer *tr, struct tk_diag *d)
{
	if (tr->o->save_total_limit <= 0)
		return 0;
	struct ckpt_list l;
	int rc = list_ckpts(tr->out, &l, 0, d);
	if (rc)
		return rc;
	qsort(l.step, l.n, sizeof(*l.step), cmp_long);
	char p[PATH_LEN], gone[PATH_LEN];
	for (size_t i = 0; i + (size_t)tr->o->save_total_limit < l.n && !rc; i++) {
		int n = snprintf(gone, sizeof(gone), "%s/" DELETING "checkpoint-%ld", tr->out,
				 l.step[i]);
		if (ckpt_path(p, sizeof(p), tr->out, l.step[i]) || n < 0 ||
		    (size_t)n >= sizeof(gone)) {
			rc = tk_diag_set(d, TK_E_INVAL, tr->out, -1, "path too long");
			break;
		}
		/* away under a hidden name first: a kill while deleting leaves
		 * no checkpoint-N that is half gone */
		if (tk_path_exists(gone))
			tk_afile_rmtree(gone);
		if (rename(p, gone))
			rc = tk_diag_sys(d, p, "cannot remove old checkpoint");
		else if (tk_afile_rmtree(gone))
			rc = tk_diag_sys(d, gone, "cannot remove old checkpoint");
	}
	free(l.step);
	return rc;
}

/* The side files that go with the outputs (bits over tk_hf_side_files):
 * side_mask, or with -1 those side_dir has now; a --tokenizer directory
 * gives no generation_config.json. */
static unsigned side_want(const struct trainer *tr)
{
	if (!tr->side_dir[0])
		return 0;
	unsigned m = tr->side_mask == -1 ? tk_hf_side_present(tr->side_dir)
					 : (unsigned)tr->side_mask;
	if (tr->side_is_tok)
		m &= ~(1u << tk_hf_side_index("generation_config.json"));
	return m;
}

/* TK_E_FORMAT naming the first side file the run recorded when it started
 * (side_mask) that side_dir no longer has; 0 when it has them all. */
static int side_check(const struct trainer *tr, struct tk_diag *d)
{
	unsigned want = side_want(tr), lost = want ? want & ~tk_hf_side_present(tr->side_dir) : 0;
	for (int i = 0; lost && tk_hf_side_files[i]; i++)
		if (lost & 1u << i) {
			char p[PATH_LEN];
			tk_path_join(p, sizeof(p), tr->side_dir, tk_hf_side_files[i]);
			return tk_diag_set(d, TK_E_FORMAT, p, -1,
					   "missing: the run started from %s, which had it, and its "
					   "checkpoints and output take it from there (put it back)",
					   tr->side_dir);
		}
	return 0;
}

/* Copies the tokenizer and generation files next to a saved model. */
static int copy_side_files(struct trainer *tr, const char *dir, struct tk_diag *d)
{
	char dst[PATH_LEN];
	if (tr->side_file[0]) {
		if (tk_path_join(dst, sizeof(dst), dir, "tokenizer.json"))
			return tk_diag_set(d, TK_E_INVAL, dir, -1, "path too long");
		return tk_afile_copy(tr->side_file, dst, d);
	}
	int rc = side_check(tr, d);
	if (rc || !tr->side_dir[0] || !strcmp(tr->side_dir, dir))
		return rc;
	return tk_hf_copy_side_files(tr->side_dir, dir, side_want(tr), d);
}

/* ZeRO stage 1 (train.h).  The flat sequence of trainable floats is
 * tp[0] then tp[1]...; zoff[i] is where tp[i] starts in it, zbound[r] where
 * rank r's shard does.  The collectives go through windows of at most
 * ZERO_WIN floats, so the staging memory stays small next to the state the
 * sharding saves. */
#define ZERO_WIN ((size_t)1 << 22)

static size_t min_z(size_t a, size_t b)
{
	return a < b ? a : b;
}

static size_t max_z(size_t a, size_t b)
{
	return a > b ? a : b;
}

/* tr->seg: what this process's AdamW updates, each part at its offset in
 * the state arenas (64-byte aligned, as the parameters' arenas).  Without
 * zero: every parameter whole, at popt[i]; with zero: the parts inside this
 * rank's shard, and n_opt becomes their size. */
static int segs_setup(struct trainer *tr, struct tk_diag *d)
{
	int zero = tr->o->zero, world = zero ? tk_dist_size() : 1, rank = zero ? tk_dist_rank() : 0;
	size_t big = 0;
	tr->n_opt_full = tr->n_opt;
	tr->seg = tk_mallocn((size_t)tr->n_tp + 1, sizeof(*tr->seg));
	tr->zoff = tk_mallocn((size_t)tr->n_tp + 1, sizeof(*tr->zoff));
	tr->zbound = tk_mallocn((size_t)world + 1, sizeof(*tr->zbound));
	tr->zcnt = tk_mallocn((size_t)world, sizeof(*tr->zcnt));
	if (!tr->seg || !tr->zoff || !tr->zbound || !tr->zcnt)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	tr->zoff[0] = 0;
	for (int i = 0; i < tr->n_tp; i++) {
		tr->zoff[i + 1] = tr->zoff[i] + tr->tp[i].n;
		big = max_z(big, tr->tp[i].n);
	}
	tr->ztotal = tr->zoff[tr->n_tp];
	for (int r = 0; r <= world; r++)
		tr->zbound[r] = tr->ztotal * (size_t)r / (size_t)world;
	tr->zlo = tr->zbound[rank];
	tr->zhi = tr->zbound[rank + 1];
	size_t loc = 0;
	for (int i = 0; i < tr->n_tp; i++) {
		size_t a = max_z(tr->zoff[i], tr->zlo), b = min_z(tr->zoff[i + 1], tr->zhi);
		if (a >= b)
			continue;
		tr->seg[tr->n_seg++] = (struct tr_seg){ .i = i, .a = a - tr->zoff[i], .n = b - a,
							.loc = zero ? loc : tr->popt[i] };
		loc += (b - a + 15) / 16 * 16;
	}
	if (!zero)
		return 0;
	tr->n_opt = loc;
	/* TK_TRAIN_TEST_ZERO_WIN=N: windows of N floats, for the tests'
	 * small models to take the path of large ones */
	const char *tw = getenv("TK_TRAIN_TEST_ZERO_WIN");
	size_t win = tw && strtoul(tw, NULL, 10) ? strtoul(tw, NULL, 10) : ZERO_WIN;
	tr->zwin_n = min_z(tr->ztotal, win);
	tr->ztmp = tk_mallocn(big ? big : 1, sizeof(float));
	if (world > 1 && tr->nccl) {
		tr->zrun = tk_mallocn((size_t)tr->n_tp + (size_t)world, sizeof(*tr->zrun));
		if (!tr->zrun || !tr->ztmp)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		return 0;
	}
	if (world > 1) {
		tr->zwin = tk_mallocn(tr->zwin_n ? tr->zwin_n : 1, sizeof(float));
		tr->zwin2 = tk_mallocn(tr->zwin_n ? tr->zwin_n : 1, sizeof(float));
	}
	if (!tr->ztmp || (world > 1 && (!tr->zwin || !tr->zwin2)))
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	return 0;
}

/* This process's part of tp[i], NULL when it has none. */
static const struct tr_seg *seg_of(const struct trainer *tr, int i)
{
	for (int s = 0; s < tr->n_seg; s++)
		if (tr->seg[s].i == i)
			return &tr->seg[s];
	return NULL;
}

/* Copies the flat range [w0, w1) of the gradients (grads) or weights
 * between the parameters and buf[0..w1 - w0) (to_buf: into buf). */
static void flat_copy(struct trainer *tr, size_t w0, size_t w1, float *buf, int grads, int to_buf)
{
	for (int i = 0; i < tr->n_tp && tr->zoff[i] < w1; i++) {
		size_t a = max_z(tr->zoff[i], w0), b = min_z(tr->zoff[i + 1], w1);
		if (a >= b)
			continue;
		float *t = (grads ? tr->tp[i].g : tr->tp[i].p) + (a - tr->zoff[i]), *w = buf + (a - w0);
		memcpy(to_buf ? w : t, to_buf ? t : w, (b - a) * sizeof(float));
	}
}

/* zcnt: how much of [w0, w1) falls in each rank's shard. */
static void shard_counts(struct trainer *tr, size_t w0, size_t w1)
{
	for (int r = 0; r < tk_dist_size(); r++) {
		size_t a = max_z(w0, tr->zbound[r]), b = min_z(w1, tr->zbound[r + 1]);
		tr->zcnt[r] = a < b ? b - a : 0;
	}
}

/* The gradients summed over the ranks, each rank receiving its shard's. */
static int zero_reduce_scatter(struct trainer *tr, struct tk_diag *d)
{
	for (size_t w0 = 0; w0 < tr->ztotal; w0 += tr->zwin_n) {
		size_t w1 = min_z(tr->ztotal, w0 + tr->zwin_n);
		size_t a = max_z(w0, tr->zlo), b = min_z(w1, tr->zhi);
		shard_counts(tr, w0, w1);
		flat_copy(tr, w0, w1, tr->zwin, 1, 1);
		int rc = tk_dist_reduce_scatter_f32(tr->zwin, tr->zwin2, tr->zcnt, d);
		if (rc)
			return rc;
		if (a < b)
			flat_copy(tr, a, b, tr->zwin2, 1, 0);
	}
	return 0;
}

/* ZeRO-1 with NCCL: tr->zrun as the pieces of the gradients (grads) or of
 * the weights that each shard holds, rooted at the shard's rank; returns
 * how many (at most n_tp + world - 1: each shard boundary cuts one more). */
static int zero_runs(struct trainer *tr, int grads)
{
	int n = 0;
	for (int i = 0; i < tr->n_tp; i++)
		for (int r = 0; r < tk_dist_size(); r++) {
			size_t a = max_z(tr->zoff[i], tr->zbound[r]);
			size_t b = min_z(tr->zoff[i + 1], tr->zbound[r + 1]);
			if (a < b)
				tr->zrun[n++] = (struct tk_dist_run){
					.p = (grads ? tr->tp[i].g : tr->tp[i].p) + (a - tr->zoff[i]),
					.n = b - a, .root = r };
		}
	return n;
}

/* Data parallel with NCCL (UNVERIFIED: never run on several GPUs): the
 * gradients summed over the ranks on the GPUs, in place in the backend's
 * (managed) buffers, as reduce_step's MPI path sums them through the host:
 * whole (all-reduce), or with ZeRO-1 each shard's pieces on its rank (the
 * other pieces keep this rank's own gradients, as zero_reduce_scatter). */
static int nccl_grads(struct trainer *tr, struct tk_diag *d)
{
	int rc = 0;
	if (tr->o->zero)
		rc = tk_dist_reduce_runs_dev(tr->zrun, zero_runs(tr, 1), NULL, d);
	for (int i = 0; i < tr->n_tp && !rc && !tr->o->zero; i++)
		rc = tk_dist_allreduce_f32_dev(tr->tp[i].g, tr->tp[i].n, NULL, d);
	return rc ? rc : tk_dist_nccl_sync(NULL, d);
}

/* Every shard's updated weights to every rank. */
static int zero_allgather(struct trainer *tr, struct tk_diag *d)
{
	if (tr->nccl) { /* UNVERIFIED: broadcasts from each piece's shard */
		int rc = tk_dist_bcast_runs_dev(tr->zrun, zero_runs(tr, 0), NULL, d);
		return rc ? rc : tk_dist_nccl_sync(NULL, d);
	}
	for (size_t w0 = 0; w0 < tr->ztotal; w0 += tr->zwin_n) {
		size_t w1 = min_z(tr->ztotal, w0 + tr->zwin_n);
		size_t a = max_z(w0, tr->zlo), b = min_z(w1, tr->zhi);
		shard_counts(tr, w0, w1);
		if (a < b)
			flat_copy(tr, a, b, tr->zwin + (a - w0), 0, 1);
		int rc = tk_dist_allgather_f32(tr->zwin, tr->zcnt, d);
		if (rc)
			return rc;
		flat_copy(tr, w0, w1, tr->zwin, 0, 0);
	}
	return 0;
}

/* Parameter i's exp_avg (k 0) or exp_avg_sq (k 1) whole, in the arena
 * layout, into ztmp on rank 0 from the ranks' shards.  Every rank calls it
 * for the same i and k. */
static int zero_gather_state(struct trainer *tr, int i, int k, struct tk_diag *d)
{
	const struct tr_seg *sg = seg_of(tr, i);
	const float *st = k ? tr->exp_avg_sq : tr->exp_avg;
	shard_counts(tr, tr->zoff[i], tr->zoff[i + 1]);
	return tk_dist_gather_f32(sg ? st + sg->loc : st, tk_dist_rank() ? NULL : tr->ztmp,
				  tr->zcnt, 0, d);
}

/* The other ranks' side of save_optimizer's gathers. */
static int zero_send_state(struct trainer *tr, struct tk_diag *d)
{
	int rc = 0;
	for (int i = 0; i < tr->n_tp && !rc; i++)
		for (int k = 0; k < 2 && !rc; k++)
			rc = zero_gather_state(tr, i, k, d);
	return rc;
}

/* Optimizer state: arenas of the parameters' layout; on disk each tensor
 * is in its checkpoint layout (Conv1D [in, out]) under NAME.exp_avg and
 * NAME.exp_avg_sq. */
static int save_optimizer(struct trainer *tr, const char *path, struct tk_diag *d)
{
	const struct tk_model *m = &tr->m;
	float *buf = tk_mallocn(tr->n_opt_full ? 2 * tr->n_opt_full : 1, sizeof(float));
	tk_safetensors_writer_t *w = NULL;
	if (!buf || tk_safetensors_writer_new(&w)) {
		free(buf);
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	}
	int rc = 0;
	char name[256], step[32];
	float *at = buf;
	for (int i = 0; i < tr->n_tp && !rc; i++) {
		const struct tk_param *p = &tr->tp[i];
		for (int k = 0; k < 2 && !rc; k++) {
			const float *st = (k ? tr->exp_avg_sq : tr->exp_avg) + tr->popt[i];
			if (tr->o->zero && (rc = zero_gather_state(tr, i, k, d)))
				break;
			if (tr->o->zero)
				st = tr->ztmp;
			if (p->t) /* the arena layout of a base tensor at st */
				tk_model_export(m, p->t, st - p->t->off, at);
			else
				memcpy(at, st, p->n * sizeof(float));
			snprintf(name, sizeof(name), "%s.%s", p->name, k ? "exp_avg_sq" : "exp_avg");
			rc = tk_safetensors_writer_add(w, name, TK_DT_F32, p->ndim, p->shape, at, d);
			at += p->n;
		}
	}
	snprintf(step, sizeof(step), "%ld", tr->global_step);
	if (!rc && (tk_safetensors_writer_metadata(w, "optimizer", "adamw_torch") ||
		    tk_safetensors_writer_metadata(w, "step", step)))
		rc = tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	if (rc)
		tk_safetensors_writer_free(w);
	else
		rc = tk_safetensors_writer_commit(w, path, 1, d);
	free(buf);
	return rc;
}

/* Reads the checkpoint's optimizer state (save_optimizer's layout), as
 * strictly as trainer_state.json: the metadata of an AdamW state of this
 * global step, exactly the two F32 tensors of each trained parameter, and
 * values AdamW can have reached (finite; exp_avg_sq, a mean of squares,
 * not negative). */
static int load_optimizer(struct trainer *tr, const char *path, struct tk_diag *d)
{
	tk_safetensors_t *st;
	int rc = tk_safetensors_open(&st, path, d);
	if (rc)
		return rc;
	const struct tk_model *m = &tr->m;
	float *tmp = NULL;
	size_t cap = 0;
	char name[256], step[32];
	const char *mo = tk_safetensors_metadata(st, "optimizer"), *ms = tk_safetensors_metadata(st, "step");
	snprintf(step, sizeof(step), "%ld", tr->global_step);
	if (!mo || strcmp(mo, "adamw_torch"))
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "__metadata__.optimizer: %s%.40s%s, not "
				 "\"adamw_torch\"", mo ? "\"" : "", mo ? mo : "missing", mo ? "\"" : "");
	else if (!ms || strcmp(ms, step))
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "__metadata__.step: %s%.40s%s, not the "
				 "trainer state's global_step %s", ms ? "\"" : "", ms ? ms : "missing",
				 ms ? "\"" : "", step);
	else if (tk_safetensors_count(st) != 2 * (size_t)tr->n_tp)
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "holds %zu tensors, not the %d of the "
				 "%d trained parameters' exp_avg and exp_avg_sq", tk_safetensors_count(st),
				 2 * tr->n_tp, tr->n_tp);
	for (int i = 0; i < tr->n_tp && !rc; i++) {
		const struct tk_param *p = &tr->tp[i];
		for (int k = 0; k < 2 && !rc; k++) {
			const struct tk_tensor_info *ti;
			float *dst = tr->o->zero ? tr->ztmp : (k ? tr->exp_avg_sq : tr->exp_avg) + tr->popt[i];
			snprintf(name, sizeof(name), "%s.%s", p->name, k ? "exp_avg_sq" : "exp_avg");
			if ((rc = tk_safetensors_expect(st, name, p->ndim, p->shape, &ti, d)))
				break;
			if (ti->dtype != TK_DT_F32) {
				rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tensor %s: %s, not F32", name,
						 tk_dtype_name(ti->dtype));
				break;
			}
			if ((rc = tk_grow(&tmp, &cap, p->n, sizeof(*tmp)))) {
				rc = tk_diag_set(d, rc, path, -1, "out of memory");
				break;
			}
			if ((rc = tk_safetensors_to_f32(ti, tmp, d)))
				break;
			for (size_t j = 0; j < p->n; j++)
				if (!isfinite(tmp[j]) || (k && tmp[j] < 0)) {
					rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
							 "tensor %s: element %zu is %g, which AdamW's %s "
							 "cannot be", name, j, (double)tmp[j],
							 k ? "exp_avg_sq" : "exp_avg");
					break;
				}
			if (rc)
				break;
			if (p->t)
				tk_model_import(m, p->t, tmp, dst - p->t->off);
			else
				memcpy(dst, tmp, p->n * sizeof(float));
			const struct tr_seg *sg = tr->o->zero ? seg_of(tr, i) : NULL;
			if (sg) /* ZeRO-1: this process's shard of it */
				memcpy((k ? tr->exp_avg_sq : tr->exp_avg) + sg->loc, dst + sg->a,
				       sg->n * sizeof(float));
		}
	}
	free(tmp);
	tk_safetensors_close(st);
	return rc;
}

static void add_num(cJSON *o, const char *k, double v)
{
	cJSON_AddItemToObject(o, k, cJSON_CreateNumber(v));
}

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

static int save_state(struct trainer *tr, const char *path, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	char buf[64];
	cJSON *r = cJSON_CreateObject();
	if (!r)
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	cJSON_AddNullToObject(r, "best_global_step");
	cJSON_AddNullToObject(r, "best_metric");
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
	cJSON_AddItemToObject(r, "stateful_callbacks", cJSON_CreateObject());
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
	int rc = write_json(r, path, d);
	cJSON_Delete(r);
	return rc;
}

/* A checkpoint that could not be saved (its temporary directory is gone):
 * the message names the checkpoint, the file in it that failed and the
 * last good checkpoint; the system error stays in d->sys_errno. */
static int save_failed(struct trainer *tr, const char *path, const char *tmp, int rc,
		       struct tk_diag *d)
{
	if (!d)
		return rc;
	if (rc == TK_E_INVAL && !d->msg[0])
		return tk_diag_set(d, rc, path, -1, "path too long");
	char msg[sizeof(d->msg) + 2 * PATH_LEN + 64], ck[PATH_LEN + 64] = "";
	size_t n = strlen(tmp);
	const char *file = "";
	if (n && !strncmp(d->path, tmp, n) && d->path[n] == '/')
		file = d->path + n + 1;
	else if (strcmp(d->path, path))
		file = d->path;
	if (tr->saved)
		snprintf(ck, sizeof(ck), " (the last good checkpoint is %s)", tr->last_ckpt);
	snprintf(msg, sizeof(msg), "cannot save checkpoint%s: %s%s%s", ck, file, *file ? ": " : "",
		 d->msg);
	int e = d->sys_errno;
	tk_diag_set(d, rc, path, -1, "%s", msg);
	d->sys_errno = e;
	return rc;
}

/* The model, or the adapter when one is trained, into dir. */
static int save_model(struct trainer *tr, const char *dir, struct tk_diag *d)
{
	if (tr->m.lora)
		return tk_peft_save(&tr->m, dir, 1, d);
	return tk_model_save(&tr->m, dir, 1, d);
}

static int save_checkpoint(struct trainer *tr, struct tk_diag *d)
{
	char path[PATH_LEN], file[PATH_LEN], tmp[PATH_LEN];
	if (tk_dist_rank()) /* data parallel: rank 0 writes (ZeRO-1: the state from all) */
		return tr->o->zero ? zero_send_state(tr, d) : 0;
	if (ckpt_path(path, sizeof(path), tr->out, tr->global_step))
		return tk_diag_set(d, TK_E_INVAL, tr->out, -1, "path too long");
	struct tk_afile_dir ad;
	int rc = tk_afile_dir_open(&ad, path, 1, d);
	if (rc)
		return save_failed(tr, path, "", rc, d);
	snprintf(tmp, sizeof(tmp), "%s", ad.tmp);
	if (!(rc = save_model(tr, ad.tmp, d)) &&
	    !(rc = tk_path_join(file, sizeof(file), ad.tmp, "optimizer.safetensors")) &&
	    !(rc = save_optimizer(tr, file, d)) &&
	    !(rc = tk_path_join(file, sizeof(file), ad.tmp, "trainer_state.json")) &&
	    !(rc = save_state(tr, file, d)) && !(rc = copy_side_files(tr, ad.tmp, d)))
		rc = tk_afile_dir_commit(&ad, d);
	else
		tk_afile_dir_abort(&ad);
	if (rc)
		return save_failed(tr, path, tmp, rc, d);
	tr->saved = 1;
	snprintf(tr->last_ckpt, sizeof(tr->last_ckpt), "%s", path);
	struct tk_train_event ev = { .kind = TK_TRAIN_EV_SAVE, .step = tr->global_step,
				     .max_steps = tr->max_steps, .epoch = tr->epoch_f,
				     .path = path };
	event(tr, &ev);
	return rotate(tr, d);
}

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
static int evaluate(struct trainer *tr, double *out, struct tk_diag *d)
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
	double t = now_s(), loss;
	if (tk_dist_rank()) /* data parallel: rank 0 evaluates and logs */
		return 0;
	int rc = evaluate(tr, &loss, d);
	if (rc)
		return rc;
	double rt = now_s() - t;
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
	struct tk_train_event ev = { .kind = TK_TRAIN_EV_EVAL, .step = tr->global_step,
				     .max_steps = tr->max_steps, .epoch = tr->epoch_f,
				     .eval_loss = loss, .eval_perplexity = exp(loss) };
	event(tr, &ev);
	return log_entry(tr, e, d);
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

static int has_tokenizer(const char *dir)
{
	char p[PATH_LEN];
	return (!tk_path_join(p, sizeof(p), dir, "tokenizer.json") && tk_path_exists(p)) ||
	       (!tk_path_join(p, sizeof(p), dir, "vocab.json") && tk_path_exists(p));
}

/* An absolute path for p (as it is when realpath fails). */
static void absolute(char *p, size_t size)
{
	char buf[PATH_MAX];
	if (p[0] && realpath(p, buf) && strlen(buf) < size)
		snprintf(p, size, "%s", buf);
}

/* The tokenizer the blocks must come from (its fingerprint), and where the
 * side files come from: --tokenizer, else the model directory src (which
 * a resumed run replaces with the one its checkpoint recorded: the side
 * files the run started with, not the checkpoint's copies, which
 * --save-total-limit may have removed). */
static int load_tokenizer(struct trainer *tr, const char *src, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	const char *tok = o->tokenizer;
	int recorded = tr->src_recorded && !o->tokenizer;
	if (recorded) {
		src = tr->src_dir[0] ? tr->src_dir : NULL;
		if (tr->src_file[0])
			tok = tr->src_file;
	}
	if (!tok && src && has_tokenizer(src))
		tok = src;
	if (src)
		snprintf(tr->side_dir, sizeof(tr->side_dir), "%s", src);
	if (o->tokenizer) { /* its files, not the model's, go with the outputs */
		tr->side_is_tok = 1;
		if (tk_path_is_dir(o->tokenizer))
			snprintf(tr->side_dir, sizeof(tr->side_dir), "%s", o->tokenizer);
		else {
			tr->side_dir[0] = 0;
			snprintf(tr->side_file, sizeof(tr->side_file), "%s", o->tokenizer);
		}
	} else if (recorded && tr->src_file[0]) {
		tr->side_is_tok = 1;
		snprintf(tr->side_file, sizeof(tr->side_file), "%s", tr->src_file);
	}
	absolute(tr->side_dir, sizeof(tr->side_dir));
	absolute(tr->side_file, sizeof(tr->side_file));
	if (recorded) {
		tr->side_mask = tr->src_mask;
		int rc = o->eval_only ? 0 : side_check(tr, d);
		if (rc)
			return rc;
		if (tr->side_file[0] && !tk_path_exists(tr->side_file) && !o->eval_only)
			return tk_diag_set(d, TK_E_FORMAT, tr->side_file, -1,
					   "missing: the run started with this tokenizer, which its "
					   "checkpoints and output take (put it back)");
	} else { /* a checkpoint that recorded nothing: what it has (-1) */
		tr->side_mask = -1;
		if (!tr->resume_dir[0] || o->tokenizer) /* a new record: what side_dir has */
			tr->side_mask = (int)side_want(tr);
	}
	if (!tok)
		return 0;
	tk_tokenizer_t *t;
	int rc = tk_tokenizer_load(&t, tok, d);
	if (rc)
		return rc == TK_E_INVAL ? TK_E_FORMAT : rc;
	snprintf(tr->fingerprint, sizeof(tr->fingerprint), "%s", tk_tokenizer_fingerprint(t));
	tr->have_fp = 1;
	tk_tokenizer_free(t);
	return 0;
}

/* The memory plan from the configuration alone (tk_memplan_model), before
 * the model is made: a model far too large for the device (or the host) is
 * refused before anything of it is allocated.  c: the configuration, or
 * NULL to read dir's config.json; dir: the model directory (its
 * quantization_config), or NULL.  full: the base is trained (no
 * adapters). */
static int preplan(struct trainer *tr, const struct tk_model_config *c, const char *dir, int full,
		   struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	struct tk_model_config own;
	struct tk_bnb_config q = { 0 };
	int rc;
	if (!c && (rc = tk_config_load(&own, dir, d)))
		return rc;
	if (dir && (rc = tk_bnb_config_read(dir, &q, d)))
		return rc;
	return tk_memplan_check_model(c ? c : &own, full && !o->eval_only, q.bits != 0,
				       o->zero ? tk_dist_size() : 1, tr->be, tr->be->i->name, d);
}

static int load_base(struct trainer *tr, const char *src, int full, struct tk_diag *d)
{
	char p[PATH_LEN];
	int rc;
	if (tk_path_join(p, sizeof(p), src, "config.json"))
		return tk_diag_set(d, TK_E_INVAL, src, -1, "path too long");
	if (!tk_path_is_dir(src))
		return tk_diag_set(d, TK_E_FORMAT, src, -1,
				   "not a model directory (config.json + model.safetensors)");
	if (!tk_path_exists(p))
		return tk_diag_set(d, TK_E_FORMAT, src, -1,
				   "no config.json: not a Hugging Face model directory");
	if ((rc = preplan(tr, NULL, src, full, d)))
		return rc;
	return tk_model_load(&tr->m, src, tr->be, d);
}

static int same_num(double a, double b)
{
	return fabs(a - b) <= 1e-12 * fmax(fabs(a), fabs(b));
}

/* Whether every name of a[na] is in b[nb] and every one of b in a. */
static int same_names(const char (*a)[TK_LORA_NAME], int na, const char (*b)[TK_LORA_NAME],
		      int nb)
{
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < na; i++) {
			int j = 0;
			while (j < nb && strcmp(a[i], b[j]))
				j++;
			if (j == nb)
				return 0;
		}
		const char (*t)[TK_LORA_NAME] = a;
		int nt = na;
		a = b, na = nb, b = t, nb = nt;
	}
	return 1;
}

/* Resuming an adapter with --lora-* options: they must be the checkpoint's
 * adapter configuration (the one that resumes; a rerun of the first
 * command with --resume-from-checkpoint added, as the pipelines do, is
 * fine).  Target modules and modules to save count where given; all-linear
 * is every linear layer of the blocks.  TK_E_INVAL naming what differs. */
static int same_lora(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_lora_config *a = tr->o->lora, *b = &tr->m.lora->cfg;
	char what[96] = "";
	if (a->r != b->r)
		snprintf(what, sizeof(what), "r %d, not %d", b->r, a->r);
	else if (!same_num(a->alpha, b->alpha))
		snprintf(what, sizeof(what), "lora_alpha %g, not %g", b->alpha, a->alpha);
	else if (!same_num(a->dropout, b->dropout))
		snprintf(what, sizeof(what), "lora_dropout %g, not %g", b->dropout, a->dropout);
	else if (a->bias != b->bias)
		snprintf(what, sizeof(what), "bias %s, not %s", tk_lora_bias_name(b->bias),
			 tk_lora_bias_name(a->bias));
	else if (!a->use_rslora != !b->use_rslora)
		snprintf(what, sizeof(what), "use_rslora %s", b->use_rslora ? "true" : "false");
	else if (a->n_targets == 1 && !strcmp(a->targets[0], "all-linear")) {
		int per = tr->m.cfg.arch == TK_ARCH_GPT2 ? 4 : 7; /* model.c's TK_LIN slots */
		if (tr->m.lora->n_ad != per * tr->m.cfg.n_layer)
			snprintf(what, sizeof(what), "other target_modules than all-linear");
	} else if (a->n_targets && !same_names(a->targets, a->n_targets, b->targets, b->n_targets))
		snprintf(what, sizeof(what), "other target_modules");
	else if (a->n_modules_to_save && !same_names(a->modules_to_save, a->n_modules_to_save,
						     b->modules_to_save, b->n_modules_to_save))
		snprintf(what, sizeof(what), "other modules_to_save");
	if (!what[0])
		return 0;
	return tk_diag_set(d, TK_E_INVAL, tr->resume_dir, -1,
			   "its adapter has %s: the checkpoint's adapter_config.json is the "
			   "configuration that resumes (leave out the --lora-* options)", what);
}

/* Resuming an adapter: the base from --model, else the adapter's
 * base_model_name_or_path. */
static int load_adapter_ckpt(struct trainer *tr, const char **src, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	struct tk_lora_config c;
	int rc = tk_peft_read_config(tr->resume_dir, &c, d);
	if (rc)
		return rc;
	const char *base = o->model_dir ? o->model_dir : c.base_model;
	if (!base[0] || !tk_path_is_dir(base))
		return tk_diag_set(d, TK_E_INVAL, tr->resume_dir, -1,
				   "an adapter checkpoint: give its base model with --model DIR");
	if ((rc = load_base(tr, base, 0, d)))
		return rc;
	*src = base;
	return tk_peft_load(&tr->m, tr->resume_dir, d);
}

static int load_model(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	int rc;
	const char *src = NULL;
	char p[PATH_LEN];
	if (tr->resume_dir[0] && !tk_path_join(p, sizeof(p), tr->resume_dir, "adapter_config.json") &&
	    tk_path_exists(p)) {
		rc = load_adapter_ckpt(tr, &src, d);
		if (!rc && o->lora)
			rc = same_lora(tr, d);
		if (!rc && has_tokenizer(tr->resume_dir))
			src = tr->resume_dir;
	} else if (tr->resume_dir[0] && o->lora) {
		return tk_diag_set(d, TK_E_INVAL, tr->resume_dir, -1,
				   "a full-model checkpoint: --lora-* options do not apply to it "
				   "(leave them out)");
	} else if (tr->resume_dir[0]) {
		src = tr->resume_dir;
		if (!(rc = preplan(tr, NULL, src, 1, d)))
			rc = tk_model_load(&tr->m, src, tr->be, d);
	} else if (o->model_dir) {
		src = o->model_dir;
		rc = load_base(tr, src, !o->adapter && !o->lora, d);
		if (!rc && o->adapter)
			rc = tk_peft_load(&tr->m, o->adapter, d);
		else if (!rc && o->lora) {
			struct tk_lora_config c = *o->lora;
			if (!c.base_model[0])
				snprintf(c.base_model, sizeof(c.base_model), "%s", o->model_dir);
			rc = tk_lora_attach(&tr->m, &c, o->seed, d);
		}
	} else {
		struct tk_model_config c;
		if ((rc = tk_config_load(&c, o->init_config, d)))
			return rc;
		if ((rc = preplan(tr, &c, NULL, !o->lora, d)))
			return rc;
		rc = tk_model_init(&tr->m, &c, o->seed, tr->be, d);
		if (!rc && o->lora)
			rc = tk_lora_attach(&tr->m, o->lora, o->seed, d);
	}
	if (rc)
		return rc;
	if (tr->m.n_quantized && !tr->m.lora && !o->eval_only)
		return tk_diag_set(d, TK_E_INVAL, src, -1,
				   "a quantized model can only be trained with LoRA adapters "
				   "(add --lora-r 16, or dequantize it)");
	if (tr->m.lora) /* dropout masks: the run's seed, also for loaded adapters */
		tr->m.lora->seed = o->seed;
	tk_model_set_checkpointing(&tr->m, o->gradient_checkpointing);
	return load_tokenizer(tr, src, d);
}

/* A zeroed optimizer-state arena like the parameters' (aligned backend
 * memory).  Zeroed here, page by page on one thread: calloc's untouched
 * pages made the first AdamW step fault on every page from both threads,
 * about 2.5 s for GPT-2-small. */
static float *opt_state_new(struct trainer *tr)
{
	size_t n = tr->n_opt ? tr->n_opt : 1;
	float *p = tk_backend_alloc(tr->be, n * sizeof(float));
	if (p)
		memset(p, 0, n * sizeof(float));
	return p;
}

/* Reads and parses the checkpoint's trainer_state.json into *root (NULL
 * when it is not JSON; the caller deletes it); path gets the file's name. */
static int read_state(struct trainer *tr, char *path, size_t n, cJSON **root,
		      struct tk_diag *d)
{
	if (tk_path_join(path, n, tr->resume_dir, "trainer_state.json"))
		return tk_diag_set(d, TK_E_INVAL, tr->resume_dir, -1, "path too long");
	struct tk_buf b = { 0 };
	int rc = tk_read_file(path, &b, d);
	if (rc)
		return rc;
	*root = cJSON_Parse(b.data);
	tk_buf_free(&b);
	return 0;
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

/* Reads trainer_state.json of the checkpoint, checks every value tk takes
 * from it (struct sv) and that the run agrees with it, and restores the
 * loop state. */
static int load_state(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	char path[PATH_LEN];
	cJSON *r;
	int rc = read_state(tr, path, sizeof(path), &r, d);
	if (rc)
		return rc;
	struct sv v = { path, d };
	const cJSON *tk = sv_get(r, "tk"), *ver = sv_get(tk, "version");
	if (!cJSON_IsObject(r) || !cJSON_IsNumber(ver) || ver->valuedouble != STATE_VERSION) {
		cJSON_Delete(r);
		return tk_diag_set(d, TK_E_FORMAT, path, -1,
				   "not a trainer state that tk-train wrote (version %d)",
				   STATE_VERSION);
	}
	const cJSON *data, *sc = NULL, *gsc = sv_get(tk, "scaler");
	const char *fp, *hash, *seed, *dpath, *rng, *stype;
	long long gs, max_steps, nb, T, batch, accum, world = 1, skipped = 0, epoch_index, upd;
	long long last_logged, tokens, tracker = 0, n, warm, total;
	double epoch, tr_loss, total_loss, scale = 0, base_lr;
	uint64_t seed_v;
	enum tk_sched_type st;
	const cJSON *shuffle = sv_get(tk, "shuffle");
	char mine[32];
	snprintf(mine, sizeof(mine), "%016llx", (unsigned long long)tr->data_hash);
	/* what the checkpoint belongs to: the data, the batch, the processes,
	 * the block order */
	if ((rc = sv_obj(&v, tk, "data", "tk.data", &data)) ||
	    (rc = sv_str(&v, data, "path", "tk.data.path", &dpath)) ||
	    (rc = sv_int(&v, data, "n_blocks", "tk.data.n_blocks", 1, 1LL << 53, &nb)) ||
	    (rc = sv_int(&v, data, "seq_len", "tk.data.seq_len", 1, 1 << 24, &T)) ||
	    (rc = sv_str(&v, data, "fingerprint", "tk.data.fingerprint", &fp)) ||
	    (rc = sv_str(&v, data, "hash", "tk.data.hash", &hash)) ||
	    (rc = sv_int(&v, tk, "per_device_train_batch_size", "tk.per_device_train_batch_size",
			 1, 1 << 20, &batch)) ||
	    (rc = sv_int(&v, tk, "gradient_accumulation_steps", "tk.gradient_accumulation_steps",
			 1, 1 << 20, &accum)) ||
	    (sv_get(tk, "world_size") && /* absent before data parallel: 1 */
	     (rc = sv_int(&v, tk, "world_size", "tk.world_size", 1, 1 << 20, &world))) ||
	    (rc = sv_str(&v, tk, "seed", "tk.seed", &seed)))
		goto out;
	if (parse_u64(seed, &seed_v)) {
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
				 "tk.seed: \"%.40s\" is not a decimal from 0 to 18446744073709551615",
				 seed);
		goto out;
	}
	if (!cJSON_IsBool(shuffle)) {
		rc = sv_fail(&v, "tk.shuffle", "%s: not true or false%s", "");
		goto out;
	}
	if ((uint64_t)nb != tr->train.n_blocks || (uint32_t)T != tr->train.seq_len ||
	    strcmp(fp, tr->train.info.fingerprint) || strcmp(hash, mine)) {
		rc = tk_diag_set(d, TK_E_MISMATCH, tr->data_path, -1,
				 "not the blocks the checkpoint %s was trained on (%lld blocks of "
				 "%lld tokens there, %llu of %u here)", tr->resume_dir, nb, T,
				 (unsigned long long)tr->train.n_blocks, tr->train.seq_len);
		goto out;
	}
	if (batch != o->batch || accum != o->grad_accum) {
		rc = tk_diag_set(d, TK_E_MISMATCH, tr->resume_dir, -1,
				 "trained with per_device_train_batch_size %lld and "
				 "gradient_accumulation_steps %lld, not %d and %d", batch, accum,
				 o->batch, o->grad_accum);
		goto out;
	}
	if (world != tk_dist_size()) {
		rc = tk_diag_set(d, TK_E_MISMATCH, tr->resume_dir, -1,
				 "trained on %lld process%s, resumed on %d: each step's data "
				 "depends on it (resume it %s%lld)", world, world == 1 ? "" : "es",
				 tk_dist_size(), world == 1 ? "without mpirun, or -np " :
				 "with mpirun -np ", world);
		goto out;
	}
	if (seed_v != o->seed || cJSON_IsTrue(shuffle) != !!o->shuffle) {
		rc = tk_diag_set(d, TK_E_MISMATCH, tr->resume_dir, -1,
				 "trained with seed %s%s (the block order depends on it)", seed,
				 cJSON_IsTrue(shuffle) ? "" : " and --no-shuffle");
		goto out;
	}
	/* where it stopped: a step of its run, at the place in the data that
	 * step reaches with these blocks and batches */
	if ((rc = sv_int(&v, r, "max_steps", "max_steps", 1, LONG_MAX / 2, &max_steps)) ||
	    (rc = sv_int(&v, r, "global_step", "global_step", 0, max_steps, &gs)) ||
	    (rc = sv_int(&v, tk, "epoch_index", "tk.epoch_index", 0, LONG_MAX / 2, &epoch_index)) ||
	    (rc = sv_int(&v, tk, "update_in_epoch", "tk.update_in_epoch", 0, tr->nupe - 1, &upd)) ||
	    (rc = sv_num(&v, r, "epoch", "epoch", 0, 1e18, &epoch)))
		goto out;
	if (epoch_index != gs / tr->nupe || upd != gs % tr->nupe) {
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
				 "tk.epoch_index %lld, tk.update_in_epoch %lld: not where global_step "
				 "%lld is with %ld updates per epoch (%lld, %lld)", epoch_index, upd,
				 gs, tr->nupe, gs / tr->nupe, gs % tr->nupe);
		goto out;
	}
	double want = epoch_at(tr, (long)gs);
	if (fabs(epoch - want) > 1e-9 * (want > 1 ? want : 1)) {
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
				 "epoch: %.17g is not the epoch of global_step %lld (%.17g)", epoch, gs,
				 want);
		goto out;
	}
	/* the loop's counters and sums */
	if ((rc = sv_num(&v, tk, "tr_loss", "tk.tr_loss", 0, 3.4e38, &tr_loss)) ||
	    (rc = sv_num(&v, tk, "total_loss", "tk.total_loss", 0, 1e300, &total_loss)) ||
	    (rc = sv_int(&v, tk, "last_logged", "tk.last_logged", 0, gs, &last_logged)) ||
	    (sv_get(tk, "skipped_steps") && /* absent before fp16: none */
	     (rc = sv_int(&v, tk, "skipped_steps", "tk.skipped_steps", 0, gs, &skipped))))
		goto out;
	n = gs * batch * accum * world; /* at most this many blocks of T tokens */
	if ((rc = sv_int(&v, r, "num_input_tokens_seen", "num_input_tokens_seen", 0,
			 n > (1LL << 53) / T ? 1LL << 53 : n * T, &tokens)) ||
	    (rc = sv_int(&v, r, "num_train_epochs", "num_train_epochs", 1, LONG_MAX / 2, &n)) ||
	    (rc = sv_int(&v, r, "logging_steps", "logging_steps", 1, LONG_MAX / 2, &n)) ||
	    (rc = sv_int(&v, r, "eval_steps", "eval_steps", 1, LONG_MAX / 2, &n)) ||
	    (rc = sv_int(&v, r, "save_steps", "save_steps", 1, LONG_MAX / 2, &n)) ||
	    (rc = sv_int(&v, r, "train_batch_size", "train_batch_size", batch, batch, &n)) ||
	    (rc = check_history(&v, sv_get(r, "log_history"), (long)gs)))
		goto out;
	/* the schedule the run had, and the RNG (none: the order is seeded) */
	const cJSON *sched;
	if ((rc = sv_obj(&v, tk, "schedule", "tk.schedule", &sched)) ||
	    (rc = sv_str(&v, sched, "type", "tk.schedule.type", &stype)) ||
	    (rc = sv_num(&v, sched, "base_lr", "tk.schedule.base_lr", 0, 1e300, &base_lr)) ||
	    (rc = sv_int(&v, sched, "total_steps", "tk.schedule.total_steps", max_steps, max_steps,
			 &total)) ||
	    /* --warmup-steps N may exceed the run (the lr then never peaks) */
	    (rc = sv_int(&v, sched, "warmup_steps", "tk.schedule.warmup_steps", 0, LONG_MAX / 2,
			 &warm)) ||
	    (rc = sv_str(&v, tk, "rng", "tk.rng", &rng)))
		goto out;
	if (tk_sched_parse(stype, &st, NULL)) {
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tk.schedule.type: \"%.40s\" is not a "
				 "schedule tk knows", stype);
		goto out;
	}
	if (strcmp(rng, STATE_RNG)) {
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tk.rng: \"%.40s\" is not a state tk "
				 "can restore (\"%s\")", rng, STATE_RNG);
		goto out;
	}
	/* GradScaler's state: a power of two as its scale always is */
	if (gsc) {
		int ex;
		if ((rc = sv_obj(&v, tk, "scaler", "tk.scaler", &sc)) ||
		    (rc = sv_num(&v, sc, "scale", "tk.scaler.scale", 1e-45, 3.4e38, &scale)) ||
		    (rc = sv_int(&v, sc, "growth_tracker", "tk.scaler.growth_tracker", 0, gs,
				 &tracker)))
			goto out;
		if (frexp(scale, &ex) != 0.5) {
			rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tk.scaler.scale: %.17g is not a "
					 "power of 2", scale);
			goto out;
		}
	}
	tr->global_step = (long)gs;
	tr->tr_loss = (float)tr_loss;
	tr->total_loss = total_loss;
	tr->last_logged = (long)last_logged;
	tr->epoch_f = epoch;
	tr->tokens_seen = (uint64_t)tokens;
	/* a run trained without fp16 has no scaler, which then starts anew */
	tr->skipped = (long)skipped;
	if (o->prec == TK_PREC_FP16 && sc) {
		tr->loss_scale = (float)scale;
		tr->growth_tracker = (long)tracker;
	}
	cJSON_Delete(tr->log_history);
	tr->log_history = cJSON_DetachItemFromObject(r, "log_history");
out:
	cJSON_Delete(r);
	return rc;
}

/* tk.source of the resumed checkpoint's trainer_state.json: the side
 * directory (and the side files it had) or file the run started with
 * (src_recorded 0 when the checkpoint records none). */
static int read_source(struct trainer *tr, struct tk_diag *d)
{
	char path[PATH_LEN];
	cJSON *r;
	int rc = read_state(tr, path, sizeof(path), &r, d);
	if (rc)
		return rc;
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
	cJSON_Delete(r);
	return rc;
}

/* Creates out and the directories above it that are missing (mkdir -p);
 * top gets the first one it made ("" when out existed). */
static int mkdir_p(const char *out, char *top, size_t size, struct tk_diag *d)
{
	char p[PATH_LEN];
	top[0] = 0;
	if (snprintf(p, sizeof(p), "%s", out) >= (int)sizeof(p))
		return tk_diag_set(d, TK_E_INVAL, out, -1, "path too long");
	for (char *s = p + 1; ; s++) {
		if (*s && *s != '/')
			continue;
		char c = *s;
		*s = 0;
		if (!mkdir(p, 0755)) {
			if (!top[0])
				snprintf(top, size, "%s", p);
		} else if (errno != EEXIST || (!c && !tk_path_is_dir(p))) {
			int e = errno == EEXIST ? ENOTDIR : errno;
			errno = e;
			return tk_diag_sys(d, out, "cannot create output directory");
		}
		if (!c)
			return 0;
		*s = c;
	}
}

/* The holder's PID from the lock file fd, 0 when it has not written it yet. */
static long lock_holder(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

/* Makes OUT (mkdir -p) and takes its lock for the whole run: one run at a
 * time writes into a directory.  TK_E_EXISTS naming the PID of the run
 * that holds it.  The file is removed when the run ends (train_free); one
 * left by a killed run is taken over. */
static int lock_output(struct trainer *tr, struct tk_diag *d)
{
	int rc;
	if (tk_path_exists(tr->out) && !tk_path_is_dir(tr->out))
		return tk_diag_set(d, TK_E_FORMAT, tr->out, -1, "not a directory");
	if ((rc = mkdir_p(tr->out, tr->created_top, sizeof(tr->created_top), d)))
		return rc;
	if (tk_path_join(tr->lock_path, sizeof(tr->lock_path), tr->out, LOCK_NAME))
		return tk_diag_set(d, TK_E_INVAL, tr->out, -1, "path too long");
	for (int tries = 0; tries < 100; tries++) {
		struct stat a, b;
		int fd = open(tr->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return tk_diag_sys(d, tr->lock_path, "cannot create lock file");
		if (flock(fd, LOCK_EX | LOCK_NB)) {
			int e = errno;
			long pid = e == EWOULDBLOCK ? lock_holder(fd) : 0;
			close(fd);
			if (e != EWOULDBLOCK) {
				errno = e;
				return tk_diag_sys(d, tr->lock_path, "cannot lock");
			}
			char who[48] = "";
			tr->created_top[0] = 0; /* OUT is the other run's, even if made here */
			if (pid > 0)
				snprintf(who, sizeof(who), " (pid %ld)", pid);
			return tk_diag_set(d, TK_E_EXISTS, tr->out, -1,
					   "in use by another tk-train run%s; wait for it to end or "
					   "give another --output-dir", who);
		}
		/* the run that held it may have removed the file in between:
		 * then this lock is on a file nobody else opens, take it anew */
		if (fstat(fd, &a) || stat(tr->lock_path, &b) || a.st_ino != b.st_ino ||
		    a.st_dev != b.st_dev) {
			close(fd);
			continue;
		}
		char pid[32];
		int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)n, 0) != n) {
			rc = tk_diag_sys(d, tr->lock_path, "cannot write");
			close(fd);
			return rc;
		}
		tr->lock_fd = fd;
		return 0;
	}
	return tk_diag_set(d, TK_E_IO, tr->lock_path, -1, "cannot lock: removed again and again");
}

static void unlock_output(struct trainer *tr)
{
	if (tr->lock_fd < 0)
		return;
	unlink(tr->lock_path);
	close(tr->lock_fd);
	tr->lock_fd = -1;
}

/* Makes the output directory ready: holding nothing of an earlier run
 * unless force or resuming. */
static int prepare_output(struct trainer *tr, struct tk_diag *d)
{
	const char *out = tr->out;
	if (tr->created_top[0]) /* lock_output made it: nothing of a run in it */
		return 0;
	if (access(out, W_OK | X_OK))
		return tk_diag_sys(d, out, "cannot write to output directory");
	struct ckpt_list l;
	int rc = list_ckpts(out, &l, 1, d);
	if (rc)
		return rc;
	char p[PATH_LEN];
	int earlier = l.n > 0 || (!tk_path_join(p, sizeof(p), out, "metrics.jsonl") && tk_path_exists(p)) ||
		      (!tk_path_join(p, sizeof(p), out, "model.safetensors") && tk_path_exists(p));
	if (earlier && !tr->resume_dir[0] && !tr->o->force) {
		free(l.step);
		return tk_diag_set(d, TK_E_EXISTS, out, -1,
				   "holds an earlier run (use --force to replace it, or "
				   "--resume-from-checkpoint latest to continue it)");
	}
	if (earlier && !tr->resume_dir[0]) { /* force: a fresh run */
		for (size_t i = 0; i < l.n && !rc; i++) {
			if (ckpt_path(p, sizeof(p), out, l.step[i]) || tk_afile_rmtree(p))
				rc = tk_diag_sys(d, p, "cannot remove");
		}
		if (!rc && !tk_path_join(p, sizeof(p), out, "metrics.jsonl") && unlink(p) && errno != ENOENT)
			rc = tk_diag_sys(d, p, "cannot remove");
	}
	free(l.step);
	return rc;
}

static int load_data(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	char spill[PATH_LEN];
	const char *path = tr->data_path;
	int rc;
	if (!strcmp(path, "-") && !o->eval_only) {
		if (tk_path_join(spill, sizeof(spill), tr->out, SPILL_NAME))
			return tk_diag_set(d, TK_E_INVAL, tr->out, -1, "path too long");
		rc = tk_data_load(&tr->train, "-", "train", 0, spill, d);
		tr->spilled = 1;
	} else {
		int dir = tk_path_is_dir(path);
		/* --eval-only: the eval split when the directory has one */
		const char *split = "train";
		if (o->eval_only && dir && !o->eval_data) {
			if ((rc = tk_data_load(&tr->eval, path, "eval", 1, NULL, d)))
				return rc;
			if (tr->eval.n_blocks)
				goto check;
			tk_data_free(&tr->eval);
		}
		rc = tk_data_load(o->eval_only && !o->eval_data ? &tr->eval : &tr->train, path,
				  split, 0, NULL, d);
		if (rc || o->eval_only)
			goto eval_data;
		if (dir && !o->eval_data)
			rc = tk_data_load(&tr->eval, path, "eval", 1, NULL, d);
	}
eval_data:
	if (!rc && o->eval_data)
		rc = tk_data_load(&tr->eval, o->eval_data, tk_path_is_dir(o->eval_data) ? "eval" : "train", 0,
				  NULL, d);
	if (rc)
		return rc;
check:;
	uint32_t vocab = (uint32_t)tr->m.cfg.vocab_size;
	const char *fp = tr->have_fp ? tr->fingerprint : NULL;
	if ((rc = tk_data_check(&tr->train, path, fp, vocab, d)) ||
	    (rc = tk_data_check(&tr->eval, o->eval_data ? o->eval_data : path, fp, vocab, d)))
		return rc;
	const struct tk_data *dt[2] = { &tr->train, &tr->eval };
	for (int i = 0; i < 2; i++)
		if (dt[i]->n_blocks && tr->m.cfg.pos == TK_POS_LEARNED &&
		    dt[i]->seq_len > (uint32_t)tr->m.cfg.max_pos)
			return tk_diag_set(d, TK_E_MISMATCH, i && o->eval_data ? o->eval_data : path,
					   -1, "blocks of %u tokens are longer than the model's %d "
					   "positions (tk-pack --seq-len %d)", dt[i]->seq_len,
					   tr->m.cfg.max_pos, tr->m.cfg.max_pos);
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
	if (o->prec < TK_PREC_FP32 || o->prec > TK_PREC_FP16)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "unknown precision %d", o->prec);
	if (o->initial_scale_power < 0 || o->initial_scale_power > 127)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "--initial-scale-power: %d is not in 0..127", o->initial_scale_power);
	if (o->loss_scale_window < 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "--loss-scale-window must be >= 1");
	if (o->zero < 0 || o->zero > 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "--zero: stage %d is not 0 or 1", o->zero);
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
	if (tr->metrics)
		fclose(tr->metrics);
	unlock_output(tr);
}

/* Schedules and intervals from the data size, as set_initial_training_values. */
static void plan(struct trainer *tr)
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
	tr->sched.type = o->sched;
	tr->sched.base_lr = o->lr;
	tr->sched.total = tr->max_steps;
	tr->sched.warmup = tk_sched_warmup_steps(o->warmup, tr->max_steps);
	tr->logging_steps = interval(o->logging_steps, tr->max_steps);
	tr->eval_steps = interval(o->eval_steps > 0 ? o->eval_steps : o->logging_steps,
				  tr->max_steps);
	tr->save_steps = interval(o->save_steps > 0 ? o->save_steps : 500, tr->max_steps);
}

static struct tk_memplan_args mem_args(const struct trainer *tr)
{
	const struct tk_train_opts *o = tr->o;
	struct tk_memplan_args a = {
		.batch = o->batch, .seq_len = tr->T, .ckpt = o->gradient_checkpointing,
		.eval_batch = o->eval_strategy != TK_INTERVAL_NO && tr->eval.n_blocks
				      ? o->eval_batch : 0,
		.opt_shards = o->zero ? tk_dist_size() : 1,
		.prec = o->prec != TK_PREC_FP32 ? o->prec : tr->be->prec,
	};
	return a;
}

/* The run's memory, planned before the gradients, the optimizer state and
 * the activations are allocated: TK_E_NOMEM (d says what would fit) when
 * it goes beyond the backend's limit. */
static int mem_plan(struct trainer *tr, struct tk_diag *d)
{
	struct tk_memplan_args a = mem_args(tr);
	int rc = tk_memplan_check(&tr->m, tr->be, &a, tr->be->i->name, &tr->mplan, d);
	tr->planned = !rc;
	return rc;
}

/* An allocation failed although the plan fitted: the message says so,
 * with the memory held, what would need less, and the last checkpoint
 * (written atomically before, untouched by the failure). */
static void oom_message(struct trainer *tr, struct tk_diag *d)
{
	struct tk_mem_info mi;
	char plan[32], use[32], lim[32], fix[96], ck[PATH_LEN + 64] = "";
	char why[sizeof(d->msg)];
	tk_backend_mem_info(tr->be, &mi);
	tk_memplan_fmt(plan, sizeof(plan), tr->mplan.total);
	tk_memplan_fmt(use, sizeof(use), mi.in_use);
	tk_memplan_fmt(lim, sizeof(lim), mi.limit);
	snprintf(why, sizeof(why), "%s", d->msg[0] ? d->msg : "out of memory");
	if (tr->o->batch > 1)
		snprintf(fix, sizeof(fix), "%suse --per-device-train-batch-size %d",
			 tr->o->gradient_checkpointing ? "" : "add --gradient-checkpointing or ",
			 tr->o->batch / 2);
	else
		snprintf(fix, sizeof(fix), "%s",
			 tr->o->gradient_checkpointing ? "pack shorter blocks"
						       : "add --gradient-checkpointing");
	if (tr->saved)
		snprintf(ck, sizeof(ck), "; the last checkpoint, %s, is intact", tr->last_ckpt);
	tk_diag_set(d, TK_E_NOMEM, tr->be->i->name, -1,
		    "step %ld: %s (%s in use%s%s, the plan was about %s): %s%s",
		    tr->global_step + 1, why, use, mi.limit ? " of " : "", mi.limit ? lim : "",
		    plan, fix, ck);
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

/* Data parallel on a CUDA backend in a build with NCCL: tr->nccl, and
 * the communicator on the backend's device (its init made it the current
 * one).  Every rank takes that path or none (the minimum over the ranks:
 * a rank on the CPU sends everyone through MPI, which works on the CUDA
 * backend's managed memory too).  UNVERIFIED: never run on several GPUs. */
static int nccl_setup(struct trainer *tr, struct tk_diag *d)
{
	if (!tk_dist_has_nccl() || tk_dist_size() < 2)
		return 0;
	int on = !strcmp(tr->be->i->name, "cuda");
	int rc = tk_dist_all_min(&on, d);
	if (!rc && on)
		rc = tk_dist_nccl_init(-1, d);
	tr->nccl = on && !rc;
	return rc;
}

/* Data parallel, after the backward passes: the gradients and the loss of
 * the step summed over the ranks (each rank's share is already divided by
 * the step's items of every rank), the input tokens counted over them. */
static int reduce_step(struct trainer *tr, float *step_loss, long items, double rows,
		       struct tk_diag *d)
{
	int rc = 0;
	if (tr->nccl)
		rc = nccl_grads(tr, d);
	else if (tr->o->zero)
		rc = zero_reduce_scatter(tr, d);
	for (int i = 0; i < tr->n_tp && !rc && !tr->o->zero && !tr->nccl; i++)
		rc = tk_dist_allreduce_f32(tr->tp[i].g, tr->tp[i].n, d);
	if (!rc)
		rc = tk_dist_allreduce_f32(step_loss, 1, d);
	if (rc)
		return rc;
	tr->tr_loss += *step_loss;
	if (items > 0) {
		tr->tokens_run += (uint64_t)rows * (uint64_t)tr->T;
		tr->tokens_seen += (uint64_t)rows * (uint64_t)tr->T;
	}
	return 0;
}

/* One optimizer step over n_mb micro-batches starting at micro-batch mb0
 * of the epoch's order.  Data parallel, rank r of N computes micro-batches
 * [n_mb * r / N, n_mb * (r + 1) / N) of them (perhaps none): the step sees
 * the micro-batches one process with N times the accumulation would. */
static int train_step(struct trainer *tr, const uint64_t *order, long mb0, int n_mb,
		      float *loss_out, double *norm_out, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	struct tk_model *m = &tr->m;
	int T = tr->T, rc, world = tk_dist_size(), rank = tk_dist_rank();
	size_t per = (size_t)o->batch * T;
	long items = 0;
	double counts[2] = { 0, 0 }; /* items, rows */
	long skip = (long)n_mb * rank / world; /* the micro-batches of lower ranks */
	mb0 += skip;
	/* LoRA dropout masks are keyed by the micro-batch's place in the whole
	 * run (epoch and index): the same in a resumed run and on any number
	 * of processes */
	uint64_t mb_global = (uint64_t)tr->cur_epoch * (uint64_t)tr->steps_in_epoch + (uint64_t)mb0;
	n_mb = (int)((long)n_mb * (rank + 1) / world - skip);
	for (int i = 0; i < n_mb; i++) {
		uint64_t first = (uint64_t)(mb0 + i) * (uint64_t)o->batch;
		uint64_t left = tr->train.n_blocks - first;
		int n = left < (uint64_t)o->batch ? (int)left : o->batch;
		tr->rows[i] = n;
		tk_data_batch(&tr->train, order, first, n, tr->ids + i * per, tr->labels + i * per);
		tk_model_shift_labels(tr->labels + i * per, n, T, tr->targets + i * per);
		items += count_items(tr, tr->labels + i * per, tr->targets + i * per, (size_t)n * T);
		counts[1] += n;
	}
	counts[0] = (double)items;
	if (world > 1 && (rc = tk_dist_allreduce_f64(counts, 2, d)))
		return rc;
	items = (long)counts[0];
	if ((rc = tk_model_zero_grad(m, d)))
		return rc;
	float step_loss = 0;
	int fp16 = o->prec == TK_PREC_FP16;
	/* fp16: the gradient of loss * scale (a power of 2: exact) */
	double gdiv = fp16 ? (double)items / (double)tr->loss_scale : (double)items;
	for (int i = 0; i < n_mb && items > 0; i++) {
		struct tk_model_loss l;
		if (m->lora) /* the forward counts it up by one */
			m->lora->step = mb_global + (uint64_t)i;
		if ((rc = tk_model_forward(m, tr->ids + i * per, tr->targets + i * per, tr->rows[i],
					   T, 1, gdiv, &l, d)))
			return rc;
		float li = (float)(l.sum / (double)items);
		if (!isfinite(li) && !fp16)
			return nonfinite(tr, "the loss", li, d);
		if ((rc = tk_model_backward(m, d)))
			return rc;
		if (!isfinite(li)) {
			if ((rc = poison_step(tr, d)))
				return rc;
			continue;
		}
		step_loss += li;
		if (world > 1)
			continue;
		tr->tr_loss += li;
		tr->tokens_run += (uint64_t)tr->rows[i] * T;
		tr->tokens_seen += (uint64_t)tr->rows[i] * T;
	}
	if (world > 1 && (rc = reduce_step(tr, &step_loss, items, counts[1], d)))
		return rc;
	double ss = 0;
	const struct tr_seg *sg = tr->seg;
	if (fp16) { /* GradScaler.unscale_: times 1/scale, exact in fp32 */
		float inv = (float)(1.0 / (double)tr->loss_scale);
		for (int s = 0; s < tr->n_seg && !rc; s++)
			rc = tk_scale(tr->be, tr->tp[sg[s].i].g + sg[s].a, inv, sg[s].n);
		if (rc)
			return tk_diag_set(d, rc, NULL, -1, "loss scaling: %s", tk_strerror(rc));
	}
	for (int s = 0; s < tr->n_seg && !rc; s++)
		rc = tk_sum_squares(tr->be, &ss, tr->tp[sg[s].i].g + sg[s].a, sg[s].n);
	if (rc)
		return tk_diag_set(d, rc, NULL, -1, "gradient norm: %s", tk_strerror(rc));
	if (tr->o->zero && world > 1 && (rc = tk_dist_allreduce_f64(&ss, 1, d)))
		return rc; /* ZeRO-1: the shards' sums of squares */
	double norm = sqrt(ss);
	tr->step_skipped = 0;
	if (!isfinite(norm) && fp16) {
		/* GradScaler: no optimizer step, scale times backoff_factor 0.5
		 * (not below the smallest float, as torch's fp32 scale) */
		tr->step_skipped = 1;
		tr->skipped++;
		tr->growth_tracker = 0;
		if (tr->loss_scale * 0.5f > 0.0f)
			tr->loss_scale *= 0.5f;
		tr->global_step++;
		*loss_out = step_loss;
		*norm_out = norm;
		return 0;
	}
	if (!isfinite(norm))
		return nonfinite(tr, "the gradient norm", norm, d);
	if (o->max_grad_norm > 0) { /* clip_grad_norm_ */
		float coef = tk_clip_coef(o->max_grad_norm, norm);
		for (int s = 0; s < tr->n_seg && coef < 1.0f && !rc; s++)
			rc = tk_scale(tr->be, tr->tp[sg[s].i].g + sg[s].a, coef, sg[s].n);
		if (rc)
			return tk_diag_set(d, rc, NULL, -1, "clipping: %s", tk_strerror(rc));
	}
	double lr = tk_sched_lr(&tr->sched, sched_pos(tr));
	for (int s = 0; s < tr->n_seg && !rc; s++) {
		const struct tk_param *p = &tr->tp[sg[s].i];
		rc = tk_adamw(tr->be, p->p + sg[s].a, p->g + sg[s].a, tr->exp_avg + sg[s].loc,
			      tr->exp_avg_sq + sg[s].loc, sg[s].n, lr, o->beta1, o->beta2, o->eps,
			      p->decay ? o->weight_decay : 0.0, (int)(sched_pos(tr) + 1));
	}
	if (rc)
		return tk_diag_set(d, rc, NULL, -1, "optimizer step: %s", tk_strerror(rc));
	if (tr->o->zero && world > 1 && (rc = zero_allgather(tr, d)))
		return rc; /* ZeRO-1: every shard's new weights to every process */
	if (fp16 && ++tr->growth_tracker >= o->loss_scale_window) {
		/* growth_factor 2, kept while the result is finite */
		if (isfinite(tr->loss_scale * 2.0f))
			tr->loss_scale *= 2.0f;
		tr->growth_tracker = 0;
	}
	tr->global_step++;
	*loss_out = step_loss;
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
	ev.elapsed = now_s() - tr->t0;
	ev.tokens_per_s = ev.elapsed > 0 ? (double)tr->tokens_run / ev.elapsed : 0;
	event(tr, &ev);
	if (want_eval && (rc = do_eval(tr, d)))
		return rc;
	if (do_save && (rc = save_checkpoint(tr, d)))
		return rc;
	return 0;
}

static int train_loop(struct trainer *tr, struct tk_diag *d)
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
			if (stop)
				break;
		}
		free(order);
		if (rc)
			return rc;
		if (o->eval_strategy == TK_INTERVAL_EPOCH && (rc = do_eval(tr, d)))
			return rc;
		if (o->save_strategy == TK_INTERVAL_EPOCH && (rc = save_checkpoint(tr, d)))
			return rc;
	}
	return 0;
}

/* The data path a checkpoint was trained on (OUT/data.tks for a stream). */
static int stored_data_path(struct trainer *tr, struct tk_diag *d)
{
	char path[PATH_LEN];
	cJSON *r;
	int rc = read_state(tr, path, sizeof(path), &r, d);
	if (rc)
		return rc;
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
	cJSON_Delete(r);
	return rc;
}

static int open_metrics(struct trainer *tr, struct tk_diag *d)
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

static int finish(struct trainer *tr, struct tk_diag *d)
{
	double rt = now_s() - tr->t0;
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
	/* on a device that reports its memory (CUDA): nvidia-smi's used now,
	 * and the peak of what tk allocated there */
	struct tk_mem_info mi;
	if (!tk_backend_mem_info(tr->be, &mi) && mi.dev_total) {
		add_num(e, "train_device_mem_used_mb", round(mi.dev_used / 1048576.0 * 10) / 10);
		add_num(e, "train_device_mem_peak_mb", round(mi.peak / 1048576.0 * 10) / 10);
	}
	int rc = log_entry(tr, e, d);
	if (!rc && !tk_dist_rank())
		rc = save_model(tr, tr->out, d);
	if (!rc && !tk_dist_rank())
		rc = copy_side_files(tr, tr->out, d);
	if (rc)
		return rc;
	struct tk_train_event ev = { .kind = TK_TRAIN_EV_END, .step = tr->global_step,
				     .max_steps = tr->max_steps, .first_step = tr->first_step,
				     .epoch = tr->epoch_f, .loss = train_loss, .elapsed = rt,
				     .tokens_per_s = rt > 0 ? (double)tr->tokens_run / rt : 0,
				     .path = tr->out };
	event(tr, &ev);
	return 0;
}

static int setup(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	int rc;
	if (o->output_dir)
		snprintf(tr->out, sizeof(tr->out), "%s", o->output_dir);
	if (!o->eval_only && !tk_dist_rank() && tr->out[0] && (rc = lock_output(tr, d)))
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
	if (tr->resume_dir[0] && (rc = read_source(tr, d)))
		return rc;
	if (o->data)
		snprintf(tr->data_path, sizeof(tr->data_path), "%s", o->data);
	else if ((rc = stored_data_path(tr, d)))
		return rc;
	if ((rc = load_model(tr, d)))
		return rc;
	if (!o->eval_only && !tk_dist_rank() && (rc = prepare_output(tr, d)))
		return rc;
	if ((rc = load_data(tr, d)))
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
	return 0;
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
		double loss;
		if (!(rc = evaluate(&tr, &loss, d)) && eval_loss)
			*eval_loss = loss;
		if (!rc && !isfinite(loss)) /* as training stops on a loss that is not */
			rc = tk_diag_set(d, TK_E_FORMAT, tr.resume_dir[0] ? tr.resume_dir :
					 o->model_dir ? o->model_dir : o->init_config, -1,
					 "eval_loss is %s: the model's loss on the eval blocks is not "
					 "a finite number (are its weights finite?)",
					 isnan(loss) ? "nan" : "inf");
		train_free(&tr);
		return rc;
	}
	if (rc)
		goto out;
	tr.data_hash = hash_data(&tr.train);
	tr.T = (int)tr.train.seq_len;
	plan(&tr);
	if ((rc = mem_plan(&tr, d)))
		goto out;
	size_t per = (size_t)o->batch * tr.T * o->grad_accum;
	if ((rc = tk_model_trainable(&tr.m, &tr.tp, &tr.n_tp, d)))
		goto out;
	if (!(tr.popt = tk_mallocn((size_t)tr.n_tp + 1, sizeof(*tr.popt)))) {
		rc = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		goto out;
	}
	for (int i = 0; i < tr.n_tp; i++) { /* 64-byte aligned, as the arenas */
		tr.popt[i] = tr.n_opt;
		tr.n_opt += (tr.tp[i].n + 15) / 16 * 16;
	}
	if ((rc = nccl_setup(&tr, d)) || (rc = segs_setup(&tr, d)))
		goto out;
	tr.exp_avg = opt_state_new(&tr);
	tr.exp_avg_sq = opt_state_new(&tr);
	tr.ids = tk_mallocn(per, sizeof(*tr.ids));
	tr.labels = tk_mallocn(per, sizeof(*tr.labels));
	tr.targets = tk_mallocn(per, sizeof(*tr.targets));
	tr.rows = tk_mallocn((size_t)o->grad_accum, sizeof(*tr.rows));
	tr.log_history = cJSON_CreateArray();
	if (!tr.exp_avg || !tr.exp_avg_sq || !tr.ids || !tr.labels || !tr.targets || !tr.rows ||
	    !tr.log_history) {
		rc = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		goto out;
	}
	if (tr.resume_dir[0]) {
		char p[PATH_LEN];
		if ((rc = load_state(&tr, d)))
			goto out;
		if (tk_path_join(p, sizeof(p), tr.resume_dir, "optimizer.safetensors")) {
			rc = tk_diag_set(d, TK_E_INVAL, tr.resume_dir, -1, "path too long");
			goto out;
		}
		if ((rc = load_optimizer(&tr, p, d)))
			goto out;
		snprintf(tr.last_ckpt, sizeof(tr.last_ckpt), "%s", tr.resume_dir);
		tr.saved = 1;
	}
	if (!tk_dist_rank() && (rc = open_metrics(&tr, d)))
		goto out;
	for (int i = 0; i < tr.n_tp && !rc; i++) /* as DDP: every rank starts from rank 0's */
		rc = tk_dist_bcast(tr.tp[i].p, tr.tp[i].n * sizeof(float), 0, d);
	if (rc)
		goto out;
	tr.first_step = tr.global_step;
	uint64_t trainable = 0;
	for (int i = 0; i < tr.n_tp; i++)
		trainable += tr.tp[i].n;
	struct tk_train_event ev = { .kind = TK_TRAIN_EV_START,
				     .n_params = tk_model_count_params(&tr.m),
				     .trainable = trainable,
				     .n_blocks = tr.train.n_blocks,
				     .n_eval_blocks = tr.eval.n_blocks, .seq_len = tr.T,
				     .step = tr.global_step, .max_steps = tr.max_steps,
				     .first_step = tr.first_step, .epoch = tr.epoch_f,
				     .dropout = tk_config_max_dropout(&tr.m.cfg),
				     .opt_bytes = 2 * tr.n_opt * sizeof(float),
				     .opt_bytes_full = 2 * tr.n_opt_full * sizeof(float) };
	event(&tr, &ev);
	tr.t0 = now_s();
	if (!(rc = train_loop(&tr, d)))
		rc = finish(&tr, d);
	/* a run killed between a save and its rotation leaves one checkpoint
	 * too many, which a resumed run that saves nothing more would keep */
	if (!rc && !tk_dist_rank())
		rc = rotate(&tr, d);
out:
	if (rc == TK_E_NOMEM && tr.planned)
		oom_message(&tr, d);
	if (rc && !tr.saved && tr.created_top[0]) /* made by this run, nothing in it */
		tk_afile_rmtree(tr.created_top);
	else if (rc && !o->resume && !tr.saved && tr.out[0]) { /* nothing worth keeping */
		char p[PATH_LEN];
		{
			if (tr.metrics && !tk_path_join(p, sizeof(p), tr.out, "metrics.jsonl"))
				unlink(p);
			if (tr.spilled && !tk_path_join(p, sizeof(p), tr.out, SPILL_NAME))
				unlink(p);
		}
	}
	train_free(&tr);
	return rc;
}

/* train-int.h - private to lib/train/: the state of a training run that
 * its files share, and what each of them gives the others.  Not for other
 * modules.
 *
 *   train.c       tk_train_run: options, setup, the run from start to end
 *   load.c        the model, tokenizer, side files and data; the memory plan
 *   zero.c        the optimizer state's layout, data parallel and ZeRO-1
 *   loop.c        the epochs, the optimizer step, evaluation, logging
 *   checkpoint.c  OUT (its lock), checkpoint-N directories, their rotation,
 *                 optimizer.safetensors
 *   state.c       trainer_state.json, written and read back
 */
#ifndef TK_TRAIN_INT_H
#define TK_TRAIN_INT_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "model/memplan.h"
#include "model/model.h"
#include "train/adamw8.h"
#include "train/best.h"
#include "train/data.h"
#include "train/schedule.h"
#include "train/train.h"

#define PATH_LEN 4096
/* data "-" is spilled to OUT/SPILL_NAME, where a resumed run reads it */
#define SPILL_NAME "data.tks"

enum metric { METRIC_NONE = 0, METRIC_LOSS, METRIC_PERPLEXITY };

/* A checkpoint's trainer_state.json, read and parsed once on resume
 * (train_read_state) and handed to each reader of it. */
struct train_state_file {
	char path[PATH_LEN];
	cJSON *root; /* NULL: not JSON (each reader reports it as it must) */
};

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
	struct train_state_file resumed; /* its trainer_state.json, read once */
	char last_ckpt[PATH_LEN];
	/* metric_for_best_model (0: none, else one of enum metric), the best
	 * so far, its checkpoint (best_model_checkpoint, "" when none), and
	 * what the last evaluation decided */
	int metric;
	struct tk_best best;
	char best_ckpt[PATH_LEN];
	int new_best, stop_early;
	int spilled, saved;
	int side_is_tok;           /* side_dir is --tokenizer's: no generation_config.json */
	int vocab_taken;           /* --init's vocab_size came from --tokenizer */
	uint64_t data_hash;

	float *exp_avg, *exp_avg_sq;
	struct tk_adamw8_state a8; /* o->optim TK_OPTIM_ADAMW_8BIT: instead */
	const struct tk_param *tp; /* what the optimizer updates (tk_model_trainable) */
	int n_tp;
	size_t *popt;              /* [n_tp]: offset of each in exp_avg / exp_avg_sq */
	size_t n_opt, n_opt_full;  /* floats of each state arena; _full: without zero */
	/* What this process's AdamW updates: parts of parameters (zero.c). */
	struct tr_seg { int i; size_t a, n, loc; } *seg; /* tp[i] [a, a + n) at loc */
	int n_seg;
	/* ZeRO-1 (o->zero): the flat sequence of trainable floats, its shards,
	 * windows for the collectives, a parameter's state for checkpoints. */
	size_t *zoff, *zbound, *zcnt; /* [n_tp + 1] starts, [world + 1] shards, [world] */
	size_t ztotal, zlo, zhi, zwin_n;
	float *zwin, *zwin2, *ztmp;
	/* NCCL instead of MPI for the gradients and ZeRO-1's weights (a CUDA
	 * backend on several ranks in a build with NCCL; zero.c); zrun:
	 * ZeRO-1's pieces of the parameters, one per shard they cross. */
	int nccl;
	struct tk_dist_run *zrun;
	struct tk_sched sched;
	long nupe, steps_in_epoch, num_epochs, max_steps;
	long logging_steps, eval_steps, save_steps;
	long global_step, last_logged, first_step;
	/* fp16 loss scaling (GradScaler's _scale, _growth_tracker), and the
	 * steps skipped for overflowed gradients: the scheduler and AdamW count
	 * only the others (loop.c's sched_pos) */
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
	struct tk_memplan mplan;   /* the backend memory planned (train_mem_plan) */
	int planned;
};

static inline void add_num(cJSON *o, const char *k, double v)
{
	cJSON_AddItemToObject(o, k, cJSON_CreateNumber(v));
}

/* ---- train.c ---- */

/* Seconds on the monotonic clock. */
double train_now(void);

/* Fills ev's memory fields (once planned) and passes it to on_event;
 * returns 0. */
int train_event(struct trainer *tr, struct tk_train_event *ev);

/* ---- load.c ---- */

/* The model (from --model, --init, --adapter or the checkpoint, with LoRA
 * attached as asked), then the tokenizer its blocks must come from and
 * where the side files come from.  TK_E_INVAL for options that do not fit
 * the checkpoint or the model, or the loader's error. */
int train_load_model(struct trainer *tr, struct tk_diag *d);

/* The training and eval blocks (data "-" spilled to OUT/SPILL_NAME),
 * checked against the tokenizer, the vocabulary and the positions. */
int train_load_data(struct trainer *tr, struct tk_diag *d);

/* Copies the tokenizer and generation files next to a saved model in dir;
 * TK_E_FORMAT naming a side file the run started with that is gone. */
int train_copy_side_files(struct trainer *tr, const char *dir, struct tk_diag *d);

/* The run's memory, planned before the gradients, the optimizer state and
 * the activations are allocated: TK_E_NOMEM (d says what would fit) when
 * it goes beyond the backend's limit; sets tr->mplan and tr->planned. */
int train_mem_plan(struct trainer *tr, struct tk_diag *d);

/* An allocation failed although the plan fitted: d's message says so,
 * with the memory held, what would need less, and the last checkpoint. */
void train_oom_message(struct trainer *tr, struct tk_diag *d);

/* ---- zero.c ---- */

/* The optimizer's state for tk_model_trainable's parameters: their
 * offsets (popt), what this process updates (seg: every parameter, or its
 * ZeRO-1 shard), NCCL when every rank can use it, the staging windows, and
 * the zeroed exp_avg and exp_avg_sq arenas. */
int train_opt_setup(struct trainer *tr, struct tk_diag *d);

/* This process's part of tp[i], NULL when it has none. */
const struct tr_seg *train_seg_of(const struct trainer *tr, int i);

/* Data parallel, after the backward passes: the gradients and the loss of
 * the step summed over the ranks (ZeRO-1: each rank's shard of the
 * gradients), the input tokens of rows rows counted into the run's. */
int train_reduce_step(struct trainer *tr, float *step_loss, long items, double rows,
		      struct tk_diag *d);

/* ZeRO-1: every shard's updated weights to every rank. */
int train_zero_allgather(struct trainer *tr, struct tk_diag *d);

/* ZeRO-1: parameter i's exp_avg (k 0) or exp_avg_sq (k 1) whole into
 * tr->ztmp on rank 0; every rank calls it for the same i and k. */
int train_zero_gather_state(struct trainer *tr, int i, int k, struct tk_diag *d);

/* ZeRO-1: the other ranks' side of the gathers of a checkpoint's save. */
int train_zero_send_state(struct trainer *tr, struct tk_diag *d);

/* ---- loop.c ---- */

/* Trains from tr->global_step to max_steps, evaluating, logging and
 * saving where the Trainer does. */
int train_loop(struct trainer *tr, struct tk_diag *d);

/* eval_loss as Trainer.evaluate() into *out. */
int train_evaluate(struct trainer *tr, double *out, struct tk_diag *d);

/* OUT/metrics.jsonl opened for the log entries (resumed: rewritten with
 * the history up to the checkpoint first). */
int train_open_metrics(struct trainer *tr, struct tk_diag *d);

/* The run's summary entry, the final model and its side files in OUT. */
int train_finish(struct trainer *tr, struct tk_diag *d);

/* ---- checkpoint.c ---- */

/* Makes OUT (mkdir -p) and takes its lock for the whole run; TK_E_EXISTS
 * naming the PID of another run that holds it. */
int train_lock_output(struct trainer *tr, struct tk_diag *d);

/* Removes the lock file and releases the lock, if held. */
void train_unlock_output(struct trainer *tr);

/* TK_E_EXISTS when OUT holds an earlier run, unless resuming; with force,
 * that run's checkpoints and metrics are removed. */
int train_prepare_output(struct trainer *tr, struct tk_diag *d);

/* The model, or the adapter when one is trained, into dir. */
int train_save_model(struct trainer *tr, const char *dir, struct tk_diag *d);

/* OUT/checkpoint-STEP written atomically (rank 0; the others send their
 * ZeRO-1 state), then the oldest beyond save_total_limit removed. */
int train_save_checkpoint(struct trainer *tr, struct tk_diag *d);

/* Resuming: the loop's state (tr->resumed, trainer_state.json) and
 * AdamW's (optimizer.safetensors) from tr->resume_dir, which becomes the
 * last good checkpoint. */
int train_load_checkpoint(struct trainer *tr, struct tk_diag *d);

/* Removes the oldest checkpoints beyond save_total_limit (never the
 * newest nor the best). */
int train_rotate(struct trainer *tr, struct tk_diag *d);

/* load_best_model_at_end: the best checkpoint's model files into OUT. */
int train_write_best(struct trainer *tr, struct tk_diag *d);

/* With save_total_limit 1 and a best checkpoint, removes every other
 * checkpoint (as the Trainer does when training ends). */
int train_keep_only_best(struct trainer *tr, struct tk_diag *d);

/* ---- state.c ---- */

/* trainer_state.json of the loop as it is now, at path. */
int train_save_state(struct trainer *tr, const char *path, struct tk_diag *d);

/* Reads and parses trainer_state.json of tr->resume_dir into *sf (its
 * root NULL when the file is not JSON); the caller frees it with
 * train_state_file_free.  Returns 0, or what reading the file returns. */
int train_read_state(const struct trainer *tr, struct train_state_file *sf,
		     struct tk_diag *d);
void train_state_file_free(struct train_state_file *sf);

/* Checks every value tk takes from the resumed checkpoint's
 * trainer_state.json sf and that the run agrees with it, and restores the
 * loop state (log_history moves from sf->root to the trainer). */
int train_load_state(struct trainer *tr, struct train_state_file *sf, struct tk_diag *d);

/* tk.source of the resumed checkpoint's sf into src_dir, src_file,
 * src_mask and src_recorded. */
int train_read_source(struct trainer *tr, const struct train_state_file *sf,
		      struct tk_diag *d);

/* tr->data_path from the resumed checkpoint's sf (OUT/data.tks for a
 * stream). */
int train_stored_data_path(struct trainer *tr, const struct train_state_file *sf,
			   struct tk_diag *d);

#endif

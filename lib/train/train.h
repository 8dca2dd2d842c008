/* train.h - the training loop of tk-train: full fine-tuning or training
 * from scratch with Hugging Face Trainer semantics.
 *
 * One optimizer step accumulates gradient_accumulation_steps micro-batches
 * of per_device_train_batch_size blocks.  As the Trainer does with
 * num_items_in_batch, each micro-batch's loss is its summed cross-entropy
 * divided by the number of predicted tokens in the whole accumulation
 * window (labels[..., 1:] != -100), so the step's loss is the token mean
 * over the window.  The gradient norm is measured before clipping (that is
 * what is logged as grad_norm), clipped as torch.nn.utils.clip_grad_norm_
 * does, and torch.optim.AdamW steps with the learning rate
 * tk_sched_lr(global_step) (the rate that is logged).  Weight decay applies
 * to the tensors whose decay flag is set (matrices and embeddings).  With
 * optim TK_OPTIM_ADAMW_8BIT bitsandbytes' AdamW with 8-bit state steps
 * instead (train/adamw8.h), and optimizer.safetensors holds its state.
 *
 * The epoch's micro-batches never straddle epochs: the last window of an
 * epoch takes what is left, the last batch may be short (HF's
 * dataloader_drop_last false).  max_steps > 0 wins over num_train_epochs,
 * which may be fractional (max_steps = ceil(epochs * updates per epoch)).
 *
 * Checkpoints OUT/checkpoint-STEP/ hold model.safetensors + config.json
 * (tk_model_save) or, training an adapter, adapter_config.json +
 * adapter_model.safetensors (tk_peft_save), optimizer.safetensors (NAME.exp_avg and
 * NAME.exp_avg_sq in the checkpoint layout of each trained parameter,
 * NAME its HF name or PEFT key, F32),
 * trainer_state.json (HF's TrainerState keys plus a "tk" object with the
 * data position and what a resumed run must agree on) and the tokenizer
 * files; each is built under a temporary name, fsync'ed and renamed.  A
 * resumed run on the same backend and thread count ends with the same
 * bytes as an uninterrupted one.
 *
 * The loop computes on m->params and m->grads directly, so it needs a
 * backend whose memory the host can read (the CPU backend).
 *
 * Data parallel (dist.h, after tk_dist_init under mpirun): with N
 * processes an optimizer step takes N * gradient_accumulation_steps
 * micro-batches of the block order, rank r computing the r-th of N
 * consecutive runs of them; the item count, the trainable gradients and
 * the loss are summed over the ranks before the norm, clipping and AdamW,
 * so N ranks train what one process with N times the accumulation trains
 * (up to fp32 summation order).  Rank 0 alone evaluates and writes OUT;
 * trainer_state.json records world_size and a resume on another number of
 * processes is TK_E_MISMATCH; data "-" is TK_E_INVAL.  A rank that fails
 * returns its error while the others may wait in a collective: the caller
 * ends the job (tk_dist_abort).
 *
 * ZeRO stage 1 (zero = 1): the trainable parameters (tk_model_trainable's
 * order) seen as one flat sequence of S floats are cut into N contiguous
 * shards, rank r's [S r / N, S (r + 1) / N).  The gradients are
 * reduce-scattered (each rank receives the sum of its shard only), the
 * norm is the all-reduced sum of the shards' squares, each rank clips and
 * takes the AdamW step of its shard holding only that shard's exp_avg and
 * exp_avg_sq, and the updated weights are all-gathered.  The results are
 * those of zero = 0 (the same sums; the norm's double sum in another
 * order).  optimizer.safetensors keeps its layout (gathered to rank 0;
 * each rank reads its shard), so checkpoints resume either way.  One
 * process: the shard is everything, as zero = 0.
 */
#ifndef TK_TRAIN_H
#define TK_TRAIN_H

#include <stdint.h>

#include "compute/backend.h"
#include "model/lora.h"
#include "train/schedule.h"
#include "base/tk.h"

/* eval_strategy and save_strategy; BEST (save_strategy only): a checkpoint
 * after each evaluation that found a new best metric */
enum tk_interval { TK_INTERVAL_NO = 0, TK_INTERVAL_STEPS, TK_INTERVAL_EPOCH, TK_INTERVAL_BEST };

/* What the loop reports as it goes (for progress and messages). */
enum tk_train_event_kind {
	TK_TRAIN_EV_START,  /* model and data loaded, about to train */
	TK_TRAIN_EV_STEP,   /* one optimizer step done (logged: a log line was written) */
	TK_TRAIN_EV_EVAL,   /* an evaluation done */
	TK_TRAIN_EV_SAVE,   /* a checkpoint written (path) */
	TK_TRAIN_EV_END,    /* training done, final model written (path) */
};

struct tk_train_event {
	enum tk_train_event_kind kind;
	uint64_t n_params, trainable;  /* START */
	float dropout;        /* START: the largest dropout config.json asks for (not applied) */
	int vocab_taken;      /* START: the vocab_size taken from the tokenizer (an init
				 config without one, tk_data_init_vocab), else 0 */
	uint64_t opt_bytes, opt_bytes_full; /* START: this process's AdamW state, and
					       what it would be without zero */
	uint64_t n_blocks, n_eval_blocks;
	int seq_len;
	long step, max_steps, first_step; /* first_step: where this run started */
	double epoch;
	double loss;          /* STEP: this step's loss; END: the run's mean (train_loss) */
	int logged;           /* STEP: logged_loss is the logging window's mean */
	double logged_loss, lr, grad_norm;
	double eval_loss, eval_perplexity;
	int skipped;          /* STEP (fp16): the gradients overflowed, no update was made */
	double loss_scale;    /* STEP (fp16): the loss scale after this step (0 otherwise) */
	double elapsed;       /* seconds since this run started training */
	double tokens_per_s;  /* input tokens per second in this run */
	const char *path;     /* SAVE: the checkpoint; END: the output directory */
	int stopped_early;    /* END: early stopping ended the run */
	const char *best;     /* END: best_model_checkpoint, or NULL */
	/* The backend's memory (struct tk_mem_info, bytes; 0 before the plan):
	 * the run's plan (lib/model/memplan.h), alloc's bytes now and at their peak,
	 * its limit, and the whole device's use as nvidia-smi shows it
	 * (dev_total 0: not known, as on the CPU). */
	uint64_t mem_planned, mem_in_use, mem_peak, mem_limit, dev_used, dev_total;
};

struct tk_train_opts {
	/* The model: a Hugging Face directory, or a config.json to initialise
	 * from (seeded by seed).  Neither when resuming: the checkpoint is the
	 * model. */
	const char *model_dir;
	const char *init_config;
	/* LoRA (lora.h): with lora set, adapters are attached to the model
	 * (seeded by seed) and trained alone, the base frozen; with adapter set
	 * (a PEFT directory), that adapter is loaded and trained on.  Both NULL:
	 * full fine-tuning.  With either, checkpoints and the output are PEFT
	 * adapter directories (tk_peft_save) and resuming needs model_dir (or
	 * the adapter's base_model_name_or_path) for the base. */
	const struct tk_lora_config *lora;
	const char *adapter;
	/* The tokenizer the blocks must come from, copied to the outputs; NULL:
	 * the model directory's (or checkpoint's) when it has one, else only the
	 * vocabulary size is checked. */
	const char *tokenizer;
	const char *data;       /* DIR (train-*.tks), FILE.tks or "-" */
	const char *eval_data;  /* NULL: DIR's eval-*.tks when data is a DIR */
	const char *output_dir; /* required unless eval_only */
	const char *resume;     /* a checkpoint directory, "latest" or NULL */

	double num_train_epochs;
	int64_t max_steps;      /* <= 0: from num_train_epochs */
	int batch, eval_batch, grad_accum;
	double lr, weight_decay, beta1, beta2, eps, max_grad_norm;
	double neftune_alpha;   /* NEFTune's noise_alpha (struct tk_model); 0: off */
	enum tk_sched_type sched;
	const char *sched_kwargs; /* lr_scheduler_kwargs: a JSON object's text, or NULL */
	double warmup;          /* >= 1: steps; < 1: fraction of max_steps */
	double logging_steps;   /* >= 1: steps; < 1: fraction of max_steps */
	int logging_first_step;
	enum tk_interval eval_strategy, save_strategy;
	double eval_steps;      /* 0: logging_steps */
	double save_steps;
	int64_t save_total_limit; /* <= 0: keep every checkpoint */
	/* The best checkpoint (train/best.h): metric_for_best_model, "loss"
	 * or "perplexity" (with or without "eval_"; NULL: none, or "loss"
	 * when load_best_model_at_end or reduce_lr_on_plateau asks for one);
	 * greater_is_better (-1: 0 for a loss, else 1); load_best_model_at_end
	 * writes the best checkpoint's weights as the output; early stopping
	 * after early_stopping_patience evaluations (0: never) that did not
	 * beat the best by more than early_stopping_threshold. */
	const char *metric_for_best_model;
	int greater_is_better;
	int load_best_model_at_end;
	int64_t early_stopping_patience;
	double early_stopping_threshold;
	uint64_t seed;          /* data order (and --init weights) */
	int shuffle;            /* 0: blocks in file order every epoch */
	int gradient_checkpointing; /* recompute activations in the backward
				       (tk_model_set_checkpointing): less
				       memory, same results */
	int zero;               /* ZeRO stage: 0, or 1 to shard the optimizer
				   state over the processes (see above) */
	/* The optimizer: TK_OPTIM_ADAMW_TORCH (torch.optim.AdamW, fp32
	 * state) or TK_OPTIM_ADAMW_8BIT (bitsandbytes' AdamW with 8-bit
	 * blockwise state, train/adamw8.h: optim "adamw_8bit",
	 * "adamw_bnb_8bit" and "paged_adamw_8bit"; not with zero). */
	int optim;
	/* Mixed precision (enum tk_prec, backend.h): the precision of the
	 * matmuls' operands, set on be by tk_train_run (TK_E_UNSUPPORTED when
	 * be cannot; tk_train_set_prec picks a fallback first).  TK_PREC_FP16
	 * adds dynamic loss scaling as torch.amp.GradScaler: the loss gradient
	 * times the scale (initially 2^initial_scale_power), gradients
	 * unscaled before the norm and clipping, a step whose gradients (or
	 * loss) hold inf or NaN skipped (no optimizer or scheduler step, as
	 * the Trainer; global_step still counts it) with the scale halved, and
	 * the scale doubled after loss_scale_window steps in a row without.
	 * The scaler's state is saved in checkpoints. */
	int prec;
	int initial_scale_power;     /* 16 (GradScaler's init_scale 65536); 0..127 */
	int64_t loss_scale_window;   /* 2000 (GradScaler's growth_interval); >= 1 */
	int eval_only;          /* evaluate, do not train (nothing is written) */
	int force;              /* replace what an earlier run left in output_dir */

	struct tk_backend *be;  /* not owned */
	void (*on_event)(void *ctx, const struct tk_train_event *ev); /* optional */
	void *ctx;
};

enum tk_optim { TK_OPTIM_ADAMW_TORCH = 0, TK_OPTIM_ADAMW_8BIT = 1 };

/* Parses a TrainingArguments optim name into *optim: adamw_torch and
 * adamw_torch_fused (the same numbers) are TK_OPTIM_ADAMW_TORCH;
 * adamw_8bit, adamw_bnb_8bit and paged_adamw_8bit (paging only moves
 * bitsandbytes' state between GPU and host memory) TK_OPTIM_ADAMW_8BIT.
 * Returns 0, or TK_E_INVAL naming any other. */
int tk_train_optim_parse(const char *name, int *optim, struct tk_diag *d);

/* Fills o with TrainingArguments' defaults (3 epochs, batch 8, lr 5e-5,
 * linear schedule, logging and saving every 500 steps, seed 42...). */
void tk_train_opts_init(struct tk_train_opts *o);

/* Trains (or, with eval_only, evaluates: *eval_loss gets eval_loss as
 * Trainer.evaluate() computes it).  Returns 0, TK_E_INVAL for options that
 * do not fit together (named), TK_E_MISMATCH for data that does not belong
 * to the model or checkpoint, TK_E_EXISTS for an output directory holding
 * an earlier run (without force), TK_E_FORMAT for a non-finite loss or
 * gradient (the step is named; the checkpoints written before stay), or
 * the error of the part that failed (loading, saving...).  When nothing
 * could be trained, an output directory it created is removed again.
 * Training holds a lock on OUT/.tk-train.lock for the whole run (OUT made
 * as mkdir -p): TK_E_EXISTS naming the PID of another run that holds it.
 * A resumed checkpoint's trainer_state.json and optimizer.safetensors are
 * checked value by value (TK_E_FORMAT naming the file and the key).
 * With eval_only, *eval_loss gets the loss whenever it was computed, and
 * one that is not finite is TK_E_FORMAT.  eval_loss may be NULL. */
int tk_train_run(const struct tk_train_opts *o, double *eval_loss, struct tk_diag *d);

/* Sets be's matmul precision for training to prec (enum tk_prec), as
 * tk_backend_set_prec, except that TK_PREC_BF16 on a backend that has no
 * bf16 but has fp16 (a T4) falls back to fp16, which tk_train_run then
 * trains with loss scaling: *used gets the precision set and d->msg a note
 * saying why (empty when prec itself was set, except for TK_PREC_BF16 on
 * the CPU on the emulated bf16 path, compute/bf16.h: a note that it is
 * emulated, and why).  Returns 0, or the error of tk_backend_set_prec (d
 * says why). */
int tk_train_set_prec(struct tk_backend *be, int prec, int *used, struct tk_diag *d);

/* The newest complete OUT/checkpoint-N directory (highest N that has
 * trainer_state.json, optimizer.safetensors and its model or adapter
 * files) into buf; TK_E_FORMAT naming out_dir when it has none (and the
 * newest incomplete one with what it lacks, when there is one). */
int tk_train_latest_checkpoint(const char *out_dir, char *buf, size_t size, struct tk_diag *d);

#endif

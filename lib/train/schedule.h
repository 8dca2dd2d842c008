/* schedule.h - learning-rate schedules, as transformers' get_scheduler computes them.
 *
 * The learning rate after k optimizer steps is base_lr * lambda(k), with
 * lambda as in transformers.optimization: a linear warmup from 0 over the
 * warmup steps, then constant, linear decay to 0 at total steps, or a
 * half-cosine to 0.  As in the Trainer, update k (1-based) uses lambda(k-1):
 * the first update of a run with warmup has learning rate 0.
 */
#ifndef TK_SCHEDULE_H
#define TK_SCHEDULE_H

#include "base/tk.h"

enum tk_sched_type {
	TK_SCHED_LINEAR = 0,
	TK_SCHED_COSINE,
	TK_SCHED_CONSTANT,
	TK_SCHED_CONSTANT_WITH_WARMUP,
};

struct tk_sched {
	enum tk_sched_type type;
	double base_lr;
	long warmup;   /* warmup steps */
	long total;    /* training steps */
};

/* The names HF uses: linear, cosine, constant, constant_with_warmup.
 * Returns 0, or TK_E_INVAL naming the ones there are. */
int tk_sched_parse(const char *name, enum tk_sched_type *t, struct tk_diag *d);
const char *tk_sched_name(enum tk_sched_type t);

/* Warmup steps as TrainingArguments.get_warmup_steps: warmup >= 1 is a
 * number of steps, a value in [0, 1) a fraction of total (rounded up). */
long tk_sched_warmup_steps(double warmup, long total);

/* lambda(step) of the schedule (the factor on base_lr). */
double tk_sched_factor(const struct tk_sched *s, long step);

/* The learning rate after `step` scheduler steps: base_lr * lambda(step). */
double tk_sched_lr(const struct tk_sched *s, long step);

/* The factor torch.nn.utils.clip_grad_norm_ scales every gradient by,
 * in fp32 as torch computes it: max_norm / (total_norm + 1e-6), at most
 * 1 (1: no clipping). */
float tk_clip_coef(double max_norm, double total_norm);

#endif

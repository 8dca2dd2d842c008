/* schedule.h - learning-rate schedules, as transformers' get_scheduler computes them.
 *
 * The learning rate after k optimizer steps is base_lr * lambda(k), with
 * lambda as in transformers.optimization (every lr_scheduler_type the
 * Trainer knows but "greedy"), the options of each taken from
 * lr_scheduler_kwargs under transformers' names.  As in the Trainer,
 * update k (1-based) uses lambda(k-1): the first update of a run with
 * warmup has learning rate 0.  reduce_lr_on_plateau has no lambda: the
 * rate changes only when an evaluation reports its metric
 * (tk_sched_plateau_step), as torch's ReduceLROnPlateau does.
 */
#ifndef TK_SCHEDULE_H
#define TK_SCHEDULE_H

#include "base/options.h"
#include "base/tk.h"

enum tk_sched_type {
	TK_SCHED_LINEAR = 0,
	TK_SCHED_COSINE,
	TK_SCHED_CONSTANT,
	TK_SCHED_CONSTANT_WITH_WARMUP,
	TK_SCHED_COSINE_WITH_RESTARTS,
	TK_SCHED_POLYNOMIAL,
	TK_SCHED_INVERSE_SQRT,
	TK_SCHED_REDUCE_ON_PLATEAU,
	TK_SCHED_COSINE_WITH_MIN_LR,
	TK_SCHED_COSINE_WARMUP_WITH_MIN_LR,
	TK_SCHED_WARMUP_STABLE_DECAY,
};

/* warmup_type and decay_type of warmup_stable_decay */
enum tk_sched_shape { TK_SHAPE_LINEAR = 0, TK_SHAPE_COSINE, TK_SHAPE_1_SQRT };

/* reduce_lr_on_plateau's state (torch.optim.lr_scheduler.ReduceLROnPlateau):
 * what a checkpoint must keep to resume it. */
struct tk_plateau {
	double lr;          /* the current rate (base_lr until reduced) */
	double best;        /* best metric so far (+-inf before the first) */
	long bad;           /* evaluations without improvement (num_bad_epochs) */
	long cooldown_left; /* cooldown_counter */
	long evals;         /* evaluations seen (last_epoch) */
};

struct tk_sched {
	enum tk_sched_type type;
	double base_lr;
	long warmup;   /* warmup steps */
	long total;    /* training steps */
	/* lr_scheduler_kwargs; tk_sched_init sets transformers' defaults */
	double num_cycles;      /* cosine family: 0.5; cosine_with_restarts: 1 */
	double lr_end, power;   /* polynomial: 1e-7, 1 */
	long timescale;         /* inverse_sqrt: 0 = warmup steps, or 10000 without */
	double min_lr_rate;     /* cosine(_warmup)_with_min_lr: from min_lr or min_lr_rate */
	double warmup_lr_rate;  /* cosine_warmup_with_min_lr: NAN = unset */
	long num_stable, num_decay; /* warmup_stable_decay: -1 = unset */
	enum tk_sched_shape warmup_shape, decay_shape; /* linear, cosine */
	double min_lr_ratio;    /* warmup_stable_decay: 0 */
	/* reduce_lr_on_plateau: mode "min" (0) or "max" (1), factor 0.1,
	 * patience 10, threshold 1e-4, threshold_mode "rel" (0) or "abs" (1),
	 * cooldown 0, min_lr 0, eps 1e-8 */
	int plateau_max, plateau_abs;
	double factor, threshold, plateau_min_lr, eps;
	long patience, cooldown;
	struct tk_plateau plateau;
};

/* Sets the type, base_lr, warmup and total steps, and every kwarg to
 * transformers' default for that type (plateau.lr = base_lr). */
void tk_sched_init(struct tk_sched *s, enum tk_sched_type type, double base_lr, long warmup,
		   long total);

/* Applies lr_scheduler_kwargs, a JSON object text (NULL or "" or "{}":
 * none), with transformers' key names for s->type; then checks the
 * schedule as get_scheduler would.  TK_E_INVAL naming the key for a key
 * the schedule does not take (TypeError in Python), a value of the wrong
 * kind or range, a required one missing (cosine_with_min_lr: min_lr or
 * min_lr_rate; warmup_stable_decay: num_decay_steps), or lr_end not
 * below base_lr (polynomial).  constant takes none and ignores them, as
 * get_scheduler does. */
int tk_sched_kwargs(struct tk_sched *s, const char *json, struct tk_diag *d);

/* The names HF uses (SchedulerType values but "greedy"), each with its
 * type, for a CHOICE option (base/options.h). */
extern const struct tk_opt_choice tk_sched_types[];

/* The type tk_sched_types names name.  Returns 0, or TK_E_INVAL naming
 * the ones there are. */
int tk_sched_parse(const char *name, enum tk_sched_type *t, struct tk_diag *d);
const char *tk_sched_name(enum tk_sched_type t);

/* Warmup steps as TrainingArguments.get_warmup_steps: warmup >= 1 is a
 * number of steps, a value in [0, 1) a fraction of total (rounded up). */
long tk_sched_warmup_steps(double warmup, long total);

/* lambda(step) of the schedule (the factor on base_lr); for
 * reduce_lr_on_plateau the current rate over base_lr. */
double tk_sched_factor(const struct tk_sched *s, long step);

/* The learning rate after `step` scheduler steps: base_lr * lambda(step);
 * for reduce_lr_on_plateau the current rate (plateau.lr). */
double tk_sched_lr(const struct tk_sched *s, long step);

/* reduce_lr_on_plateau: one evaluation's metric (what the Trainer passes:
 * eval_<metric_for_best_model>); lowers plateau.lr by factor (not below
 * min_lr, not by eps or less) after more than patience evaluations
 * without improvement.  Returns 1 if the rate changed, else 0. */
int tk_sched_plateau_step(struct tk_sched *s, double metric);

/* The factor torch.nn.utils.clip_grad_norm_ scales every gradient by,
 * in fp32 as torch computes it: max_norm / (total_norm + 1e-6), at most
 * 1 (1: no clipping). */
float tk_clip_coef(double max_norm, double total_norm);

#endif

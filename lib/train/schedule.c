/* schedule.c - see schedule.h.  The formulas and their order of operations are
 * those of transformers.optimization, so the rates are identical in
 * double precision. */
#include "train/schedule.h"

#include <math.h>
#include <string.h>

static const char *const names[] = {
	[TK_SCHED_LINEAR] = "linear",
	[TK_SCHED_COSINE] = "cosine",
	[TK_SCHED_CONSTANT] = "constant",
	[TK_SCHED_CONSTANT_WITH_WARMUP] = "constant_with_warmup",
};

int tk_sched_parse(const char *name, enum tk_sched_type *t, struct tk_diag *d)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i])) {
			*t = (enum tk_sched_type)i;
			return 0;
		}
	return tk_diag_set(d, TK_E_INVAL, NULL, -1,
			   "unknown lr_scheduler_type '%s' (use linear, cosine, constant or "
			   "constant_with_warmup)", name);
}

const char *tk_sched_name(enum tk_sched_type t)
{
	return names[t];
}

long tk_sched_warmup_steps(double warmup, long total)
{
	if (warmup >= 1)
		return (long)warmup;
	return (long)ceil((double)total * warmup);
}

static double maxd(double a, double b)
{
	return a > b ? a : b;
}

double tk_sched_factor(const struct tk_sched *s, long step)
{
	long w = s->warmup;
	if (s->type == TK_SCHED_CONSTANT)
		return 1.0;
	if (step < w)
		return (double)step / maxd(1.0, (double)w);
	switch (s->type) {
	case TK_SCHED_LINEAR:
		return maxd(0.0, (double)(s->total - step) / (double)(s->total - w > 1 ? s->total - w : 1));
	case TK_SCHED_COSINE: {
		double progress = (double)(step - w) / (double)(s->total - w > 1 ? s->total - w : 1);
		double factor = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress));
		return maxd(0.0, factor);
	}
	default:
		return 1.0;
	}
}

double tk_sched_lr(const struct tk_sched *s, long step)
{
	return s->base_lr * tk_sched_factor(s, step);
}

float tk_clip_coef(double max_norm, double total_norm)
{
	float coef = (float)max_norm / ((float)total_norm + 1e-6f);
	return coef < 1.0f ? coef : 1.0f;
}

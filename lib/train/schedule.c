/* schedule.c - see schedule.h.  The formulas and their order of operations are
 * those of transformers.optimization (and torch's ReduceLROnPlateau), so
 * the rates are identical in double precision. */
#include "train/schedule.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

const struct tk_opt_choice tk_sched_types[] = {
	{ "linear", TK_SCHED_LINEAR },
	{ "cosine", TK_SCHED_COSINE },
	{ "constant", TK_SCHED_CONSTANT },
	{ "constant_with_warmup", TK_SCHED_CONSTANT_WITH_WARMUP },
	{ "cosine_with_restarts", TK_SCHED_COSINE_WITH_RESTARTS },
	{ "polynomial", TK_SCHED_POLYNOMIAL },
	{ "inverse_sqrt", TK_SCHED_INVERSE_SQRT },
	{ "reduce_lr_on_plateau", TK_SCHED_REDUCE_ON_PLATEAU },
	{ "cosine_with_min_lr", TK_SCHED_COSINE_WITH_MIN_LR },
	{ "cosine_warmup_with_min_lr", TK_SCHED_COSINE_WARMUP_WITH_MIN_LR },
	{ "warmup_stable_decay", TK_SCHED_WARMUP_STABLE_DECAY },
	{ NULL, 0 },
};

static const char *const shapes[] = { "linear", "cosine", "1-sqrt" };

int tk_sched_parse(const char *name, enum tk_sched_type *t, struct tk_diag *d)
{
	for (const struct tk_opt_choice *c = tk_sched_types; c->word; c++)
		if (!strcmp(name, c->word)) {
			*t = (enum tk_sched_type)c->value;
			return 0;
		}
	return tk_diag_set(d, TK_E_INVAL, NULL, -1,
			   "unknown lr_scheduler_type '%s' (use linear, cosine, constant, "
			   "constant_with_warmup, cosine_with_restarts, polynomial, inverse_sqrt, "
			   "reduce_lr_on_plateau, cosine_with_min_lr, cosine_warmup_with_min_lr or "
			   "warmup_stable_decay)", name);
}

const char *tk_sched_name(enum tk_sched_type t)
{
	const char *w = tk_options_choice_word(tk_sched_types, (int)t);
	return w ? w : "?";
}

void tk_sched_init(struct tk_sched *s, enum tk_sched_type type, double base_lr, long warmup,
		   long total)
{
	memset(s, 0, sizeof(*s));
	s->type = type;
	s->base_lr = base_lr;
	s->warmup = warmup;
	s->total = total;
	s->num_cycles = type == TK_SCHED_COSINE_WITH_RESTARTS ? 1.0 : 0.5;
	s->lr_end = 1e-7;
	s->power = 1.0;
	s->warmup_lr_rate = NAN;
	s->min_lr_rate = NAN;
	s->num_stable = -1;
	s->num_decay = -1;
	s->warmup_shape = TK_SHAPE_LINEAR;
	s->decay_shape = TK_SHAPE_COSINE;
	s->factor = 0.1;
	s->patience = 10;
	s->threshold = 1e-4;
	s->eps = 1e-8;
	s->plateau.lr = base_lr;
	s->plateau.best = INFINITY;
}

long tk_sched_warmup_steps(double warmup, long total)
{
	if (warmup >= 1)
		return (long)warmup;
	return (long)ceil((double)total * warmup);
}

/* ----------------------------- kwargs ----------------------------- */

/* Which kwargs each schedule's function takes (beyond the steps). */
static const char *const takes[][9] = {
	[TK_SCHED_COSINE] = { "num_cycles" },
	[TK_SCHED_COSINE_WITH_RESTARTS] = { "num_cycles" },
	[TK_SCHED_POLYNOMIAL] = { "lr_end", "power" },
	[TK_SCHED_INVERSE_SQRT] = { "timescale" },
	[TK_SCHED_REDUCE_ON_PLATEAU] = { "mode", "factor", "patience", "threshold",
					 "threshold_mode", "cooldown", "min_lr", "eps" },
	[TK_SCHED_COSINE_WITH_MIN_LR] = { "num_cycles", "min_lr", "min_lr_rate" },
	[TK_SCHED_COSINE_WARMUP_WITH_MIN_LR] = { "num_cycles", "min_lr", "min_lr_rate",
						 "warmup_lr_rate" },
	[TK_SCHED_WARMUP_STABLE_DECAY] = { "num_decay_steps", "num_stable_steps", "warmup_type",
					   "decay_type", "min_lr_ratio", "num_cycles" },
};

static int takes_key(enum tk_sched_type t, const char *key)
{
	for (int i = 0; i < 9 && takes[t][i]; i++)
		if (!strcmp(takes[t][i], key))
			return 1;
	return 0;
}

static int kw_num(const cJSON *v, double *out, struct tk_diag *d)
{
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "lr_scheduler_kwargs: %s must be a number", v->string);
	*out = v->valuedouble;
	return 0;
}

static int kw_long(const cJSON *v, long min, long *out, struct tk_diag *d)
{
	double x = 0;
	int rc = kw_num(v, &x, d);
	if (rc)
		return rc;
	if (x != floor(x) || x < (double)min || x > 1e15)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "lr_scheduler_kwargs: %s must be a whole number of at least %ld",
				   v->string, min);
	*out = (long)x;
	return 0;
}

static int kw_word(const cJSON *v, const char *const *words, int n, int *out, struct tk_diag *d)
{
	for (int i = 0; cJSON_IsString(v) && i < n; i++)
		if (!strcmp(v->valuestring, words[i])) {
			*out = i;
			return 0;
		}
	return tk_diag_set(d, TK_E_INVAL, NULL, -1, "lr_scheduler_kwargs: %s must be %s%s%s%s%s",
			   v->string, words[0], n > 2 ? ", " : " or ", words[1],
			   n > 2 ? " or " : "", n > 2 ? words[2] : "");
}

static int set_kwarg(struct tk_sched *s, const cJSON *v, double *min_lr, struct tk_diag *d)
{
	static const char *const modes[] = { "min", "max" }, *const tmodes[] = { "rel", "abs" };
	const char *k = v->string;
	int w = 0, rc = 0;
	if (!strcmp(k, "num_cycles"))
		rc = kw_num(v, &s->num_cycles, d);
	else if (!strcmp(k, "lr_end"))
		rc = kw_num(v, &s->lr_end, d);
	else if (!strcmp(k, "power"))
		rc = kw_num(v, &s->power, d);
	else if (!strcmp(k, "timescale"))
		rc = cJSON_IsNull(v) ? 0 : kw_long(v, 1, &s->timescale, d);
	else if (!strcmp(k, "min_lr"))
		rc = kw_num(v, min_lr, d);
	else if (!strcmp(k, "min_lr_rate"))
		rc = kw_num(v, &s->min_lr_rate, d);
	else if (!strcmp(k, "warmup_lr_rate"))
		rc = kw_num(v, &s->warmup_lr_rate, d);
	else if (!strcmp(k, "num_decay_steps"))
		rc = kw_long(v, 0, &s->num_decay, d);
	else if (!strcmp(k, "num_stable_steps"))
		rc = kw_long(v, 0, &s->num_stable, d);
	else if (!strcmp(k, "warmup_type") && !(rc = kw_word(v, shapes, 3, &w, d)))
		s->warmup_shape = (enum tk_sched_shape)w;
	else if (!strcmp(k, "decay_type") && !(rc = kw_word(v, shapes, 3, &w, d)))
		s->decay_shape = (enum tk_sched_shape)w;
	else if (!strcmp(k, "min_lr_ratio"))
		rc = kw_num(v, &s->min_lr_ratio, d);
	else if (!strcmp(k, "mode") && !(rc = kw_word(v, modes, 2, &s->plateau_max, d)))
		s->plateau.best = s->plateau_max ? -INFINITY : INFINITY;
	else if (!strcmp(k, "threshold_mode"))
		rc = kw_word(v, tmodes, 2, &s->plateau_abs, d);
	else if (!strcmp(k, "factor"))
		rc = kw_num(v, &s->factor, d);
	else if (!strcmp(k, "patience"))
		rc = kw_long(v, 0, &s->patience, d);
	else if (!strcmp(k, "threshold"))
		rc = kw_num(v, &s->threshold, d);
	else if (!strcmp(k, "cooldown"))
		rc = kw_long(v, 0, &s->cooldown, d);
	else if (!strcmp(k, "eps"))
		rc = kw_num(v, &s->eps, d);
	return rc;
}

/* The checks get_scheduler and the schedule functions make. */
static int check(struct tk_sched *s, int has_min_lr, double min_lr, struct tk_diag *d)
{
	switch (s->type) {
	case TK_SCHED_POLYNOMIAL:
		if (!(s->base_lr > s->lr_end))
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "polynomial: lr_end (%g) must be "
					   "smaller than the learning rate (%g)", s->lr_end, s->base_lr);
		if (s->total <= s->warmup)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "polynomial: the warmup (%ld steps) "
					   "leaves no steps to decay over (%ld in all)", s->warmup,
					   s->total);
		break;
	case TK_SCHED_INVERSE_SQRT:
		if (!s->timescale)
			s->timescale = s->warmup ? s->warmup : 10000;
		break;
	case TK_SCHED_COSINE_WITH_MIN_LR:
	case TK_SCHED_COSINE_WARMUP_WITH_MIN_LR:
		if (has_min_lr && !isnan(s->min_lr_rate))
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%s: set min_lr or min_lr_rate in "
					   "lr_scheduler_kwargs, not both", tk_sched_name(s->type));
		if (has_min_lr)
			s->min_lr_rate = min_lr / s->base_lr;
		if (isnan(s->min_lr_rate))
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%s needs min_lr or min_lr_rate in "
					   "lr_scheduler_kwargs (e.g. '{\"min_lr_rate\": 0.1}')",
					   tk_sched_name(s->type));
		break;
	case TK_SCHED_WARMUP_STABLE_DECAY:
		if (s->num_decay < 0)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "warmup_stable_decay needs "
					   "num_decay_steps in lr_scheduler_kwargs (e.g. "
					   "'{\"num_decay_steps\": 100}')");
		if (s->num_stable < 0)
			s->num_stable = s->total - s->warmup - s->num_decay;
		break;
	case TK_SCHED_REDUCE_ON_PLATEAU:
		if (s->factor >= 1.0)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "reduce_lr_on_plateau: factor must be below 1");
		if (has_min_lr)
			s->plateau_min_lr = min_lr;
		s->plateau.lr = s->base_lr;
		break;
	default:
		break;
	}
	return 0;
}

int tk_sched_kwargs(struct tk_sched *s, const char *json, struct tk_diag *d)
{
	cJSON *root = NULL;
	if (json && *json) {
		root = cJSON_Parse(json);
		if (!cJSON_IsObject(root)) {
			cJSON_Delete(root);
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "lr_scheduler_kwargs is not a JSON "
					   "object (e.g. '{\"num_cycles\": 2}')");
		}
	}
	int rc = 0, has_min_lr = 0;
	double min_lr = 0;
	for (const cJSON *v = root ? root->child : NULL; v && !rc; v = v->next) {
		if (s->type == TK_SCHED_CONSTANT)
			break; /* get_scheduler passes constant none */
		if (!takes_key(s->type, v->string)) {
			rc = tk_diag_set(d, TK_E_INVAL, NULL, -1, "lr_scheduler_kwargs: %s takes no "
					 "'%.60s'%s%s%s%s", tk_sched_name(s->type), v->string,
					 takes[s->type][0] ? " (it takes " : "",
					 takes[s->type][0] ? takes[s->type][0] : "",
					 takes[s->type][1] ? ", ..." : "", takes[s->type][0] ? ")" : "");
			break;
		}
		has_min_lr |= !strcmp(v->string, "min_lr");
		rc = set_kwarg(s, v, &min_lr, d);
	}
	cJSON_Delete(root);
	return rc ? rc : check(s, has_min_lr, min_lr, d);
}

/* ---------------------------- the rates ---------------------------- */

static double maxd(double a, double b)
{
	return a > b ? a : b;
}

static double warmup_ramp(long step, long w)
{
	return (double)step / maxd(1.0, (double)w);
}

/* progress through the steps after warmup, as the cosine schedules count it */
static double progress(const struct tk_sched *s, long step)
{
	return (double)(step - s->warmup) / maxd(1.0, (double)(s->total - s->warmup));
}

static double cosine(double cycles, double p)
{
	return 0.5 * (1.0 + cos(M_PI * cycles * 2.0 * p));
}

static double polynomial(const struct tk_sched *s, long step)
{
	if (step > s->total)
		return s->lr_end / s->base_lr;
	double range = s->base_lr - s->lr_end;
	double pct_remaining = 1 - (double)(step - s->warmup) / (double)(s->total - s->warmup);
	return (range * pow(pct_remaining, s->power) + s->lr_end) / s->base_lr;
}

/* cosine_warmup_with_min_lr counts steps from 1 inside and after warmup */
static double cosine_warmup_min(const struct tk_sched *s, long step)
{
	double k = (double)step, w = (double)s->warmup, n = (double)s->total;
	if (k < w) {
		if (isnan(s->warmup_lr_rate))
			return (k + 1.0) / maxd(1.0, w);
		return s->warmup_lr_rate +
		       (1.0 - s->warmup_lr_rate) * k / (double)(s->warmup - 1 > 1 ? s->warmup - 1 : 1);
	}
	double p = (k - w + 1.0) / maxd(1.0, n - w);
	double f = cosine(s->num_cycles, p) * (1 - s->min_lr_rate) + s->min_lr_rate;
	return maxd(0, f);
}

static double wsd_shape(enum tk_sched_shape shape, double p, double cycles, int decay)
{
	switch (shape) {
	case TK_SHAPE_LINEAR:
		return decay ? 1.0 - p : p;
	case TK_SHAPE_COSINE:
		return decay ? cosine(cycles, p) : 0.5 * (1.0 - cos(M_PI * p));
	default:
		return decay ? 1.0 - sqrt(p) : 1.0 - sqrt(1.0 - p);
	}
}

static double wsd(const struct tk_sched *s, long step)
{
	long w = s->warmup, stable = s->num_stable, decay = s->num_decay;
	double f;
	if (step < w) {
		f = wsd_shape(s->warmup_shape, warmup_ramp(step, w), s->num_cycles, 0);
	} else if (step < w + stable) {
		return 1.0;
	} else if (step < w + stable + decay) {
		double p = (double)(step - w - stable) / maxd(1.0, (double)decay);
		f = wsd_shape(s->decay_shape, p, s->num_cycles, 1);
	} else {
		return s->min_lr_ratio;
	}
	return maxd(0.0, f * (1.0 - s->min_lr_ratio) + s->min_lr_ratio);
}

double tk_sched_factor(const struct tk_sched *s, long step)
{
	long w = s->warmup;
	switch (s->type) {
	case TK_SCHED_CONSTANT:
		return 1.0;
	case TK_SCHED_REDUCE_ON_PLATEAU:
		return s->plateau.lr / s->base_lr;
	case TK_SCHED_COSINE_WARMUP_WITH_MIN_LR:
		return cosine_warmup_min(s, step);
	case TK_SCHED_WARMUP_STABLE_DECAY:
		return wsd(s, step);
	default:
		break;
	}
	if (step < w)
		return warmup_ramp(step, w);
	switch (s->type) {
	case TK_SCHED_LINEAR:
		return maxd(0.0, (double)(s->total - step) / (double)(s->total - w > 1 ? s->total - w : 1));
	case TK_SCHED_COSINE:
		return maxd(0.0, cosine(s->num_cycles, progress(s, step)));
	case TK_SCHED_COSINE_WITH_RESTARTS: {
		double p = progress(s, step);
		if (p >= 1.0)
			return 0.0;
		return maxd(0.0, 0.5 * (1.0 + cos(M_PI * fmod(s->num_cycles * p, 1.0))));
	}
	case TK_SCHED_POLYNOMIAL:
		return polynomial(s, step);
	case TK_SCHED_INVERSE_SQRT: {
		long shift = s->timescale - w;
		return 1.0 / sqrt((double)(step + shift) / (double)s->timescale);
	}
	case TK_SCHED_COSINE_WITH_MIN_LR: {
		double f = cosine(s->num_cycles, progress(s, step));
		return maxd(0, f * (1 - s->min_lr_rate) + s->min_lr_rate);
	}
	default: /* constant_with_warmup */
		return 1.0;
	}
}

double tk_sched_lr(const struct tk_sched *s, long step)
{
	if (s->type == TK_SCHED_REDUCE_ON_PLATEAU)
		return s->plateau.lr;
	return s->base_lr * tk_sched_factor(s, step);
}

static int plateau_better(const struct tk_sched *s, double a, double best)
{
	if (!s->plateau_max)
		return s->plateau_abs ? a < best - s->threshold : a < best * (1.0 - s->threshold);
	return s->plateau_abs ? a > best + s->threshold : a > best * (s->threshold + 1.0);
}

int tk_sched_plateau_step(struct tk_sched *s, double metric)
{
	struct tk_plateau *p = &s->plateau;
	int changed = 0;
	p->evals++;
	if (plateau_better(s, metric, p->best)) {
		p->best = metric;
		p->bad = 0;
	} else {
		p->bad++;
	}
	if (p->cooldown_left > 0) {
		p->cooldown_left--;
		p->bad = 0; /* bad evaluations in cooldown do not count */
	}
	if (p->bad > s->patience) {
		double old = p->lr, lr = maxd(old * s->factor, s->plateau_min_lr);
		if (old - lr > s->eps) {
			p->lr = lr;
			changed = 1;
		}
		p->cooldown_left = s->cooldown;
		p->bad = 0;
	}
	return changed;
}

float tk_clip_coef(double max_norm, double total_norm)
{
	float coef = (float)max_norm / ((float)total_norm + 1e-6f);
	return coef < 1.0f ? coef : 1.0f;
}

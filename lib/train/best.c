/* best.c - see best.h. */
#include "train/best.h"

#include <math.h>

static int better(const struct tk_best *b, double x, double than)
{
	return b->greater ? x > than : x < than; /* false for NaN, as np.less */
}

int tk_best_eval(struct tk_best *b, double value, long step, int *stop)
{
	if (b->patience > 0) { /* EarlyStoppingCallback.check_metric_value */
		if (!b->has_metric ||
		    (better(b, value, b->metric) && fabs(value - b->metric) > b->threshold))
			b->bad = 0;
		else
			b->bad++;
		if (stop && b->bad >= b->patience)
			*stop = 1;
	}
	/* _determine_best_metric: best_metric starts at -+inf */
	if (!b->has_metric) {
		b->has_metric = 1;
		b->metric = b->greater ? -INFINITY : INFINITY;
	}
	if (!better(b, value, b->metric))
		return 0;
	b->metric = value;
	b->step = step;
	return 1;
}

size_t tk_best_rotation(const long *steps, size_t n, long limit, long best_step, int *del)
{
	size_t newest = 0, n_del = 0, remaining = n, keep, protected = 0;
	int has_best = 0;
	for (size_t i = 0; i < n; i++) {
		del[i] = 0;
		if (steps[i] > steps[newest])
			newest = i;
		has_best |= best_step > 0 && steps[i] == best_step;
	}
	if (limit <= 0 || (size_t)limit >= n)
		return 0;
	protected = 1 + (has_best && steps[newest] != best_step);
	keep = (size_t)limit > protected ? (size_t)limit : protected;
	while (remaining > keep) { /* the oldest unprotected one */
		size_t pick = n;
		for (size_t i = 0; i < n; i++)
			if (!del[i] && i != newest && steps[i] != best_step &&
			    (pick == n || steps[i] < steps[pick]))
				pick = i;
		if (pick == n)
			break;
		del[pick] = 1;
		n_del++;
		remaining--;
	}
	return n_del;
}

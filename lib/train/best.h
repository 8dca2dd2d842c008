/* best.h - the best checkpoint and early stopping, as the Trainer keeps them.
 *
 * After each evaluation the Trainer compares metric_for_best_model with
 * state.best_metric (np.less, or np.greater when greater_is_better): a
 * better value becomes best_metric and its step best_global_step
 * (_determine_best_metric).  EarlyStoppingCallback runs before that
 * update, against the previous best: an evaluation that does not beat it
 * by more than the threshold counts one more toward the patience, a
 * better one sets the count back to 0; at the patience training stops.
 * At save time the checkpoint of best_global_step, if it exists, is
 * best_model_checkpoint, which checkpoint rotation never deletes
 * (trainer_utils.rotate_checkpoints).
 */
#ifndef TK_BEST_H
#define TK_BEST_H

#include <stddef.h>

struct tk_best {
	int greater;        /* greater_is_better */
	int has_metric;     /* best_metric is not None */
	double metric;      /* best_metric (-+inf until a value beats it) */
	long step;          /* best_global_step; 0: none */
	long patience;      /* early_stopping_patience; 0: no early stopping */
	double threshold;   /* early_stopping_threshold */
	long bad;           /* early_stopping_patience_counter */
};

/* One evaluation's metric at step: first the early-stopping count (when
 * patience > 0), then the best.  Returns 1 if value is the new best
 * (NaN never is, as numpy's comparisons say), else 0; *stop (may be
 * NULL) is set to 1 when the patience is used up. */
int tk_best_eval(struct tk_best *b, double value, long step, int *stop);

/* Which of the checkpoints (their steps, in any order; n of them)
 * rotation deletes to keep limit: the oldest first, never the newest and
 * never best_step (0: none), keeping max(limit, protected) in all.
 * Sets del[i] to 1 for each one to delete; returns how many.  limit <= 0
 * deletes none. */
size_t tk_best_rotation(const long *steps, size_t n, long limit, long best_step, int *del);

#endif

/* zero.c - the optimizer's state and what each process updates
 * (train-int.h): the AdamW arenas, data parallel's sums over the ranks
 * (MPI, or NCCL on CUDA backends), and ZeRO stage 1's shards of the state
 * with the reduce-scatter and all-gather around them (train.h). */
#include <stdlib.h>
#include <string.h>

#include "compute/dist.h"
#include "train/train-int.h"

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

int train_opt_setup(struct trainer *tr, struct tk_diag *d)
{
	int rc;
	if ((rc = tk_model_trainable(&tr->m, &tr->tp, &tr->n_tp, d)))
		return rc;
	if (!(tr->popt = tk_mallocn((size_t)tr->n_tp + 1, sizeof(*tr->popt))))
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	for (int i = 0; i < tr->n_tp; i++) { /* 64-byte aligned, as the arenas */
		tr->popt[i] = tr->n_opt;
		tr->n_opt += (tr->tp[i].n + 15) / 16 * 16;
	}
	if ((rc = nccl_setup(tr, d)) || (rc = segs_setup(tr, d)))
		return rc;
	if (tr->o->optim == TK_OPTIM_ADAMW_8BIT) /* bitsandbytes' 8-bit state instead */
		return tk_adamw8_state_init(&tr->a8, tr->be, tr->tp, tr->n_tp, d);
	tr->exp_avg = opt_state_new(tr);
	tr->exp_avg_sq = opt_state_new(tr);
	if (!tr->exp_avg || !tr->exp_avg_sq)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	return 0;
}

/* This process's part of tp[i], NULL when it has none. */
const struct tr_seg *train_seg_of(const struct trainer *tr, int i)
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

/* Data parallel, after the backward passes: the gradients and the loss of
 * the step summed over the ranks (each rank's share is already divided by
 * the step's items of every rank), the input tokens counted over them. */
int train_reduce_step(struct trainer *tr, float *step_loss, long items, double rows,
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

/* Every shard's updated weights to every rank. */
int train_zero_allgather(struct trainer *tr, struct tk_diag *d)
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
int train_zero_gather_state(struct trainer *tr, int i, int k, struct tk_diag *d)
{
	const struct tr_seg *sg = train_seg_of(tr, i);
	const float *st = k ? tr->exp_avg_sq : tr->exp_avg;
	shard_counts(tr, tr->zoff[i], tr->zoff[i + 1]);
	return tk_dist_gather_f32(sg ? st + sg->loc : st, tk_dist_rank() ? NULL : tr->ztmp,
				  tr->zcnt, 0, d);
}

/* The other ranks' side of save_optimizer's gathers. */
int train_zero_send_state(struct trainer *tr, struct tk_diag *d)
{
	int rc = 0;
	for (int i = 0; i < tr->n_tp && !rc; i++)
		for (int k = 0; k < 2 && !rc; k++)
			rc = train_zero_gather_state(tr, i, k, d);
	return rc;
}

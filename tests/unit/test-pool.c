/* test-pool.c - compute/pool.h: every iteration runs once, on a thread id
 * below nt, one at a time per id; the caller alone where it must, in
 * order; the same for tk_pool_for_strips. */
#include <omp.h>
#include <stdatomic.h>
#include <string.h>

#include "compute/pool.h"
#include "tt.h"

#define N 1000

struct hits {
	_Atomic int count[N];
	_Atomic int busy[64];   /* iterations running now, per tid */
	_Atomic int bad_tid, overlap, max_tid;
	_Atomic int seq, order[N]; /* the order the iterations ran in */
};

static void hit(void *p, int i, int tid)
{
	struct hits *h = p;

	if (tid < 0 || tid >= 64) {
		atomic_store(&h->bad_tid, 1);
		return;
	}
	if (atomic_fetch_add(&h->busy[tid], 1))
		atomic_store(&h->overlap, 1);
	for (volatile int k = 0; k < (i % 7) * 100; k++)
		;
	atomic_fetch_add(&h->count[i], 1);
	atomic_store(&h->order[atomic_fetch_add(&h->seq, 1) % N], i);
	if (tid > atomic_load(&h->max_tid))
		atomic_store(&h->max_tid, tid);
	atomic_fetch_sub(&h->busy[tid], 1);
}

/* n iterations on nt threads (tk_pool_for_strips with strips): each
 * once, tids below nt. */
static int once_each(int nt, int n, struct hits *h, int strips)
{
	memset(h, 0, sizeof(*h));
	(strips ? tk_pool_for_strips : tk_pool_for)(nt, n, hit, h);
	for (int i = 0; i < n; i++)
		if (atomic_load(&h->count[i]) != 1)
			return 0;
	return !h->bad_tid && !h->overlap && h->max_tid < (nt > 1 ? nt : 1);
}

static void test_all_once(void)
{
	static struct hits h;
	const int nts[] = { 1, 2, 3, 4, 8 }, ns[] = { 1, 2, 5, 17, N };

	for (int st = 0; st < 2; st++) {
		for (int a = 0; a < 5; a++)
			for (int b = 0; b < 5; b++)
				TT_CHECK(once_each(nts[a], ns[b], &h, st), "nt %d n %d strips %d",
					 nts[a], ns[b], st);
		/* many jobs back to back, their sizes and thread counts
		 * changing, as a decode step's loops: no iteration lost to or
		 * taken from the next */
		for (int r = 0; r < 2000; r++)
			if (!once_each(1 + r % 3, 1 + (r * 7) % 40, &h, st)) {
				TT_CHECK(0, "job %d strips %d", r, st);
				break;
			}
	}
}

static void test_nested(void)
{
	static struct hits h;
	int ok = 1;

	/* inside an OpenMP region of more than one thread: the caller runs them */
#pragma omp parallel num_threads(2)
	{
#pragma omp single
		for (int st = 0; st < 2; st++) {
			ok = ok && once_each(4, 50, &h, st) &&
			     (omp_get_num_threads() == 1 || h.max_tid == 0);
			/* the caller alone: in order, strips or not */
			for (int i = 0; i < 50 && omp_get_num_threads() > 1; i++)
				ok = ok && atomic_load(&h.order[i]) == i;
		}
	}
	TT_CHECK(ok, "in an OpenMP region");
}

int main(void)
{
	TT_RUN(test_all_once);
	TT_RUN(test_nested);
	return tt_done();
}

/* pool.c - a persistent thread pool for the decode loops (see pool.h).
 *
 * One job at a time.  Its iterations are claimed through one 64-bit word,
 * the job's generation (high half) and its next iteration (low half): a
 * claim is a compare-and-swap that succeeds only while that generation
 * still has iterations left, so a worker that read the job's function late,
 * after the caller moved on, cannot run it for the next job's iterations
 * (the caller writes the next job only once every iteration of this one is
 * done, and a successful claim means one was not).  Before it writes the
 * next job's fields the caller closes the finished generation (its next
 * iteration set to CLOSED): a worker still on that generation may read the
 * new job's n, larger than the old one, and without the close would find
 * an iteration "left" under the old generation and run the new function on
 * it before the job is published, counting it in done twice.
 */
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "compute/pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define relax() _mm_pause()
#else
#define relax() ((void)0)
#endif

/* The next iteration of a closed generation: no n reaches it. */
#define CLOSED 0x7fffffffu

/* Workers at most (the caller is one more thread). */
#define POOL_MAX 255
/* How long an idle worker spins for the next job before it sleeps: past
 * the gap between the loops of one decode step (norms, RoPE: a few us) and
 * the sampling between steps, short enough to give the core back soon
 * when decoding stops. */
#define SPIN_NS 200000L
/* How long the caller spins on iterations another thread runs before it
 * yields its core to them each time (they may be waiting for it). */
#define WAIT_SPIN_NS 20000L

static struct {
	_Atomic uint64_t state;       /* generation << 32 | next iteration */
	_Atomic int done;             /* iterations of this job finished */
	_Atomic(tk_pool_fn) fn;
	void *_Atomic arg;
	_Atomic int n, nt;
	_Atomic int sleepers;
	atomic_flag busy;             /* a caller holds the pool */
	int workers;                  /* started (under busy) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
} pool = { .busy = ATOMIC_FLAG_INIT, .mu = PTHREAD_MUTEX_INITIALIZER,
	   .cv = PTHREAD_COND_INITIALIZER };

static _Thread_local int on_worker;

static long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* Claims and runs iterations of generation gen as thread tid while any
 * are left. */
static void work(uint32_t gen, tk_pool_fn fn, void *arg, int n, int tid)
{
	uint64_t s = atomic_load(&pool.state);

	while ((uint32_t)(s >> 32) == gen && (int)(uint32_t)s < n) {
		if (!atomic_compare_exchange_weak(&pool.state, &s, s + 1))
			continue;
		fn(arg, (int)(uint32_t)s, tid);
		atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
		s = atomic_load(&pool.state);
	}
}

static void *worker(void *p)
{
	int tid = (int)(intptr_t)p;
	uint32_t seen = (uint32_t)(atomic_load(&pool.state) >> 32);

	on_worker = 1;
	for (;;) {
		uint64_t s = atomic_load(&pool.state);
		long t0 = now_ns();

		for (int k = 0; (uint32_t)(s >> 32) == seen; k++) {
			if ((k & 63) == 63 && now_ns() - t0 > SPIN_NS)
				break;
			relax();
			s = atomic_load(&pool.state);
		}
		if ((uint32_t)(s >> 32) == seen) {
			/* the caller reads sleepers after publishing a job, so
			 * one of the two sees the other (both seq_cst) */
			pthread_mutex_lock(&pool.mu);
			atomic_fetch_add(&pool.sleepers, 1);
			while ((uint32_t)((s = atomic_load(&pool.state)) >> 32) == seen)
				pthread_cond_wait(&pool.cv, &pool.mu);
			atomic_fetch_sub(&pool.sleepers, 1);
			pthread_mutex_unlock(&pool.mu);
		}
		seen = (uint32_t)(s >> 32);
		tk_pool_fn fn = atomic_load(&pool.fn);
		void *arg = atomic_load(&pool.arg);
		int n = atomic_load(&pool.n), nt = atomic_load(&pool.nt);
		if (tid < nt) /* a job for fewer threads leaves the others idle */
			work(seen, fn, arg, n, tid);
	}
	return NULL;
}

/* Starts workers up to want (under busy); returns how many there are. */
static int grow(int want)
{
	while (pool.workers < want) {
		pthread_t th;
		pthread_attr_t at;
		int rc;

		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 1 << 20);
		rc = pthread_create(&th, &at, worker, (void *)(intptr_t)(pool.workers + 1));
		pthread_attr_destroy(&at);
		if (rc)
			break;
		pool.workers++;
	}
	return pool.workers;
}

/* tk_pool_for_strips' order: iteration i of n' = per nt runs fn's
 * (i % nt) per + i / nt, when below n. */
struct strips {
	tk_pool_fn fn;
	void *arg;
	int nt, per, n;
};

static void strip_run(void *p, int i, int tid)
{
	const struct strips *s = p;
	int b = (i % s->nt) * s->per + i / s->nt;

	if (b < s->n)
		s->fn(s->arg, b, tid);
}

static void run(int nt, int n, tk_pool_fn fn, void *arg, int strips)
{
	if (nt > POOL_MAX + 1)
		nt = POOL_MAX + 1;
	if (nt > n)
		nt = n;
	if (nt <= 1 || on_worker || omp_in_parallel() || atomic_flag_test_and_set(&pool.busy)) {
		for (int i = 0; i < n; i++)
			fn(arg, i, 0);
		return;
	}
	int have = grow(nt - 1);
	if (nt > have + 1)
		nt = have + 1;
	/* on the caller's stack until every iteration is done (below) */
	struct strips st = { fn, arg, nt, (n + nt - 1) / nt, n };
	if (strips && nt > 1) {
		fn = strip_run;
		arg = &st;
		n = st.per * nt;
	}
	uint32_t gen = (uint32_t)(atomic_load(&pool.state) >> 32);

	/* close the last job before its fields change (see the top) */
	atomic_store(&pool.state, (uint64_t)gen << 32 | CLOSED);
	gen++;
	atomic_store_explicit(&pool.fn, fn, memory_order_relaxed);
	atomic_store_explicit(&pool.arg, arg, memory_order_relaxed);
	/* release: a worker that reads this n sees the close above too */
	atomic_store_explicit(&pool.n, n, memory_order_release);
	atomic_store_explicit(&pool.nt, nt, memory_order_relaxed);
	atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
	atomic_store(&pool.state, (uint64_t)gen << 32);
	if (atomic_load(&pool.sleepers) > 0) {
		pthread_mutex_lock(&pool.mu);
		pthread_cond_broadcast(&pool.cv);
		pthread_mutex_unlock(&pool.mu);
	}
	work(gen, fn, arg, n, 0);
	/* the iterations the others claimed: short, unless their thread lost
	 * its core, and then yielding may be what gives it back */
	long t0 = 0;
	for (int k = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < n; k++) {
		if ((k & 63) == 63) {
			if (!t0)
				t0 = now_ns();
			else if (now_ns() - t0 > WAIT_SPIN_NS)
				sched_yield();
		}
		relax();
	}
	atomic_flag_clear(&pool.busy);
}

void tk_pool_for(int nt, int n, tk_pool_fn fn, void *arg)
{
	run(nt, n, fn, arg, 0);
}

void tk_pool_for_strips(int nt, int n, tk_pool_fn fn, void *arg)
{
	run(nt, n, fn, arg, 1);
}

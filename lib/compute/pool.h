/* pool.h - a persistent thread pool for the CPU backend's decode loops.
 *
 * A decode step runs some 250 small parallel loops per token (each weight
 * matrix, each layer's attention).  An OpenMP region ends at a barrier that
 * every thread of the team must reach, so when the machine is shared and
 * one of them has lost its core, the others spin until the scheduler gives
 * it back (measured on the 2-core EPYC here, with another process busy:
 * SmolLM2-135M fp32 decode fell from 56 tok/s at 1 thread to 2-5 tok/s at
 * 2).  Here the calling thread works too, and a loop ends when its
 * iterations are done, not when every thread has checked in: iterations are
 * claimed one at a time, so a thread that comes late finds none left and
 * the caller waits only for iterations already started.  Idle workers spin
 * a short while for the next loop, then sleep.
 */
#ifndef TK_POOL_H
#define TK_POOL_H

/* One iteration: i in [0, n), tid in [0, nt) the thread running it (for
 * per-thread scratch; two iterations never run at once with one tid). */
typedef void (*tk_pool_fn)(void *arg, int i, int tid);

/* Runs fn(arg, i, tid) for every i in [0, n) on up to nt threads, the
 * caller one of them, and returns when all have run.  Which thread runs
 * an iteration varies; the iterations must not depend on each other.
 * Runs them all on the caller (tid 0) when nt or n is 1, inside an OpenMP
 * region, on a pool worker, or while another thread uses the pool. */
void tk_pool_for(int nt, int n, tk_pool_fn fn, void *arg);

/* tk_pool_for with the iterations split into one contiguous strip per
 * thread: claims still go one at a time to whichever thread comes, but
 * the k-th claim of a round of nt goes to the next iteration of strip k,
 * so threads that take turns (as equal threads do) each run one strip in
 * order.  For loops whose iteration i reads memory right after i - 1's
 * (the rows of a weight matrix): each thread's reads stay one stream,
 * which the hardware's prefetch follows, where every nt-th block of rows
 * restarts it.  A thread that falls behind leaves its strip to the others
 * as tk_pool_for does. */
void tk_pool_for_strips(int nt, int n, tk_pool_fn fn, void *arg);

#endif

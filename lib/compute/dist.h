/* dist.h - several processes training one model: rank, size and the
 * collectives data-parallel training needs (all-reduce, broadcast,
 * barrier, abort; reduce-scatter and gathers for ZeRO-1).
 *
 * Built with MPI (TK_USE_MPI, when the Makefile finds mpicc), a process
 * that a launcher started (mpirun, mpiexec, srun: the launcher's
 * environment says so) joins MPI_COMM_WORLD; one started on its own stays
 * a single process and never initialises MPI.  Built without MPI,
 * everything is the single-process case, and a process that a launcher
 * started as one of several refuses to run (tk_dist_init).
 *
 * The state is the process's (MPI's is too): call tk_dist_init once,
 * from the main thread, before anything else here, and tk_dist_finalize at
 * the end.  Before tk_dist_init (or without it) rank is 0 and size 1, and
 * every collective is a no-op that returns 0.  Collectives are called by
 * every rank in the same order, from the main thread only.
 */
#ifndef TK_DIST_H
#define TK_DIST_H

#include <stddef.h>

#include "base/tk.h"

/* 1 when this build has MPI support (TK_USE_MPI), else 0. */
int tk_dist_has_mpi(void);

/* The number of processes a launcher in the environment started (OpenMPI's
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE of MPICH/Hydra and Slurm, MV2's), 0 when
 * none did; -1 when a launcher is there but says no size (PMIx alone). */
int tk_dist_launched_size(void);

/* Joins the launcher's processes (MPI_Init_thread, funneled) when one
 * started this process, else stays single.  Returns 0, or TK_E_UNSUPPORTED
 * ("this build has no MPI support ...") when built without MPI and
 * started as one of several, or TK_E_DEVICE when MPI fails to start. */
int tk_dist_init(struct tk_diag *d);

/* Leaves MPI when tk_dist_init joined it (MPI_Finalize); else nothing. */
void tk_dist_finalize(void);

/* This process's rank (0..size-1) and the number of processes. */
int tk_dist_rank(void);
int tk_dist_size(void);

/* Sums buf[0..n) over every rank, in place, so that each rank ends with the
 * same sum.  Returns 0 or TK_E_DEVICE (MPI's error in d).  n may exceed
 * INT_MAX (sent in pieces). */
int tk_dist_allreduce_f32(float *buf, size_t n, struct tk_diag *d);
int tk_dist_allreduce_f64(double *buf, size_t n, struct tk_diag *d);

/* The collectives of optimizer-state sharding (ZeRO-1), over a buffer cut
 * into one run per rank: counts[0..size) floats, rank r's run starting at
 * displ r = counts[0] + ... + counts[r-1] (a count may be 0; each at most
 * INT_MAX, else TK_E_INVAL).
 *
 * tk_dist_reduce_scatter_f32: every rank gives send[0..sum of counts);
 * rank r gets the sum over the ranks of its run in recv[0..counts[r]).
 * tk_dist_allgather_f32: rank r's run is at buf + displ r; afterwards every
 * rank holds every run there (in place).  tk_dist_gather_f32: rank r sends
 * send[0..counts[r]); root gets the runs one after another in recv (NULL on
 * the other ranks), send and recv apart.  Return 0, TK_E_DEVICE (MPI's
 * error in d) or TK_E_NOMEM.  One process: reduce-scatter and gather copy
 * send to recv, all-gather does nothing. */
int tk_dist_reduce_scatter_f32(const float *send, float *recv, const size_t *counts,
			       struct tk_diag *d);
int tk_dist_allgather_f32(float *buf, const size_t *counts, struct tk_diag *d);
int tk_dist_gather_f32(const float *send, float *recv, const size_t *counts, int root,
		       struct tk_diag *d);

/* Copies size bytes at buf on rank root to buf on every other rank.
 * Returns 0 or TK_E_DEVICE. */
int tk_dist_bcast(void *buf, size_t size, int root, struct tk_diag *d);

/* Returns when every rank has called it; 0 or TK_E_DEVICE. */
int tk_dist_barrier(struct tk_diag *d);

/* Ends every process of the job with exit status code (MPI_Abort): for a
 * rank that failed while the others may wait in a collective.  Single
 * process: returns without doing anything (the caller exits as usual). */
void tk_dist_abort(int code);

/* The --device spec for this rank: with several ranks and spec NULL,
 * "auto" or "cuda", "cuda:N" with N = the process's place among the ranks
 * on its node (an MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) that
 * tk_dist_init makes) mod the CUDA devices the driver reports, written
 * into buf[0..size); spec itself otherwise (one
 * process, "cpu", "cuda:N", or no CUDA device: then tk_backend_init
 * decides as in one process).  UNVERIFIED on several GPUs. */
const char *tk_dist_device_spec(const char *spec, char *buf, size_t size);

/* Sets *v to its minimum over the ranks (every rank calls it); 0 or
 * TK_E_DEVICE.  One process: nothing. */
int tk_dist_all_min(int *v, struct tk_diag *d);

/* 1 when this build has NCCL (TK_USE_NCCL: CUDA, MPI and nccl.h), else 0. */
int tk_dist_has_nccl(void);

/* GPU collectives with NCCL, for a CUDA backend's gradients and weights
 * (TK_USE_NCCL).  UNVERIFIED: compiled here, never run on several GPUs;
 * tk-train uses them for a CUDA backend on several ranks (lib/train/zero.c).
 * tk_dist_nccl_init makes one communicator over every rank on CUDA device
 * `device` (< 0: the calling thread's current device, which a CUDA
 * backend's init sets); rank 0 makes the NCCL id and broadcasts it over MPI;
 * a second call does nothing.  Every rank calls it.
 *
 * The others queue work on stream (a cudaStream_t; NULL: the default
 * stream) and return before it is done: tk_dist_nccl_sync waits for it
 * (and reports NCCL's asynchronous errors) before anything reads the
 * buffers.  Buffers are device or managed memory.
 * tk_dist_allreduce_f32_dev: the sum of dbuf[0..n) over the ranks, in place.
 * tk_dist_reduce_runs_dev: for each run, the sum over the ranks of
 * p[0..n) into the run's root's p (in place; the others' p unchanged).
 * tk_dist_bcast_runs_dev: each run's p[0..n) from its root to every rank.
 * Every rank passes the same runs (sizes and roots) in the same order.
 * tk_dist_finalize frees the communicator.  They return 0, TK_E_DEVICE
 * (CUDA's or NCCL's error in d), TK_E_INVAL (a root out of range, or
 * called before tk_dist_nccl_init), or TK_E_UNSUPPORTED in a build without
 * NCCL. */
struct tk_dist_run {
	float *p;
	size_t n;
	int root;
};
int tk_dist_nccl_init(int device, struct tk_diag *d);
int tk_dist_allreduce_f32_dev(float *dbuf, size_t n, void *stream, struct tk_diag *d);
int tk_dist_reduce_runs_dev(const struct tk_dist_run *run, int n_run, void *stream,
			    struct tk_diag *d);
int tk_dist_bcast_runs_dev(const struct tk_dist_run *run, int n_run, void *stream,
			   struct tk_diag *d);
int tk_dist_nccl_sync(void *stream, struct tk_diag *d);

#endif

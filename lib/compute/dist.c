/* dist.c - see dist.h.  MPI is used only through this file. */
#include "compute/dist.h"
#include "compute/device.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TK_USE_MPI
#include <mpi.h>
#endif
#if defined(TK_USE_NCCL) && !defined(TK_USE_MPI)
#error "TK_USE_NCCL needs TK_USE_MPI (the NCCL id travels over MPI)"
#endif
#ifdef TK_USE_NCCL
#include <cuda_runtime_api.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes" /* nccl.h's f() */
#include <nccl.h>
#pragma GCC diagnostic pop

static ncclComm_t g_nccl;
static int g_nccl_on;
#endif

static int g_rank, g_size = 1, g_local;
#ifdef TK_USE_MPI
static int g_mpi;
#endif

/* Fault injection for the tests (tests/cli/tk-train/mpi-*.sh):
 * TK_DIST_TEST_KILL=R:N makes rank R die of SIGKILL at its N-th
 * all-reduce, as a crashed or killed process would. */
static long g_calls;

static void test_kill_hook(void)
{
	const char *s = getenv("TK_DIST_TEST_KILL");
	if (!s)
		return;
	char *end;
	long r = strtol(s, &end, 10), n;
	if (*end != ':')
		return;
	n = strtol(end + 1, &end, 10);
	g_calls++;
	if (!*end && r == g_rank && g_calls == n)
		raise(SIGKILL);
}

static int env_int(const char *name)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return 0;
	char *end;
	long v = strtol(s, &end, 10);
	return *end || v < 1 || v > INT_MAX ? 0 : (int)v;
}

int tk_dist_has_mpi(void)
{
#ifdef TK_USE_MPI
	return 1;
#else
	return 0;
#endif
}

int tk_dist_launched_size(void)
{
	static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
					    "MV2_COMM_WORLD_SIZE", NULL };
	for (int i = 0; vars[i]; i++) {
		int n = env_int(vars[i]);
		if (n)
			return n;
	}
	return getenv("PMIX_RANK") ? -1 : 0;
}

int tk_dist_rank(void)
{
	return g_rank;
}

int tk_dist_size(void)
{
	return g_size;
}

int tk_dist_has_nccl(void)
{
#ifdef TK_USE_NCCL
	return 1;
#else
	return 0;
#endif
}

const char *tk_dist_device_spec(const char *spec, char *buf, size_t size)
{
	int n = 0;
	struct tk_diag d;
	if (g_size < 2 || (spec && strcmp(spec, "auto") && strcmp(spec, "cuda")))
		return spec;
	if (!tk_device_cuda_built() || tk_device_cuda_count(&n, &d) || n < 1)
		return spec; /* tk_backend_init says why, as in one process */
	int k = snprintf(buf, size, "cuda:%d", g_local % n);
	return k < 0 || (size_t)k >= size ? spec : buf;
}

#ifdef TK_USE_MPI
static int mpi_fail(struct tk_diag *d, int err, const char *what)
{
	char msg[MPI_MAX_ERROR_STRING];
	int len = 0;
	if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS)
		len = 0;
	msg[len] = 0;
	return tk_diag_set(d, TK_E_DEVICE, NULL, -1, "MPI %s failed on rank %d: %s", what, g_rank,
			   len ? msg : "unknown error");
}

int tk_dist_init(struct tk_diag *d)
{
	if (g_mpi || !tk_dist_launched_size())
		return 0;
	int provided, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
	if (rc != MPI_SUCCESS)
		return tk_diag_set(d, TK_E_DEVICE, NULL, -1, "MPI_Init failed (error %d)", rc);
	g_mpi = 1;
	/* errors come back to the caller instead of aborting the job */
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
	MPI_Comm_size(MPI_COMM_WORLD, &g_size);
	/* the local rank: this process's place among those sharing its node */
	MPI_Comm node;
	rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL,
				 &node);
	if (rc != MPI_SUCCESS)
		return mpi_fail(d, rc, "MPI_Comm_split_type");
	rc = MPI_Comm_rank(node, &g_local);
	MPI_Comm_free(&node);
	return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "MPI_Comm_rank");
}

void tk_dist_finalize(void)
{
#ifdef TK_USE_NCCL
	if (g_nccl_on)
		ncclCommDestroy(g_nccl);
	g_nccl_on = 0;
#endif
	if (g_mpi)
		MPI_Finalize();
	g_mpi = 0;
	g_rank = 0;
	g_size = 1;
	g_local = 0;
}

/* In pieces of at most INT_MAX elements (MPI counts are int). */
static int allreduce(void *buf, size_t n, size_t esize, MPI_Datatype t, struct tk_diag *d)
{
	test_kill_hook();
	if (g_size == 1)
		return 0;
	char *p = buf;
	while (n) {
		int k = n > INT_MAX ? INT_MAX : (int)n;
		int rc = MPI_Allreduce(MPI_IN_PLACE, p, k, t, MPI_SUM, MPI_COMM_WORLD);
		if (rc != MPI_SUCCESS)
			return mpi_fail(d, rc, "all-reduce");
		p += (size_t)k * esize;
		n -= (size_t)k;
	}
	return 0;
}

int tk_dist_allreduce_f32(float *buf, size_t n, struct tk_diag *d)
{
	return allreduce(buf, n, sizeof(float), MPI_FLOAT, d);
}

int tk_dist_allreduce_f64(double *buf, size_t n, struct tk_diag *d)
{
	return allreduce(buf, n, sizeof(double), MPI_DOUBLE, d);
}

int tk_dist_bcast(void *buf, size_t size, int root, struct tk_diag *d)
{
	if (g_size == 1)
		return 0;
	char *p = buf;
	while (size) {
		int k = size > INT_MAX ? INT_MAX : (int)size;
		int rc = MPI_Bcast(p, k, MPI_BYTE, root, MPI_COMM_WORLD);
		if (rc != MPI_SUCCESS)
			return mpi_fail(d, rc, "broadcast");
		p += k;
		size -= (size_t)k;
	}
	return 0;
}

int tk_dist_all_min(int *v, struct tk_diag *d)
{
	if (g_size == 1)
		return 0;
	int rc = MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "all-reduce (min)");
}

int tk_dist_barrier(struct tk_diag *d)
{
	if (g_size == 1)
		return 0;
	int rc = MPI_Barrier(MPI_COMM_WORLD);
	return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "barrier");
}

void tk_dist_abort(int code)
{
	if (g_mpi && g_size > 1)
		MPI_Abort(MPI_COMM_WORLD, code);
}

#else /* one process */

int tk_dist_init(struct tk_diag *d)
{
	int n = tk_dist_launched_size();
	if (n > 1)
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "this build has no MPI support, so it cannot run as one of "
				   "several processes under mpirun (install libopenmpi-dev and "
				   "rebuild, or run it without mpirun)");
	return 0;
}

void tk_dist_finalize(void)
{
}

int tk_dist_allreduce_f32(float *buf, size_t n, struct tk_diag *d)
{
	(void)buf, (void)n, (void)d;
	test_kill_hook();
	return 0;
}

int tk_dist_allreduce_f64(double *buf, size_t n, struct tk_diag *d)
{
	(void)buf, (void)n, (void)d;
	test_kill_hook();
	return 0;
}

int tk_dist_bcast(void *buf, size_t size, int root, struct tk_diag *d)
{
	(void)buf, (void)size, (void)root, (void)d;
	return 0;
}

int tk_dist_all_min(int *v, struct tk_diag *d)
{
	(void)v, (void)d;
	return 0;
}

int tk_dist_barrier(struct tk_diag *d)
{
	(void)d;
	return 0;
}

void tk_dist_abort(int code)
{
	(void)code;
}
#endif

/* ZeRO-1's collectives (dist.h).  One process: the copies; MPI: counts and
 * displacements as MPI's ints. */
#ifdef TK_USE_MPI
static int runs(const size_t *counts, int **cnt, int **dsp, struct tk_diag *d)
{
	*cnt = malloc(2 * (size_t)g_size * sizeof(int));
	if (!*cnt)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	*dsp = *cnt + g_size;
	size_t at = 0;
	for (int r = 0; r < g_size; r++) {
		if (counts[r] > INT_MAX || at > INT_MAX) {
			free(*cnt);
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "collective of more than INT_MAX elements");
		}
		(*cnt)[r] = (int)counts[r];
		(*dsp)[r] = (int)at;
		at += counts[r];
	}
	return 0;
}
#endif

int tk_dist_reduce_scatter_f32(const float *send, float *recv, const size_t *counts,
			       struct tk_diag *d)
{
	if (g_size == 1) {
		if (recv != send && counts[0])
			memmove(recv, send, counts[0] * sizeof(float));
		return 0;
	}
#ifdef TK_USE_MPI
	int *cnt, *dsp, rc = runs(counts, &cnt, &dsp, d);
	if (rc)
		return rc;
	rc = MPI_Reduce_scatter(send, recv, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
	free(cnt);
	return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "reduce-scatter");
#else
	(void)d;
	return 0;
#endif
}

int tk_dist_allgather_f32(float *buf, const size_t *counts, struct tk_diag *d)
{
	if (g_size == 1)
		return 0;
#ifdef TK_USE_MPI
	int *cnt, *dsp, rc = runs(counts, &cnt, &dsp, d);
	if (rc)
		return rc;
	rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, dsp, MPI_FLOAT,
			    MPI_COMM_WORLD);
	free(cnt);
	return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "all-gather");
#else
	(void)buf, (void)counts, (void)d;
	return 0;
#endif
}

int tk_dist_gather_f32(const float *send, float *recv, const size_t *counts, int root,
		       struct tk_diag *d)
{
	if (g_size == 1) {
		if (counts[0])
			memmove(recv, send, counts[0] * sizeof(float));
		return 0;
	}
#ifdef TK_USE_MPI
	int *cnt, *dsp, rc = runs(counts, &cnt, &dsp, d);
	if (rc)
		return rc;
	rc = MPI_Gatherv(send, cnt[g_rank], MPI_FLOAT, recv, cnt, dsp, MPI_FLOAT, root,
			 MPI_COMM_WORLD);
	free(cnt);
	return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "gather");
#else
	(void)root, (void)d;
	return 0;
#endif
}

#ifdef TK_USE_NCCL
/* UNVERIFIED: compiled in CI, never run on several GPUs (dist.h). */
static int nccl_fail(struct tk_diag *d, ncclResult_t r, const char *what)
{
	return tk_diag_set(d, TK_E_DEVICE, NULL, -1, "%s failed on rank %d: %s", what, g_rank,
			   ncclGetErrorString(r));
}

static int cuda_fail(struct tk_diag *d, cudaError_t e, const char *what)
{
	return tk_diag_set(d, TK_E_DEVICE, NULL, -1, "%s failed on rank %d: %s", what, g_rank,
			   cudaGetErrorString(e));
}

int tk_dist_nccl_init(int device, struct tk_diag *d)
{
	if (g_nccl_on)
		return 0;
	int current = device < 0;
	cudaError_t ce = current ? cudaGetDevice(&device) : cudaSetDevice(device);
	if (ce != cudaSuccess && current)
		return cuda_fail(d, ce, "cudaGetDevice");
	if (ce != cudaSuccess)
		return tk_diag_set(d, TK_E_DEVICE, NULL, -1, "cudaSetDevice(%d) failed on rank %d: %s",
				   device, g_rank, cudaGetErrorString(ce));
	ncclUniqueId id;
	ncclResult_t r;
	memset(&id, 0, sizeof(id));
	if (g_rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess)
		return nccl_fail(d, r, "ncclGetUniqueId"); /* the caller aborts the job */
	int rc = tk_dist_bcast(&id, sizeof(id), 0, d);
	if (rc)
		return rc;
	if ((r = ncclCommInitRank(&g_nccl, g_size, id, g_rank)) != ncclSuccess)
		return nccl_fail(d, r, "ncclCommInitRank");
	g_nccl_on = 1;
	return 0;
}

int tk_dist_allreduce_f32_dev(float *dbuf, size_t n, void *stream, struct tk_diag *d)
{
	test_kill_hook();
	if (!g_nccl_on)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "NCCL all-reduce before tk_dist_nccl_init");
	ncclResult_t r = ncclAllReduce(dbuf, dbuf, n, ncclFloat, ncclSum, g_nccl,
				       (cudaStream_t)stream);
	return r == ncclSuccess ? 0 : nccl_fail(d, r, "ncclAllReduce");
}

/* The runs' reduces (bcast 0) or broadcasts (bcast 1), NCCL_GROUP at a
 * time in one NCCL group each. */
#define NCCL_GROUP 256
static int runs_dev(const struct tk_dist_run *run, int n_run, int bcast, void *stream,
		    struct tk_diag *d)
{
	if (!g_nccl_on)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "NCCL collective before tk_dist_nccl_init");
	for (int i = 0; i < n_run; i++)
		if (run[i].root < 0 || run[i].root >= g_size)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "NCCL run %d: root %d of %d ranks",
					   i, run[i].root, g_size);
	for (int i0 = 0; i0 < n_run; i0 += NCCL_GROUP) {
		int i1 = n_run - i0 > NCCL_GROUP ? i0 + NCCL_GROUP : n_run;
		ncclResult_t r = ncclGroupStart(), e = ncclSuccess;
		if (r != ncclSuccess)
			return nccl_fail(d, r, "ncclGroupStart");
		for (int i = i0; i < i1 && e == ncclSuccess; i++)
			e = bcast ? ncclBroadcast(run[i].p, run[i].p, run[i].n, ncclFloat, run[i].root,
						  g_nccl, (cudaStream_t)stream)
				  : ncclReduce(run[i].p, run[i].p, run[i].n, ncclFloat, ncclSum,
					       run[i].root, g_nccl, (cudaStream_t)stream);
		r = ncclGroupEnd(); /* ends the group even after a failed call */
		if (e != ncclSuccess)
			return nccl_fail(d, e, bcast ? "ncclBroadcast" : "ncclReduce");
		if (r != ncclSuccess)
			return nccl_fail(d, r, "ncclGroupEnd");
	}
	return 0;
}

int tk_dist_reduce_runs_dev(const struct tk_dist_run *run, int n_run, void *stream,
			    struct tk_diag *d)
{
	test_kill_hook();
	return runs_dev(run, n_run, 0, stream, d);
}

int tk_dist_bcast_runs_dev(const struct tk_dist_run *run, int n_run, void *stream,
			   struct tk_diag *d)
{
	return runs_dev(run, n_run, 1, stream, d);
}

int tk_dist_nccl_sync(void *stream, struct tk_diag *d)
{
	if (!g_nccl_on)
		return 0;
	cudaError_t e = cudaStreamSynchronize((cudaStream_t)stream);
	if (e != cudaSuccess)
		return cuda_fail(d, e, "cudaStreamSynchronize");
	ncclResult_t r, ar = ncclSuccess;
	if ((r = ncclCommGetAsyncError(g_nccl, &ar)) != ncclSuccess || ar != ncclSuccess)
		return nccl_fail(d, r != ncclSuccess ? r : ar, "NCCL");
	return 0;
}
#else
static int no_nccl(struct tk_diag *d)
{
	return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
			   "this build has no NCCL support (a CUDA build with MPI and nccl.h)");
}

int tk_dist_nccl_init(int device, struct tk_diag *d)
{
	(void)device;
	return no_nccl(d);
}

int tk_dist_allreduce_f32_dev(float *dbuf, size_t n, void *stream, struct tk_diag *d)
{
	(void)dbuf, (void)n, (void)stream;
	return no_nccl(d);
}

int tk_dist_reduce_runs_dev(const struct tk_dist_run *run, int n_run, void *stream,
			    struct tk_diag *d)
{
	(void)run, (void)n_run, (void)stream;
	return no_nccl(d);
}

int tk_dist_bcast_runs_dev(const struct tk_dist_run *run, int n_run, void *stream,
			   struct tk_diag *d)
{
	(void)run, (void)n_run, (void)stream;
	return no_nccl(d);
}

int tk_dist_nccl_sync(void *stream, struct tk_diag *d)
{
	(void)stream;
	return no_nccl(d);
}
#endif

/* test-dist.c - lib/compute/dist.c in one process: the launcher detection, the
 * collectives as identities, init and finalize.  Several processes are
 * tested by tests/cli/tk-train/mpi-*.sh under mpirun. */
#include <dlfcn.h>
#include <stdlib.h>

#include "compute/dist.h"
#include "tt.h"

static const char *const launch_vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
					   "MV2_COMM_WORLD_SIZE", "PMIX_RANK", NULL };

static void clear_env(void)
{
	for (int i = 0; launch_vars[i]; i++)
		unsetenv(launch_vars[i]);
}

static void test_launched_size(void)
{
	clear_env();
	TT_CHECK(tk_dist_launched_size() == 0, "%d", tk_dist_launched_size());
	setenv("PMI_SIZE", "4", 1);
	TT_CHECK(tk_dist_launched_size() == 4, "%d", tk_dist_launched_size());
	setenv("OMPI_COMM_WORLD_SIZE", "2", 1); /* OpenMPI's first */
	TT_CHECK(tk_dist_launched_size() == 2, "%d", tk_dist_launched_size());
	setenv("OMPI_COMM_WORLD_SIZE", "x2", 1); /* not a number: the next */
	TT_CHECK(tk_dist_launched_size() == 4, "%d", tk_dist_launched_size());
	clear_env();
	setenv("MV2_COMM_WORLD_SIZE", "0", 1);
	TT_CHECK(tk_dist_launched_size() == 0, "%d", tk_dist_launched_size());
	setenv("PMIX_RANK", "0", 1); /* a launcher that names no size */
	TT_CHECK(tk_dist_launched_size() == -1, "%d", tk_dist_launched_size());
	clear_env();
}

/* Started on its own: one process, collectives leave the data as it is. */
static void test_single(void)
{
	struct tk_diag d;
	clear_env();
	TT_REQUIRE(tk_dist_init(&d) == 0, "%s", d.msg);
	TT_CHECK(tk_dist_rank() == 0 && tk_dist_size() == 1, "%d of %d", tk_dist_rank(),
		 tk_dist_size());
	float f[3] = { 1.5f, -2, 3 };
	double g[2] = { 0.25, 7 };
	char b[4] = "abc";
	TT_CHECK(tk_dist_allreduce_f32(f, 3, &d) == 0, "%s", d.msg);
	TT_CHECK(f[0] == 1.5f && f[1] == -2 && f[2] == 3, "%g %g %g", f[0], f[1], f[2]);
	TT_CHECK(tk_dist_allreduce_f64(g, 2, &d) == 0 && g[0] == 0.25 && g[1] == 7, "%g", g[0]);
	TT_CHECK(tk_dist_bcast(b, 4, 0, &d) == 0 && !strcmp(b, "abc"), "%s", b);
	TT_CHECK(tk_dist_barrier(&d) == 0, "%s", d.msg);
	tk_dist_abort(1); /* one process: returns */
	tk_dist_finalize();
	TT_CHECK(tk_dist_rank() == 0 && tk_dist_size() == 1, "after finalize");
}

/* Built without MPI, one of several processes refuses; with MPI, that is
 * mpirun's case (tests/cli/tk-train/mpi-*.sh). */
static void test_no_mpi_refuses(void)
{
	struct tk_diag d;
	if (tk_dist_has_mpi())
		TT_SKIP("this build has MPI (make MPICC= builds one without)");
	clear_env();
	setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
	int rc = tk_dist_init(&d);
	clear_env();
	TT_CHECK(rc == TK_E_UNSUPPORTED, "%d", rc);
	TT_CHECK(strstr(d.msg, "this build has no MPI support"), "%s", d.msg);
	TT_CHECK(tk_dist_size() == 1, "%d", tk_dist_size());
	setenv("OMPI_COMM_WORLD_SIZE", "1", 1); /* mpirun -np 1: fine */
	TT_CHECK(tk_dist_init(&d) == 0, "%s", d.msg);
	clear_env();
}

/* The NCCL entry points: unsupported without NCCL; with it, no GPU is a
 * device error, and one GPU makes a communicator of this one process
 * (the only NCCL check that runs anywhere yet: UNVERIFIED on several). */
static void test_nccl(void)
{
	struct tk_diag d;
	clear_env();
	int rc = tk_dist_nccl_init(0, &d);
	if (rc == TK_E_UNSUPPORTED) {
		TT_CHECK(strstr(d.msg, "no NCCL support"), "%s", d.msg);
		rc = tk_dist_allreduce_f32_dev(NULL, 0, NULL, &d);
		TT_CHECK(rc == TK_E_UNSUPPORTED, "%d", rc);
		return;
	}
	if (rc == TK_E_DEVICE) {
		TT_CHECK(strstr(d.msg, "cudaSetDevice(0)"), "%s", d.msg);
		/* Skipped only where there is no GPU: no device, or no driver at
		 * all (the runtime then says "insufficient driver" too).  With a
		 * driver installed, that message is a real fault (a driver older
		 * than the runtime tk was built with) and fails. */
		void *drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
		if (drv)
			dlclose(drv);
		if (strstr(d.msg, "no CUDA-capable device") ||
		    (!drv && strstr(d.msg, "driver version is insufficient")))
			TT_SKIP("NCCL build without a GPU: %s", d.msg);
		TT_CHECK(0, "NCCL init failed with a CUDA driver present: %s", d.msg);
		return;
	}
	TT_REQUIRE(rc == 0, "%d: %s", rc, d.msg);
	rc = tk_dist_allreduce_f32_dev(NULL, 0, NULL, &d);
	TT_CHECK(rc == 0, "%s", d.msg);
	tk_dist_finalize();
}

int main(void)
{
	TT_RUN(test_launched_size);
	TT_RUN(test_single);
	TT_RUN(test_no_mpi_refuses);
	TT_RUN(test_nccl);
	return tt_done();
}

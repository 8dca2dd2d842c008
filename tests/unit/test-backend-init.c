/* test-backend-init.c - tk_backend_init's device selection, on whatever
 * machine runs it: a CUDA build without a GPU (this project's machines)
 * falls back to the CPU for "auto" with a note and refuses "cuda"; a CPU
 * build takes the CPU silently and refuses "cuda" as unsupported; with a
 * GPU, "auto" is CUDA.  The ops themselves are tests/gpu/. */
#include <string.h>

#include "base/quant.h"
#include "compute/backend.h"
#include "compute/device.h"
#include "compute/qweight-dev.h"
#include "tt.h"

static int gpus(void)
{
	struct tk_diag d;
	int n = 0;
	if (!tk_device_cuda_built() || tk_device_cuda_count(&n, &d))
		return 0;
	return n;
}

static void test_cpu(void)
{
	struct tk_backend be;
	struct tk_diag d;
	TT_REQUIRE(tk_backend_init(&be, "cpu", 2, &d) == 0, "%s", d.msg);
	TT_CHECK(!strcmp(be.i->name, "cpu") && be.threads == 2 && !d.msg[0], "%s %d '%s'",
		 be.i->name, be.threads, d.msg);
	TT_CHECK(!strcmp(tk_backend_cuda_last_error(&be), ""), "cpu has no cuda error");
	tk_backend_free(&be);
}

static void test_auto(void)
{
	struct tk_backend be;
	struct tk_diag d;
	TT_REQUIRE(tk_backend_init(&be, "auto", 1, &d) == 0, "%s", d.msg);
	if (gpus()) {
		TT_CHECK(!strcmp(be.i->name, "cuda") && !d.msg[0], "%s '%s'", be.i->name, d.msg);
	} else if (tk_device_cuda_built()) {
		TT_CHECK(!strcmp(be.i->name, "cpu"), "%s", be.i->name);
		TT_CHECK(!strcmp(d.msg, "no CUDA device found: running on the CPU"), "'%s'", d.msg);
	} else {
		TT_CHECK(!strcmp(be.i->name, "cpu") && !d.msg[0], "%s '%s'", be.i->name, d.msg);
	}
	tk_backend_free(&be);
	/* NULL is "auto" */
	TT_REQUIRE(tk_backend_init(&be, NULL, 1, &d) == 0, "%s", d.msg);
	tk_backend_free(&be);
}

static void test_refusals(void)
{
	struct tk_backend be;
	struct tk_diag d;
	int rc = tk_backend_init(&be, "gpu", 1, &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "unknown device 'gpu'"), "%d %s", rc, d.msg);
	TT_CHECK(!be.i, "no backend after a failure");
	rc = tk_backend_init(&be, "cpu", -1, &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "negative"), "%d %s", rc, d.msg);
	if (gpus())
		TT_SKIP("a GPU is present: \"cuda\" would start");
	rc = tk_backend_init(&be, "cuda", 1, &d);
	if (tk_device_cuda_built())
		TT_CHECK(rc == TK_E_DEVICE && strstr(d.msg, "no CUDA device 0"), "%d %s", rc,
			 d.msg);
	else
		TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "no CUDA support"), "%d %s", rc,
			 d.msg);
	TT_CHECK(!be.i, "no backend after a failure");
	rc = tk_backend_cuda_init(&be, 0, 0, 1, &d);
	TT_CHECK(rc == (tk_device_cuda_built() ? TK_E_DEVICE : TK_E_UNSUPPORTED), "%d %s", rc,
		 d.msg);
	TT_CHECK(!be.i && !be.ctx, "no backend after a failure");
}

/* host_memory, not the name "cpu", tells that a backend's memory is the
 * host's: tk_qweight_to_backend leaves a weight in place on such a
 * backend, whatever it is called, and moves it into one without. */
static void test_host_memory(void)
{
	struct tk_backend be, other;
	struct tk_qweight q;
	struct tk_diag d;
	float x[64 * 64];
	for (int i = 0; i < 64 * 64; i++)
		x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
	TT_REQUIRE(tk_backend_init(&be, "cpu", 1, &d) == 0, "%s", d.msg);
	TT_CHECK(be.i->host_memory == 1, "the CPU backend's memory is the host's");
	struct tk_backend_i renamed = *be.i;
	renamed.name = "host-but-not-cpu";
	other = be;
	other.i = &renamed;
	TT_REQUIRE(!tk_qweight_quantize4(&q, x, 64, 64, TK_QK_NF4, 64, 0, 1, &d), "%s", d.msg);
	void *data = q.data;
	TT_CHECK(!tk_qweight_to_backend(&q, &other, &d) && q.data == data &&
			 !tk_qweight_backend(&q), "moved into host memory: %s", d.msg);
	renamed.host_memory = 0;
	TT_CHECK(!tk_qweight_to_backend(&q, &other, &d) && q.data != data &&
			 tk_qweight_backend(&q) == &other, "not moved into a device's memory: %s",
		 d.msg);
	tk_qweight_free(&q);
	tk_backend_free(&be);
}

int main(void)
{
	TT_RUN(test_cpu);
	TT_RUN(test_auto);
	TT_RUN(test_refusals);
	TT_RUN(test_host_memory);
	return tt_done();
}

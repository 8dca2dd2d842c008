/* test-device.c - device selection and description, with and without CUDA. */
#include "compute/device.h"
#include "tt.h"

static void test_cpu_always_there(void)
{
	struct tk_device dev;
	struct tk_diag d;
	TT_REQUIRE(tk_device_parse("cpu", &dev, NULL, &d) == 0, "%s", d.msg);
	TT_CHECK(dev.kind == TK_DEVICE_CPU, "kind %d", dev.kind);
	struct tk_device_info info;
	TT_REQUIRE(tk_device_info(dev, &info, &d) == 0, "%s", d.msg);
	TT_CHECK(info.total_mem > 0 && info.multiprocessors > 0, "mem %zu cores %d",
		 info.total_mem, info.multiprocessors);
}

static void test_bad_specs(void)
{
	struct tk_device dev;
	struct tk_diag d;
	const char *bad[] = { "gpu", "cuda:", "cuda:x", "cuda:-1", "cudax", "", "cpu:0" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = tk_device_parse(bad[i], &dev, NULL, &d);
		TT_CHECK(rc == TK_E_INVAL, "'%s' gave %d", bad[i], rc);
		TT_CHECK(strstr(d.msg, "unknown device"), "'%s': %s", bad[i], d.msg);
	}
}

/* On a machine without a GPU (every machine this project has), a CUDA build
 * must report zero devices, resolve "auto" to the CPU with fell_back set,
 * and refuse "cuda" with a message instead of crashing. */
static void test_cuda_absent_fails_cleanly(void)
{
	struct tk_device dev;
	struct tk_diag d;
	int n = -1, fell = -1;
	int rc = tk_device_cuda_count(&n, &d);
	if (!tk_device_cuda_built()) {
		TT_CHECK(rc == TK_E_UNSUPPORTED, "rc %d", rc);
		TT_CHECK(strstr(d.msg, "no CUDA support"), "%s", d.msg);
		TT_CHECK(tk_device_parse("cuda", &dev, NULL, &d) == TK_E_UNSUPPORTED, "cuda");
		TT_CHECK(tk_device_parse("auto", &dev, &fell, &d) == 0 &&
				 dev.kind == TK_DEVICE_CPU && fell == 0, "auto");
		return;
	}
	TT_REQUIRE(rc == 0, "count failed: %s", d.msg);
	if (n > 0)
		TT_SKIP("%d CUDA device(s) present: covered by make test-gpu", n);
	TT_CHECK(n == 0, "n %d", n);
	TT_CHECK(tk_device_parse("auto", &dev, &fell, &d) == 0, "%s", d.msg);
	TT_CHECK(dev.kind == TK_DEVICE_CPU && fell == 1, "kind %d fell %d", dev.kind, fell);
	rc = tk_device_parse("cuda:0", &dev, NULL, &d);
	TT_CHECK(rc == TK_E_DEVICE, "rc %d", rc);
	TT_CHECK(strstr(d.msg, "no CUDA device 0") && strstr(d.msg, "--device cpu"), "%s", d.msg);
	/* Going around the parser: the checked boundary must report, not crash. */
	struct tk_device cuda = { TK_DEVICE_CUDA, 0 };
	struct tk_device_info info;
	rc = tk_device_info(cuda, &info, &d);
	TT_CHECK(rc == TK_E_DEVICE, "info rc %d", rc);
	TT_CHECK(strstr(d.msg, "device.cu:") && strstr(d.msg, "cudaGetDeviceProperties"),
		 "message: %s", d.msg);
}

/* make test-gpu sets TK_REQUIRE_GPU=1: then a CUDA device must be there,
 * picked by "auto" and described. */
static void test_cuda_present(void)
{
	if (!getenv("TK_REQUIRE_GPU"))
		TT_SKIP("needs a GPU (make test-gpu)");
	struct tk_device dev;
	struct tk_diag d;
	int fell = 0;
	TT_REQUIRE(tk_device_cuda_built(), "this build has no CUDA support");
	TT_REQUIRE(tk_device_parse("auto", &dev, &fell, &d) == 0, "%s", d.msg);
	TT_REQUIRE(dev.kind == TK_DEVICE_CUDA && !fell, "auto did not pick CUDA");
	struct tk_device_info info;
	TT_REQUIRE(tk_device_info(dev, &info, &d) == 0, "%s", d.msg);
	printf("# cuda:%d %s, sm_%d%d, %zu MiB\n", dev.index, info.name, info.cc_major,
	       info.cc_minor, info.total_mem >> 20);
	TT_CHECK(info.total_mem > 0 && info.multiprocessors > 0, "mem %zu SMs %d",
		 info.total_mem, info.multiprocessors);
}

int main(void)
{
	TT_RUN(test_cpu_always_there);
	TT_RUN(test_bad_specs);
	TT_RUN(test_cuda_absent_fails_cleanly);
	TT_RUN(test_cuda_present);
	return tt_done();
}

/* test-cuda-mem.c - the CUDA backend's memory accounting and limit
 * (mem_info, TK_DEVICE_MEMORY_LIMIT), and the training plan against its
 * measured peak.  SKIP without a GPU.
 *
 * Unverified: written without a GPU; the expectations are the contract of
 * lib/compute/backend.h (struct tk_mem_info), not observed values.
 */
#include "gpu.h"

#include <cjson/cJSON.h>

#include "model/memplan.h"
#include "train/train.h"
#include "train-args.h"

/* After NEED_GPU: these checks are of the CUDA backend (TK_GPU_DUT=cpu
 * skips them). */
#define NEED_CUDA()                                                        \
	do {                                                               \
		if (strcmp(gpu.i->name, "cuda"))                           \
			TT_SKIP("CUDA-only checks (the device under test is %s)", \
				gpu.i->name);                              \
	} while (0)

/* alloc and free move in_use by the bytes asked; the peak stays; the
 * device's own use is known. */
static void test_accounting(void)
{
	NEED_GPU();
	NEED_CUDA();
	struct tk_mem_info m0, m1, m2;
	TT_REQUIRE(!tk_backend_mem_info(&gpu, &m0), "mem_info");
	void *a = tk_backend_alloc(&gpu, (size_t)3 << 20);
	TT_REQUIRE(a, "alloc of 3 MiB");
	tk_backend_mem_info(&gpu, &m1);
	tk_backend_free_mem(&gpu, a);
	tk_backend_mem_info(&gpu, &m2);
	TT_CHECK(m1.in_use == m0.in_use + ((size_t)3 << 20), "in_use %zu -> %zu", m0.in_use,
		 m1.in_use);
	TT_CHECK(m2.in_use == m0.in_use, "after free %zu, before %zu", m2.in_use, m0.in_use);
	TT_CHECK(m2.peak >= m1.in_use, "peak %zu below %zu", m2.peak, m1.in_use);
	TT_CHECK(m1.dev_total > 0 && m1.dev_used > 0 && m1.dev_used <= m1.dev_total,
		 "dev_used %zu dev_total %zu", m1.dev_used, m1.dev_total);
	TT_CHECK(m1.limit > 0 && m1.limit <= m1.dev_total,
		 "the default limit (free memory at init) %zu, total %zu", m1.limit, m1.dev_total);
	/* many blocks freed in another order: the size table stays right */
	void *p[1000];
	for (int i = 0; i < 1000; i++)
		p[i] = tk_backend_alloc(&gpu, (size_t)(i + 1) * 256);
	for (int i = 0; i < 1000; i += 2)
		tk_backend_free_mem(&gpu, p[i]);
	for (int i = 999; i > 0; i -= 2)
		tk_backend_free_mem(&gpu, p[i]);
	tk_backend_mem_info(&gpu, &m1);
	TT_CHECK(m1.in_use == m0.in_use, "after 1000 allocs and frees %zu, before %zu",
		 m1.in_use, m0.in_use);
}

/* A backend started under TK_DEVICE_MEMORY_LIMIT refuses beyond it. */
static void test_limit(void)
{
	NEED_GPU();
	NEED_CUDA();
	struct tk_backend b;
	struct tk_diag d;
	struct tk_mem_info mi;
	setenv("TK_DEVICE_MEMORY_LIMIT", "4M", 1);
	int rc = tk_backend_cuda_init(&b, 0, 0, 1, &d);
	unsetenv("TK_DEVICE_MEMORY_LIMIT");
	TT_REQUIRE(!rc, "%s", d.msg);
	void *x = tk_backend_alloc(&b, (size_t)3 << 20);
	void *y = tk_backend_alloc(&b, (size_t)2 << 20);
	tk_backend_mem_info(&b, &mi);
	TT_CHECK(x && !y, "3 MiB fit under 4M, 2 MiB more do not");
	TT_CHECK(mi.limit == (size_t)4 << 20, "limit %zu", mi.limit);
	tk_backend_free_mem(&b, x);
	tk_backend_free(&b);
	setenv("TK_DEVICE_MEMORY_LIMIT", "4 MB", 1);
	rc = tk_backend_cuda_init(&b, 0, 0, 1, &d);
	unsetenv("TK_DEVICE_MEMORY_LIMIT");
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "TK_DEVICE_MEMORY_LIMIT"), "rc %d: %s", rc,
		 d.msg);
}

static uint64_t planned;

static void on_event(void *ctx, const struct tk_train_event *ev)
{
	(void)ctx;
	if (ev->kind == TK_TRAIN_EV_START)
		planned = ev->mem_planned;
}

/* Full fine-tuning of the train fixture on the GPU: the backend's peak is
 * at most the plan.  The plan leaves out the norm and reduction kernels'
 * scratch (kernels/backend-cuda.cu), counted in the peak: 10% is allowed
 * above the plan for it (unverified). */
static void test_plan(void)
{
	NEED_GPU();
	NEED_CUDA();
	struct tk_train_opts o;
	struct tk_diag d;
	struct tk_mem_info mi;
	struct tk_backend b; /* a fresh one: its peak is this run's */
	cJSON *hold = NULL;
	char out[1024];
	TT_REQUIRE(!tk_backend_cuda_init(&b, 0, 0, 1, &d), "%s", d.msg);
	if (tt_train_args(&o, "train/train-args.json", &b, &hold)) {
		tk_backend_free(&b);
		TT_REQUIRE(0, "train-args");
	}
	snprintf(out, sizeof(out), "%s/plan", tt_tmpdir());
	o.max_steps = 3;
	o.eval_steps = 2;
	o.output_dir = out;
	o.force = 1;
	o.on_event = on_event;
	struct tk_mem_info m0;
	tk_backend_mem_info(&b, &m0);
	int rc = tk_train_run(&o, NULL, &d);
	cJSON_Delete(hold);
	tk_backend_mem_info(&b, &mi);
	tk_backend_free(&b);
	TT_REQUIRE(!rc, "%s", d.msg);
	printf("# planned %llu bytes, peak %zu (before the run %zu in use)\n",
	       (unsigned long long)planned, mi.peak, m0.in_use);
	TT_CHECK(planned > 0, "no plan reported");
	TT_CHECK(mi.peak - m0.in_use <= planned + planned / 10, "peak %zu above the plan %llu",
		 mi.peak - m0.in_use, (unsigned long long)planned);
}

int main(void)
{
	gpu_setup();
	TT_RUN(test_accounting);
	TT_RUN(test_limit);
	TT_RUN(test_plan);
	gpu_teardown();
	return tt_done();
}

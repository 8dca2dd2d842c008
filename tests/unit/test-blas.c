/* test-blas.c - lib/compute/blas.c: the kernel chosen from the CPU's
 * features, the library loaded with it, and its GEMM/GEMV against a plain
 * double-precision loop.  (The refusals of TK_CPU_KERNEL are CLI cases:
 * tests/cli/all/cpu-kernel.sh.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compute/blas.h"
#include "compute/cpu.h"
#include "tt.h"

static void test_choice(void)
{
	const struct tk_blas_kernel *best = tk_blas_best_kernel();
#if defined(__x86_64__)
	TT_REQUIRE(best, "no kernel for this x86-64 CPU");
	TT_CHECK(best->cpu_has(), "%s", best->name);
	/* every x86-64 CPU has SSE3 (Prescott) */
	const struct tk_blas_kernel *k = tk_blas_kernels;
	while (k[1].name)
		k++;
	TT_CHECK(!strcmp(k->name, "prescott") && k->cpu_has(), "%s", k->name);
	/* a kernel above the best is one this CPU cannot run, except Zen,
	 * which is for AMD only and ranks under the AVX-512 ones */
	for (k = tk_blas_kernels; k != best; k++)
		TT_CHECK(!k->cpu_has(), "%s runs here but %s was chosen", k->name, best->name);
#endif
	const char *cpu = tk_cpu_describe();
	TT_CHECK(strchr(cpu, '[') && strchr(cpu, ']'), "%s", cpu);
}

static void test_loaded(void)
{
	struct tk_diag d;
	TT_REQUIRE(tk_blas_init(&d) == 0, "%s", d.msg);
	const char *want = getenv("OPENBLAS_CORETYPE");
	const char *asked = getenv("TK_CPU_KERNEL");
	const char *got = tk_blas_kernel_name();
	if (want && want[0])
		TT_CHECK(strstr(tk_blas_describe(), "set by the user"), "%s", tk_blas_describe());
	else if (asked && asked[0] && strcmp(asked, "auto"))
		TT_CHECK(!strcasecmp(got, asked), "TK_CPU_KERNEL=%s, OpenBLAS runs %s", asked, got);
	else if (tk_blas_best_kernel())
		TT_CHECK(!strcmp(got, tk_blas_best_kernel()->coretype), "best %s, OpenBLAS runs %s",
			 tk_blas_best_kernel()->coretype, got);
	/* the choice is made for OpenBLAS's start only */
	TT_CHECK(!want || !getenv("OPENBLAS_CORETYPE") || !strcmp(getenv("OPENBLAS_CORETYPE"), want),
		 "OPENBLAS_CORETYPE changed");
	if (!want)
		TT_CHECK(!getenv("OPENBLAS_CORETYPE"), "OPENBLAS_CORETYPE left set");
	printf("info %s; %s\n", tk_blas_describe(), tk_cpu_describe());
}

/* C = A B^T with odd sizes (tails in every kernel) against doubles, held
 * to the classic bound of a k-term fp32 dot product in any summation
 * order: |error| <= k u sum|a_l b_l|, u = 2^-24 (Higham, 3.1). */
static void test_gemm(void)
{
	struct tk_diag d;
	TT_REQUIRE(tk_blas_init(&d) == 0, "%s", d.msg);
	const int m = 37, n = 29, k = 203;
	float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * n * k);
	float *c = malloc(sizeof(float) * m * n), *y = malloc(sizeof(float) * n);
	TT_REQUIRE(a && b && c && y, "out of memory");
	for (int i = 0; i < m * k; i++)
		a[i] = (float)((i * 7919 % 1000) - 500) / 500.0f;
	for (int i = 0; i < n * k; i++)
		b[i] = (float)((i * 104729 % 1000) - 500) / 500.0f;
	tk_sgemm(CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
	tk_sgemv(n, k, 1.0f, b, k, a, 1, 0.0f, y, 1); /* row 0 of C again */
	double worst = 0; /* error / bound */
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double s = 0, mag = 0;
			for (int l = 0; l < k; l++) {
				s += (double)a[i * k + l] * b[j * k + l];
				mag += fabs((double)a[i * k + l] * b[j * k + l]);
			}
			double bound = k * 0x1p-24 * mag;
			worst = fmax(worst, fabs(s - c[i * n + j]) / bound);
			if (i == 0)
				worst = fmax(worst, fabs(s - y[j]) / bound);
		}
	TT_CHECK(worst <= 1.0, "GEMM/GEMV error %.3g times the bound", worst);
	printf("info GEMM/GEMV error at most %.3g of the bound\n", worst);
	free(a);
	free(b);
	free(c);
	free(y);
}

int main(void)
{
	TT_RUN(test_choice);
	TT_RUN(test_loaded);
	TT_RUN(test_gemm);
	return tt_done();
}

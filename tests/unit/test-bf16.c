/* test-bf16.c - lib/compute/bf16.c: the bf16 path chosen from the CPU's
 * features or forced by TK_BF16, and oneDNN's bf16 GEMM (the hw path)
 * against a double-precision product of the same bf16 operands.  On a CPU
 * without AVX512_BF16 or AMX oneDNN converts the operands to fp32 itself,
 * so the GEMM runs (and is checked) here too; its speed is not. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/math-common.h"
#include "compute/bf16.h"
#include "compute/cpu.h"
#include "tt.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float frand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Sets TK_BF16 (NULL: unset) and returns the value it had (static copy). */
static const char *set_path(const char *v)
{
	static char old[64];
	const char *o = getenv("TK_BF16");
	snprintf(old, sizeof(old), "%s", o ? o : "");
	if (v)
		setenv("TK_BF16", v, 1);
	else
		unsetenv("TK_BF16");
	return o ? old : NULL;
}

static void test_choice(void)
{
	const char *was = set_path(NULL);
	const struct tk_cpu_features *f = tk_cpu_features();
	int hw = f->avx512bf16 || f->amx;
	TT_CHECK(tk_bf16_cpu_has() == hw, "tk_bf16_cpu_has %d, cpuid %d", tk_bf16_cpu_has(), hw);
	TT_CHECK(tk_bf16_path() == (hw ? TK_BF16_HW : TK_BF16_EMULATE), "auto: %s",
		 tk_bf16_path_name(tk_bf16_path()));
	set_path("auto");
	TT_CHECK(tk_bf16_path() == (hw ? TK_BF16_HW : TK_BF16_EMULATE), "TK_BF16=auto");
	TT_CHECK(strstr(tk_bf16_describe(), "chosen from the CPU's features"), "%s",
		 tk_bf16_describe());
	set_path("emulate");
	struct tk_diag d = { 0 };
	TT_CHECK(tk_bf16_path() == TK_BF16_EMULATE && tk_bf16_check(&d) == 0, "emulate: %s",
		 d.msg);
	TT_CHECK(!strncmp(tk_bf16_describe(), "emulate: ", 9) &&
		 strstr(tk_bf16_describe(), "forced by TK_BF16"), "%s", tk_bf16_describe());
	set_path("HW"); /* names are case-blind, as TK_CPU_KERNEL's */
	TT_CHECK(tk_bf16_path() == TK_BF16_HW, "TK_BF16=HW");
	set_path("fast");
	TT_CHECK(tk_bf16_check(&d) == TK_E_INVAL && strstr(d.msg, "TK_BF16: no path 'fast'"),
		 "%s", d.msg);
	TT_CHECK(strstr(tk_bf16_describe(), "no path 'fast'"), "%s", tk_bf16_describe());
	set_path(was);
}

/* C = alpha op(A) op(B) + beta C0 through tk_bf16_gemm, padded strides,
 * against the same in double: the products of bf16 operands are exact in
 * fp32 (8-bit significands), so only the fp32 sums err, by at most
 * (k + 2) 2^-24 sum|terms| in any order (Higham, 3.1). */
static void one(int ta, int tb, int m, int n, int k, float alpha, float beta, int threads)
{
	int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
	int lda = ac + 3, ldb = bc + 1, ldc = n + 2;
	size_t sa = (size_t)ar * lda, sb = (size_t)br * ldb, sc = (size_t)m * ldc;
	unsigned short *a = malloc(2 * sa), *b = malloc(2 * sb);
	float *c = malloc(4 * sc), *c0 = malloc(4 * sc);
	TT_REQUIRE(a && b && c && c0, "out of memory");
	for (size_t i = 0; i < sa; i++)
		a[i] = tk_bf16_code(frand());
	for (size_t i = 0; i < sb; i++)
		b[i] = tk_bf16_code(frand());
	for (size_t i = 0; i < sc; i++)
		c[i] = c0[i] = frand();
	struct tk_diag d = { 0 };
	TT_REQUIRE(tk_bf16_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads,
				&d) == 0, "%s", d.msg);
	double worst = 0;
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double s = 0, mag = 0;
			for (int p = 0; p < k; p++) {
				double x = tk_bf16_value(ta ? a[(size_t)p * lda + i] :
							      a[(size_t)i * lda + p]);
				double y = tk_bf16_value(tb ? b[(size_t)j * ldb + p] :
							      b[(size_t)p * ldb + j]);
				s += x * y;
				mag += fabs(x * y);
			}
			double c0v = c0[(size_t)i * ldc + j];
			double ref = alpha * s + beta * c0v;
			double bound = (fabs(alpha) * mag + fabs(beta * c0v)) * (k + 2) * 0x1p-24;
			double e = fabs(c[(size_t)i * ldc + j] - ref) / bound;
			worst = e > worst ? e : worst;
		}
	TT_CHECK(worst <= 1.0, "ta %d tb %d %dx%dx%d alpha %g beta %g: error %.3g of the bound",
		 ta, tb, m, n, k, alpha, beta, worst);
	for (int i = 0; i < m; i++) /* C's padding is not written */
		TT_CHECK(c[(size_t)i * ldc + n] == c0[(size_t)i * ldc + n], "C padding written");
	free(a), free(b), free(c), free(c0);
}

static void test_gemm(void)
{
	const char *was = set_path("hw");
	struct tk_diag d = { 0 };
	int rc = tk_bf16_check(&d);
	set_path(was);
	if (rc == TK_E_INVAL) /* oneDNN 2.x: no bf16 matmul below AVX-512 */
		TT_SKIP("%s", d.msg);
	TT_REQUIRE(rc == 0, "the hw path cannot load: %s", d.msg);
	for (int t = 0; t < 4; t++) {
		one(t & 1, t >> 1, 37, 29, 203, 1.0f, 0.0f, 1);
		one(t & 1, t >> 1, 130, 97, 64, 0.5f, 0.25f, 2);
	}
	one(0, 1, 1, 300, 257, 1.0f, 1.0f, 2); /* one row: a decode step */
	one(1, 0, 64, 48, 1, -2.0f, 1.0f, 1);  /* k = 1 */
	printf("info %s\n", (set_path("hw"), tk_bf16_describe()));
	set_path(was);
}

int main(void)
{
	TT_RUN(test_choice);
	TT_RUN(test_gemm);
	return tt_done();
}

/* test-cpu.c - lib/compute/cpu.c: the features are consistent with one
 * another and with what /proc/cpuinfo says, the level follows them, and
 * TK_CPU_ISA lowers it, or is refused when unknown or above the CPU.
 * (The refusal at a tool's start is a CLI case: tests/cli/all/cpu-isa.sh.) */
#include <stdlib.h>
#include <string.h>

#include "compute/cpu.h"
#include "tt.h"

/* Whether /proc/cpuinfo's first flags line lists flag ("" when none). */
static int cpuinfo_has(const char *flag)
{
	static char line[8192];
	if (!line[0]) {
		FILE *f = fopen("/proc/cpuinfo", "r");
		if (!f)
			return -1;
		while (fgets(line + 1, sizeof(line) - 2, f))
			if (!strncmp(line + 1, "flags", 5))
				break;
		fclose(f);
		line[0] = ' ';
		line[strcspn(line, "\n")] = ' ';
	}
	char want[64];
	snprintf(want, sizeof(want), " %s ", flag);
	return strstr(line, want) != NULL;
}

static void test_features(void)
{
	const struct tk_cpu_features *f = tk_cpu_features();
	TT_CHECK(f == tk_cpu_features(), "read once");
	TT_CHECK(!f->avx512 || (f->avx2 && f->fma), "AVX-512 without AVX2/FMA");
	TT_CHECK(!f->avx2 || f->avx, "AVX2 without AVX");
	TT_CHECK(!f->avx512bf16 || f->avx512, "BF16 without AVX-512");
#if defined(__x86_64__)
	/* Linux lists a flag only when the OS supports it too */
	if (cpuinfo_has("sse3") >= 0) {
		TT_CHECK(f->avx2 == cpuinfo_has("avx2"), "avx2 %d", f->avx2);
		TT_CHECK(f->fma == cpuinfo_has("fma"), "fma %d", f->fma);
		int a512 = cpuinfo_has("avx512f") && cpuinfo_has("avx512cd") &&
			   cpuinfo_has("avx512bw") && cpuinfo_has("avx512dq") &&
			   cpuinfo_has("avx512vl");
		TT_CHECK(f->avx512 == a512, "avx512 %d, cpuinfo %d", f->avx512, a512);
	}
#endif
	printf("info %s\n", tk_cpu_describe());
}

static void test_levels(void)
{
	const struct tk_cpu_features *f = tk_cpu_features();
	enum tk_cpu_isa best = tk_cpu_isa_best();
	char *saved = tt_env_save("TK_CPU_ISA");
#if defined(__x86_64__) && defined(__GNUC__)
	TT_CHECK(best == (f->avx512 ? TK_CPU_ISA_AVX512 :
			  f->avx2 && f->fma ? TK_CPU_ISA_AVX2 : TK_CPU_ISA_GENERIC),
		 "best %s", tk_cpu_isa_name(best));
#endif
	unsetenv("TK_CPU_ISA");
	TT_CHECK(tk_cpu_isa() == best && tk_cpu_isa_check(NULL) == 0, "unset: the best");
	setenv("TK_CPU_ISA", "auto", 1);
	TT_CHECK(tk_cpu_isa() == best && tk_cpu_isa_check(NULL) == 0, "auto: the best");
	for (int i = 0; i <= (int)TK_CPU_ISA_AVX512; i++) {
		struct tk_diag d;
		setenv("TK_CPU_ISA", tk_cpu_isa_name((enum tk_cpu_isa)i), 1);
		if (i <= (int)best) {
			TT_CHECK(tk_cpu_isa() == (enum tk_cpu_isa)i, "%s", tk_cpu_isa_name(i));
			TT_CHECK(tk_cpu_isa_check(&d) == 0, "%s refused", tk_cpu_isa_name(i));
		} else {
			TT_CHECK(tk_cpu_isa_check(&d) == TK_E_INVAL, "%s above the CPU accepted",
				 tk_cpu_isa_name(i));
			TT_CHECK(strstr(d.msg, "cannot run"), "%s", d.msg);
		}
	}
	struct tk_diag d;
	setenv("TK_CPU_ISA", "sse9", 1);
	TT_CHECK(tk_cpu_isa_check(&d) == TK_E_INVAL && strstr(d.msg, "'sse9'"), "unknown accepted");
	tt_env_restore("TK_CPU_ISA", saved);
}

int main(void)
{
	TT_RUN(test_features);
	TT_RUN(test_levels);
	return tt_done();
}

/* cpu.c - see cpu.h. */
#include "compute/cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static struct tk_cpu_features feat;

static void read_features(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, dx;
	struct tk_cpu_features f = { 0 };
	if (!__get_cpuid(0, &a, &b, &c, &dx))
		return;
	unsigned max = a;
	/* "AuthenticAMD" or Hygon's "HygonGenuine": b = "Auth"/"Hygo" */
	f.amd = b == 0x68747541 || b == 0x6f677948;
	__get_cpuid(1, &a, &b, &c, &dx);
	f.sse3 = c & 1;
	f.sse42 = (c >> 20) & 1;
	int osxsave = (c >> 27) & 1;
	unsigned long long xcr0 = 0;
	if (osxsave) {
		unsigned lo, hi;
		__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
		xcr0 = ((unsigned long long)hi << 32) | lo;
	}
	int os_avx = (xcr0 & 0x6) == 0x6;         /* XMM and YMM state */
	int os_avx512 = (xcr0 & 0xe6) == 0xe6;    /* and opmask, ZMM */
	int os_amx = (xcr0 & 0x60000) == 0x60000; /* tile config and data */
	f.avx = os_avx && ((c >> 28) & 1);
	f.fma = f.avx && ((c >> 12) & 1);
	f.f16c = f.avx && ((c >> 29) & 1);
	if (max >= 7) {
		__cpuid_count(7, 0, a, b, c, dx);
		f.avx2 = f.avx && ((b >> 5) & 1);
		/* F, DQ, CD, BW, VL: what OpenBLAS's SkylakeX kernels and tk's
		 * own AVX-512 loops use */
		unsigned need = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
		f.avx512 = os_avx512 && f.avx2 && f.fma && (b & need) == need;
		f.avx512vbmi = f.avx512 && ((c >> 1) & 1);
		f.avx512vnni = f.avx512 && ((c >> 11) & 1);
		f.amx = os_amx && ((dx >> 22) & 1) && ((dx >> 24) & 1);
		unsigned a1, b1, c1, d1;
		__cpuid_count(7, 1, a1, b1, c1, d1);
		f.avx512bf16 = f.avx512 && ((a1 >> 5) & 1);
	}
	feat = f;
#endif
}

const struct tk_cpu_features *tk_cpu_features(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, read_features);
	return &feat;
}

enum tk_cpu_isa tk_cpu_isa_best(void)
{
	const struct tk_cpu_features *f = tk_cpu_features();
#if defined(__x86_64__) && defined(__GNUC__)
	if (f->avx512)
		return TK_CPU_ISA_AVX512;
	if (f->avx2 && f->fma)
		return TK_CPU_ISA_AVX2;
#else
	(void)f; /* the AVX loops are built for x86-64 with GCC or clang only */
#endif
	return TK_CPU_ISA_GENERIC;
}

static const char *const isa_names[] = { "generic", "avx2", "avx512" };

const char *tk_cpu_isa_name(enum tk_cpu_isa isa)
{
	return (unsigned)isa < 3 ? isa_names[isa] : "?";
}

/* The level a name gives: 0..2, -1 unset or auto, -2 unknown. */
static int isa_level(const char *want)
{
	if (!want || !want[0] || !strcasecmp(want, "auto"))
		return -1;
	for (int i = 0; i < 3; i++)
		if (!strcasecmp(want, isa_names[i]))
			return i;
	return -2;
}

enum tk_cpu_isa tk_cpu_isa(void)
{
	int best = (int)tk_cpu_isa_best(), want = isa_level(getenv("TK_CPU_ISA"));
	return (enum tk_cpu_isa)(want >= 0 && want <= best ? want : best);
}

int tk_cpu_isa_check_name(const char *what, const char *name, struct tk_diag *d)
{
	int best = (int)tk_cpu_isa_best(), want = isa_level(name);
	if (want == -2)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "%s: no level '%s' (use auto, avx512, avx2, generic)", what, name);
	if (want > best)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "%s: this CPU cannot run %s (the best here is %s)", what,
				   isa_names[want], isa_names[best]);
	return 0;
}

int tk_cpu_isa_check(struct tk_diag *d)
{
	return tk_cpu_isa_check_name("TK_CPU_ISA", getenv("TK_CPU_ISA"), d);
}

static char cpu_buf[512];

static void describe_cpu(void)
{
	char model[256] = "an unknown CPU";
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
				const char *p = strchr(line, ':') + 1;
				while (*p == ' ' || *p == '\t')
					p++;
				snprintf(model, sizeof(model), "%.*s", (int)strcspn(p, "\n"), p);
				break;
			}
		fclose(f);
	}
	const struct tk_cpu_features *c = tk_cpu_features();
	const struct {
		const char *name;
		int on;
	} fl[] = { { "sse4.2", c->sse42 },	   { "avx", c->avx },
		   { "fma", c->fma },		   { "avx2", c->avx2 },
		   { "avx512", c->avx512 },	   { "avx512_vnni", c->avx512vnni },
		   { "avx512_bf16", c->avx512bf16 }, { "amx", c->amx } };
	char have[160] = "", lack[160] = "";
	for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
		char *to = fl[i].on ? have : lack;
		size_t n = strlen(to);
		snprintf(to + n, sizeof(have) - n, "%s%s", n ? " " : "", fl[i].name);
	}
	snprintf(cpu_buf, sizeof(cpu_buf), "%s [%s%s%s]", model, have[0] ? have : "no SIMD above SSE3",
		 lack[0] ? "; no " : "", lack);
}

const char *tk_cpu_describe(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, describe_cpu);
	return cpu_buf;
}

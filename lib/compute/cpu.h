/* cpu.h - what this CPU runs: its instruction sets, read once with cpuid
 * and checked against what the OS saves on a context switch (XCR0), and the
 * instruction-set level the CPU backend's own loops use.
 *
 * Every choice of a kernel by the CPU's features goes through here: the
 * GEMM library's kernel (blas.c) and the CPU backend's hand-written loops
 * (backend-cpu.c: attention tiles, AdamW, the fused 4-bit/int8 and fp32
 * matrix-vector products).  A feature counts only when both the CPU reports
 * it and the OS has enabled its register state: a CPU with AVX-512 under an
 * OS (or hypervisor) that does not save ZMM registers runs AVX2.
 *
 * The level: TK_CPU_ISA_AVX512 (AVX-512 F/CD/BW/DQ/VL), TK_CPU_ISA_AVX2
 * (AVX2 and FMA) or TK_CPU_ISA_GENERIC (portable C that the compiler
 * vectorizes for plain x86-64).  The best the CPU has, or the lower one the
 * environment variable TK_CPU_ISA (avx512, avx2, generic; auto or unset:
 * the best) asks for; one the CPU lacks, or an unknown name, is refused by
 * tk_cpu_isa_check (the CPU backend's init calls it), never silently
 * lowered.
 */
#ifndef TK_CPU_H
#define TK_CPU_H

#include "base/tk.h"

struct tk_cpu_features {
	int amd;        /* AuthenticAMD or HygonGenuine */
	int sse3, sse42;
	int avx, fma, avx2;    /* with the OS saving YMM state */
	int f16c;              /* fp16 <-> fp32 conversions (with YMM state) */
	int avx512;     /* F, CD, BW, DQ and VL, with the OS saving ZMM state */
	int avx512vnni, avx512vbmi, avx512bf16;
	int amx;        /* AMX tiles (and the OS saving them) */
};

/* The features, read on the first call (thread-safe); all zero on a CPU
 * that is not x86. */
const struct tk_cpu_features *tk_cpu_features(void);

enum tk_cpu_isa {
	TK_CPU_ISA_GENERIC = 0,
	TK_CPU_ISA_AVX2 = 1,
	TK_CPU_ISA_AVX512 = 2,
};

/* The best level this CPU (and OS) runs. */
enum tk_cpu_isa tk_cpu_isa_best(void);

/* The level to use now: TK_CPU_ISA's when it names one the CPU runs, else
 * the best.  Reads the environment on each call (tests change it between
 * calls); cheap enough for once per op, not per row. */
enum tk_cpu_isa tk_cpu_isa(void);

/* Checks TK_CPU_ISA: 0 when unset, "auto" or a level this CPU runs;
 * TK_E_INVAL when it names no level or one the CPU lacks (d says which,
 * and what the CPU runs). */
int tk_cpu_isa_check(struct tk_diag *d);

/* The same check of a name given some other way (what: its name, for the
 * message, as "--cpu-isa"); NULL and "" pass as unset. */
int tk_cpu_isa_check_name(const char *what, const char *name, struct tk_diag *d);

/* "avx512", "avx2" or "generic" (static). */
const char *tk_cpu_isa_name(enum tk_cpu_isa isa);

/* One line of the CPU's model name and the instruction sets tk dispatches
 * on ("Intel(R) Xeon(R) ... [avx2 fma avx512 ... ; no avx512_bf16 amx]"). */
const char *tk_cpu_describe(void);

#endif

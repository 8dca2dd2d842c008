/* cli.h - the tool side of the library: messages, exit codes, progress.
 *
 * Everything here writes to stderr on behalf of a tool (tools/tk-*.c); the
 * rest of lib/ never prints.  Messages have one shape:
 *
 *	tk-pack: data/train.jsonl:1042: unterminated string
 *
 * and their control characters are escaped (tk_str_escape), since they
 * quote file names and option values that came from the user.
 */
#ifndef TK_CLI_H
#define TK_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "compute/backend.h"
#include "base/options.h"
#include "base/pace.h"
#include "base/tk.h"
#include "text/chat.h"

enum { TK_EXIT_OK = 0, TK_EXIT_FAIL = 1, TK_EXIT_USAGE = 2 };

/* The program name used in messages; set once by tk_cli_init(argv[0]). */
extern const char *tk_prog;

/* Remembers the program name (basename of argv0) for messages, and
 * arranges that at exit stdout is closed and checked: output that could
 * not be written (--help > /dev/full, a full disk) prints "PROG: write
 * error: REASON" and turns the exit status into 1, as GNU tools do. */
void tk_cli_init(const char *argv0);

/* Flushes stdout now; on a write error prints "PROG: write error: REASON"
 * (once; the check at exit then stays quiet) and returns 1, else 0. */
int tk_cli_check_stdout(void);

/* Prints "PROG: [PATH[:LINE]: ]MSG[: strerror]" for a failed lib call and
 * returns the exit code that goes with err (2 for TK_E_INVAL, else 1).
 * Where d has no message, tk_strerror(err) stands in. */
int tk_cli_fail(int err, const struct tk_diag *d);

/* Prints "PROG: " + the formatted text and returns 1. */
int tk_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "PROG: " + the formatted text, then "Try 'PROG --help'." and
 * returns 2. */
int tk_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --version: "PROG (tk) VERSION", then the build (CUDA and its
 * architectures, MPI, NCCL), the CPU and the instruction sets tk
 * dispatches on, the GEMM library and kernel in use (loading it), and the
 * kernels TK_CPU_KERNEL may pick on this CPU, one per line. */
void tk_cli_version(FILE *out);

/* --cpu-kernel NAME and --cpu-isa NAME, for the tools that compute: the
 * command-line form of TK_CPU_KERNEL and TK_CPU_ISA (and over them).
 * tk_cli_parse checks the names (a bad one is a usage error) and sets the
 * two variables for this process before anything loads the GEMM library;
 * a user's own OPENBLAS_CORETYPE still wins over the kernel. */
extern const char *tk_cli_cpu_kernel, *tk_cli_cpu_isa;
#define TK_OPT_CPU_KERNEL()                                                                 \
	TK_OPT_STR(0, "cpu-kernel", &tk_cli_cpu_kernel, "NAME",                             \
		   "the GEMM library's kernel (TK_CPU_KERNEL): auto, or one --version lists"), \
	TK_OPT_STR(0, "cpu-isa", &tk_cli_cpu_isa, "NAME",                                   \
		   "tk's own loops (TK_CPU_ISA): auto, avx512, avx2 or generic")

/* Parses options; on help (or --version) prints usage (the version) to
 * stdout and returns 0 through *exit_now = 1 (the defaults in the usage
 * are the fields' values before parsing); on a bad option prints the message and sets *exit_now = 1
 * and returns 2.  Otherwise returns 0 with *exit_now = 0. */
int tk_cli_parse(int argc, char **argv, const struct tk_opt *opts,
		 const char *const *usage, const char *about, int *npos, int *exit_now);

/* A status line on stderr, as base/pace.h paces and shapes it: TK_PROGRESS
 * (off, lines, bar, notebook, auto, [MODE:]SECONDS), else a notebook
 * (JPY_PARENT_PID or COLAB_RELEASE_TAG in the environment), a terminal or a
 * plain line.  In lines mode each report is a line "PROG: TEXT"; in bar and
 * notebook modes it is one line redrawn in place, which tk_status_clear()
 * takes away before any other line is printed. */
struct tk_status {
	struct tk_pace pace;
	int enabled;
	int drawn;  /* a redrawn line is on the screen */
	int width;  /* its length, for notebook mode's blanking */
	long shown; /* reports shown so far */
};

/* Sets s up (disabled: it never reports).  An unknown TK_PROGRESS value is
 * reported once, as a warning, and taken as auto. */
void tk_status_init(struct tk_status *s, int enabled);

/* 1 when a report is due now with the share frac of the work done (0..1;
 * negative: unknown). */
int tk_status_due(const struct tk_status *s, double frac);

/* Prints the report (the formatted text), as the mode shows it, and
 * records it (tk_pace_mark with frac). */
void tk_status_show(struct tk_status *s, double frac, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Takes a redrawn line away (bar, notebook); nothing otherwise. */
void tk_status_clear(struct tk_status *s);

/* 1 when reports redraw one line in place (bar, notebook), so that a
 * caller can add what only makes sense there (a bar of #). */
int tk_status_inplace(const struct tk_status *s);

/* Progress of a count on stderr, through a tk_status: a bar in a terminal,
 * "PROG: WHAT DONE[/TOTAL] UNIT (ELAPSEDs, RATE/s)" lines otherwise, and a
 * last line at the end when any was shown.  Quiet when disabled. */
struct tk_progress {
	const char *what;  /* e.g. "tokenizing" */
	const char *unit;  /* e.g. "docs" */
	uint64_t total;    /* 0 if unknown */
	uint64_t done;
	uint64_t shown_done; /* done as last shown */
	double start;
	struct tk_status st;
};

/* --model given a GGUF file (llama.cpp, ollama): when *model names a
 * regular file that starts with the magic "GGUF", imports it as tk-convert
 * does (tk_convert_gguf, f32) into a private temporary directory under
 * $TMPDIR (else /tmp), removed at exit, points *model at the model
 * directory there and prints a note saying so unless quiet.  Returns 0
 * (also when *model is no GGUF, left alone), or what tk_convert_gguf
 * returns, d naming the file. */
int tk_cli_model_gguf(const char **model, int quiet, struct tk_diag *d);

/* The backend of a tool's --device SPEC (NULL: the environment variable
 * TK_DEVICE, else "auto"; tk_backend_init), printing on stderr, unless
 * quiet, the note of an auto that fell back to the CPU because a GPU did
 * not start (a build or machine with no GPU at all falls back silently).  Returns what
 * tk_backend_init returns. */
int tk_cli_backend(struct tk_backend *be, const char *spec, int threads, int quiet,
		   struct tk_diag *d);

void tk_progress_init(struct tk_progress *p, const char *what, const char *unit,
		      uint64_t total, int enabled);
void tk_progress_update(struct tk_progress *p, uint64_t done);
void tk_progress_end(struct tk_progress *p);

/* Monotonic seconds. */
double tk_now(void);

/* What a tool's options and environment add to chat template c: the
 * template kwargs of --chat-template-kwargs JSON (may be NULL), and
 * strftime_now's time from SOURCE_DATE_EPOCH (seconds since 1970, UTC),
 * when set, for renders that do not change with the day.  TK_E_INVAL (d
 * says which) when either is malformed. */
int tk_cli_chat_opts(struct tk_chat *c, const char *kwargs, struct tk_diag *d);

#endif

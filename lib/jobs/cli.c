/* cli.c - see cli.h. */
#include "jobs/cli.h"

#include "compute/bf16.h"
#include "compute/blas.h"
#include "compute/cpu.h"
#include "compute/dist.h"
#include "base/afile.h"
#include "jobs/convert.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *tk_prog = "tk";

static int stdout_reported; /* a failed write to stdout has been reported */

/* Writes "PROG: TEXT\n" to stderr with TEXT's control characters escaped
 * (tk_str_escape), so a file name cannot break the line or reach the
 * terminal as a control sequence. */
static void put_line(const char *text)
{
	char buf[4 * 4096];
	size_t need = tk_str_escape(buf, sizeof(buf), text);
	char *big = need >= sizeof(buf) ? malloc(need + 1) : NULL;
	if (big)
		tk_str_escape(big, need + 1, text);
	fprintf(stderr, "%s: %s\n", tk_prog, big ? big : buf);
	free(big);
}

static void put_vline(const char *fmt, va_list ap)
{
	char text[4096];
	vsnprintf(text, sizeof(text), fmt, ap);
	if (!strncmp(text, "<stdout>:", 9))
		stdout_reported = 1;
	put_line(text);
}

/* At exit: stdout must have reached its file (the close_stdout of GNU
 * tools), else the run failed even if main returned 0. */
static void close_stdout(void)
{
	int prev_fail = ferror(stdout);
	int pending = __fpending(stdout) != 0;
	errno = 0;
	int fail = fclose(stdout) != 0;
	int e = fail ? errno : 0;
	/* EBADF with nothing to write: stdout was closed (>&-) and not used */
	if (!prev_fail && !(fail && (pending || e != EBADF)))
		return;
	if (!stdout_reported) {
		if (e)
			fprintf(stderr, "%s: write error: %s\n", tk_prog, strerror(e));
		else
			fprintf(stderr, "%s: write error\n", tk_prog);
	}
	_exit(TK_EXIT_FAIL);
}

void tk_cli_init(const char *argv0)
{
	const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
	tk_prog = slash ? slash + 1 : (argv0 ? argv0 : "tk");
	static int registered;
	if (!registered)
		registered = atexit(close_stdout) == 0;
}

int tk_cli_check_stdout(void)
{
	errno = 0;
	int e = fflush(stdout) ? errno : 0;
	if (!e && !ferror(stdout))
		return TK_EXIT_OK;
	if (!stdout_reported) {
		if (e)
			fprintf(stderr, "%s: write error: %s\n", tk_prog, strerror(e));
		else
			fprintf(stderr, "%s: write error\n", tk_prog);
	}
	stdout_reported = 1;
	return TK_EXIT_FAIL;
}

int tk_cli_fail(int err, const struct tk_diag *d)
{
	char text[4096];
	int n = 0;
	if (d && d->path[0]) {
		if (!strcmp(d->path, "<stdout>"))
			stdout_reported = 1;
		n = snprintf(text, sizeof(text), "%s", d->path);
		if (d->line >= 0 && n < (int)sizeof(text))
			n += snprintf(text + n, sizeof(text) - n, ":%lld", d->line);
		if (n < (int)sizeof(text))
			n += snprintf(text + n, sizeof(text) - n, ": ");
	}
	if (n < (int)sizeof(text))
		n += snprintf(text + n, sizeof(text) - n, "%s",
			      d && d->msg[0] ? d->msg : tk_strerror(err));
	if (d && d->sys_errno && n < (int)sizeof(text))
		snprintf(text + n, sizeof(text) - n, ": %s", strerror(d->sys_errno));
	put_line(text);
	return err == TK_E_INVAL ? TK_EXIT_USAGE : TK_EXIT_FAIL;
}

int tk_cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	put_vline(fmt, ap);
	va_end(ap);
	return TK_EXIT_FAIL;
}

int tk_cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	put_vline(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", tk_prog);
	return TK_EXIT_USAGE;
}

const char *tk_cli_cpu_kernel, *tk_cli_cpu_isa;

/* --cpu-kernel and --cpu-isa, checked, into the environment that blas.c
 * and cpu.c read. */
static int cpu_opts_apply(struct tk_diag *d)
{
	const struct tk_blas_kernel *k;
	if (tk_cli_cpu_kernel) {
		if (tk_blas_kernel_check("--cpu-kernel", tk_cli_cpu_kernel, &k, d))
			return -1;
		setenv("TK_CPU_KERNEL", tk_cli_cpu_kernel, 1);
	}
	if (tk_cli_cpu_isa) {
		if (tk_cpu_isa_check_name("--cpu-isa", tk_cli_cpu_isa, d))
			return -1;
		setenv("TK_CPU_ISA", tk_cli_cpu_isa, 1);
	}
	return 0;
}

int tk_cli_parse(int argc, char **argv, const struct tk_opt *opts,
		 const char *const *usage, const char *about, int *npos, int *exit_now)
{
	struct tk_diag d;
	/* the help, with the defaults as *_opts_init left them, before the
	 * options ahead of a --help change them */
	char *help = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&help, &len);
	if (f) {
		tk_options_usage(f, usage, about, opts);
		if (fclose(f))
			len = 0;
	}
	int rc = tk_options_parse(argc, argv, opts, npos, &d);
	*exit_now = rc != TK_OPT_DONE;
	if (rc == TK_OPT_SHOW_HELP) {
		/* in pieces under stdout's buffer, as fprintf would: a failed
		 * write leaves them pending, and close_stdout names the error */
		for (size_t at = 0; at < len; at += 1024)
			fwrite(help + at, 1, len - at < 1024 ? len - at : 1024, stdout);
		if (!len) /* out of memory: the help as the fields are now */
			tk_options_usage(stdout, usage, about, opts);
	}
	free(help);
	if (rc == TK_OPT_SHOW_HELP)
		return TK_EXIT_OK;
	if ((rc == TK_OPT_DONE || rc == TK_OPT_SHOW_VERSION) && cpu_opts_apply(&d)) {
		*exit_now = 1;
		return tk_cli_usage_error("%s", d.msg);
	}
	if (rc == TK_OPT_SHOW_VERSION) {
		tk_cli_version(stdout);
		return TK_EXIT_OK;
	}
	if (rc)
		return tk_cli_usage_error("%s", d.msg);
	return TK_EXIT_OK;
}

void tk_cli_version(FILE *out)
{
	fprintf(out, "%s (tk) %s\n", tk_prog, TK_VERSION);
	fprintf(out, "build: CPU");
#ifdef TK_USE_CUDA
#ifdef TK_CUDA_ARCHS
	fprintf(out, ", CUDA (%s)", TK_CUDA_ARCHS);
#else
	fprintf(out, ", CUDA");
#endif
#endif
	if (tk_dist_has_mpi())
		fprintf(out, ", MPI");
	if (tk_dist_has_nccl())
		fprintf(out, ", NCCL");
	fprintf(out, "\ncpu: %s\n", tk_cpu_describe());
	struct tk_diag d;
	if (tk_blas_init(&d))
		fprintf(out, "gemm: %s\n", d.msg);
	else
		fprintf(out, "gemm: %s\n", tk_blas_describe());
	fprintf(out, "kernels this CPU runs (TK_CPU_KERNEL):");
	for (const struct tk_blas_kernel *k = tk_blas_kernels; k->name; k++)
		if (k->cpu_has())
			fprintf(out, " %s", k->name);
	fprintf(out, "\nbf16 (--bf16, TK_BF16): %s", tk_bf16_describe());
	fprintf(out, "\nloops: %s (TK_CPU_ISA:", tk_cpu_isa_name(tk_cpu_isa()));
	for (int i = (int)tk_cpu_isa_best(); i >= 0; i--)
		fprintf(out, " %s", tk_cpu_isa_name((enum tk_cpu_isa)i));
	fprintf(out, ")\n");
}

double tk_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void tk_status_init(struct tk_status *s, int enabled)
{
	static int warned;
	const char *spec = getenv("TK_PROGRESS");
	int notebook = getenv("JPY_PARENT_PID") || getenv("COLAB_RELEASE_TAG");
	memset(s, 0, sizeof(*s));
	s->enabled = enabled;
	if (tk_pace_init(&s->pace, spec, isatty(STDERR_FILENO), notebook, tk_now()) && enabled &&
	    !warned++) {
		char text[256];
		snprintf(text, sizeof(text), "warning: TK_PROGRESS=%.60s: not off, lines, bar, "
			 "notebook, auto or [MODE:]SECONDS; taken as auto", spec);
		put_line(text);
	}
}

int tk_status_due(const struct tk_status *s, double frac)
{
	return s->enabled && tk_pace_due(&s->pace, tk_now(), frac);
}

int tk_status_inplace(const struct tk_status *s)
{
	return s->pace.mode == TK_PACE_BAR || s->pace.mode == TK_PACE_NOTEBOOK;
}

void tk_status_show(struct tk_status *s, double frac, const char *fmt, ...)
{
	char raw[512], text[4 * sizeof(raw)];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* a tensor or file name in it must not reach the terminal as a
	 * control sequence, as in every message (put_line) */
	n = (int)tk_str_escape(text, sizeof(text), raw);
	if (n >= (int)sizeof(text))
		n = sizeof(text) - 1;
	tk_pace_mark(&s->pace, tk_now(), frac);
	if (s->pace.mode == TK_PACE_OFF)
		return;
	s->shown++;
	switch (s->pace.mode) {
	case TK_PACE_OFF:
		return;
	case TK_PACE_LINES:
		fprintf(stderr, "%s: %s\n", tk_prog, text);
		return;
	case TK_PACE_BAR:
		fprintf(stderr, "\r%s\033[K", text);
		break;
	case TK_PACE_NOTEBOOK:
		/* Jupyter keeps what follows the last \r of a line; a terminal
		 * shown the same stream needs the old tail blanked */
		fprintf(stderr, "\r%s%*s", text, s->width > n ? s->width - n : 0, "");
		break;
	}
	fflush(stderr);
	s->drawn = 1;
	s->width = n;
}

void tk_status_clear(struct tk_status *s)
{
	if (!s->drawn)
		return;
	if (s->pace.mode == TK_PACE_BAR)
		fputs("\r\033[K", stderr);
	else
		fprintf(stderr, "\r%*s\r", s->width, "");
	s->drawn = 0;
	s->width = 0;
}

void tk_progress_init(struct tk_progress *p, const char *what, const char *unit,
		      uint64_t total, int enabled)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->unit = unit;
	p->total = total;
	p->start = tk_now();
	tk_status_init(&p->st, enabled);
}

static void progress_draw(struct tk_progress *p, int final)
{
	double el = tk_now() - p->start;
	double rate = el > 0 ? p->done / el : 0;
	double frac = p->total ? (double)p->done / (double)p->total : -1;
	unsigned long long done = p->done, total = p->total;
	p->shown_done = p->done;
	if (tk_status_inplace(&p->st)) {
		if (p->total) {
			int width = 30, fill = (int)(width * frac);
			if (fill > width)
				fill = width;
			tk_status_show(&p->st, frac, "%s [%.*s%*s] %llu/%llu %s %.0f/s", p->what,
				       fill, "##############################", width - fill, "",
				       done, total, p->unit, rate);
		} else {
			tk_status_show(&p->st, frac, "%s %llu %s %.0f/s", p->what, done, p->unit,
				       rate);
		}
		if (final) {
			fputc('\n', stderr);
			p->st.drawn = 0;
		}
	} else if (p->total) {
		tk_status_show(&p->st, frac, "%s %llu/%llu %s (%.1fs, %.0f/s)", p->what, done,
			       total, p->unit, el, rate);
	} else {
		tk_status_show(&p->st, frac, "%s %llu %s (%.1fs, %.0f/s)", p->what, done, p->unit,
			       el, rate);
	}
}

void tk_progress_update(struct tk_progress *p, uint64_t done)
{
	p->done = done;
	if (p->st.shown && done == p->shown_done)
		return; /* nothing new to show */
	if (tk_status_due(&p->st, p->total ? (double)done / (double)p->total : -1))
		progress_draw(p, 0);
}

void tk_progress_end(struct tk_progress *p)
{
	/* a last line, complete, where any was shown (with TK_PROGRESS=off,
	 * none was: the output stays the same however fast the run) */
	if (p->st.shown && (tk_status_inplace(&p->st) || p->shown_done != p->done))
		progress_draw(p, 1);
}

int tk_cli_backend(struct tk_backend *be, const char *spec, int threads, int quiet,
		   struct tk_diag *d)
{
	const char *dev = spec ? spec : getenv("TK_DEVICE");
	int rc = tk_backend_init(be, dev && *dev ? dev : "auto", threads, d);

	/* a machine without a GPU is the common case, not news: the plain
	 * fallback is silent (--version says what the build has); a GPU that
	 * is there but does not start is worth a line */
	if (!rc && d->msg[0] && !quiet && strncmp(d->msg, "no CUDA device found", 20)) {
		char text[sizeof(d->msg) + 8];
		snprintf(text, sizeof(text), "note: %s", d->msg);
		put_line(text);
	}
	return rc;
}

/* The temporary directory of an imported GGUF, removed at exit. */
static char gguf_tmp[4096];

static void gguf_cleanup(void)
{
	if (gguf_tmp[0])
		tk_afile_rmtree(gguf_tmp);
}

int tk_cli_model_gguf(const char **model, int quiet, struct tk_diag *d)
{
	static char dir[sizeof(gguf_tmp) + 8];
	struct tk_convert_result r;
	struct stat st;
	char magic[4];
	FILE *fp;
	if (!*model || stat(*model, &st) || !S_ISREG(st.st_mode) || !(fp = fopen(*model, "rb")))
		return 0; /* the loaders say what is wrong */
	size_t got = fread(magic, 1, sizeof(magic), fp);
	fclose(fp);
	if (got != sizeof(magic) || memcmp(magic, "GGUF", 4))
		return 0;
	const char *tmp = getenv("TMPDIR");
	snprintf(gguf_tmp, sizeof(gguf_tmp), "%.4000s/tk-gguf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(gguf_tmp)) {
		int rc = tk_diag_sys(d, gguf_tmp, "cannot make a directory for the imported GGUF");
		gguf_tmp[0] = 0;
		return rc;
	}
	if (atexit(gguf_cleanup)) {
		tk_afile_rmtree(gguf_tmp);
		gguf_tmp[0] = 0;
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	snprintf(dir, sizeof(dir), "%s/model", gguf_tmp);
	struct tk_convert_opts co = { .input = *model, .output = dir, .outtype = TK_DT_F32 };
	int rc = tk_convert_gguf(&co, &r, d);
	if (rc)
		return rc;
	if (!quiet)
		fprintf(stderr, "%s: note: %s: GGUF (%s, %d tensors) imported as tk-convert does, "
			"in f32, for this run\n", tk_prog, *model, r.arch, r.n_tensors);
	*model = dir;
	return 0;
}

int tk_cli_chat_opts(struct tk_chat *c, const char *kwargs, struct tk_diag *d)
{
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	long long t;
	int rc;

	if (kwargs && (rc = tk_chat_set_kwargs(c, kwargs, d)))
		return rc;
	if (sde && *sde) {
		if (tk_options_parse_ll(sde, 0, 253402300799LL, &t))
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "SOURCE_DATE_EPOCH '%.100s' is not a number of seconds", sde);
		tk_chat_pin_time(c, t);
	}
	return 0;
}

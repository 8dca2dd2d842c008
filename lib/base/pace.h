/* pace.h - when a progress report is due, and how it shows.
 *
 * Pure logic, no I/O: the caller passes the clock and the environment's
 * values in, so that tests can drive it.  jobs/cli.h prints with it (the
 * progress of tk-tokenize, tk-pack, tk-quantize, tk-generate and tk-train).
 *
 * How progress shows on stderr (TK_PROGRESS, else chosen):
 *
 *	off       no time-based reports (tests/run sets it: expected output
 *	          stays the same however fast the machine is)
 *	lines     a plain line every 10 s or every 2% of the work, whichever
 *	          comes first, at most one a second (a log, a pipe)
 *	bar       one line redrawn in place with "\r" and ESC [K, 10 times a
 *	          second (a terminal)
 *	notebook  one line redrawn in place with "\r" and spaces, no escape
 *	          codes, once a second (Jupyter, Colab)
 *	auto      notebook under Jupyter or Colab (JPY_PARENT_PID or
 *	          COLAB_RELEASE_TAG set), else bar on a terminal, else lines
 *
 * "MODE:SECONDS" or a bare "SECONDS" (auto) sets the time between reports
 * instead, and drops the 2% rule: TK_PROGRESS=0 reports at every chance.
 */
#ifndef TK_PACE_H
#define TK_PACE_H

enum tk_pace_mode { TK_PACE_OFF, TK_PACE_LINES, TK_PACE_BAR, TK_PACE_NOTEBOOK };

struct tk_pace {
	enum tk_pace_mode mode;
	double every;     /* a report at least this often (seconds) */
	double min_gap;   /* and never more often than this */
	double frac_step; /* a report each time this share of the work is done (0: none) */
	double last_t;    /* when the last report was made */
	double last_frac; /* how much of the work was done then (0..1) */
};

/* Sets up p at time now from spec (TK_PROGRESS's value; NULL or "" is
 * "auto"), whether stderr is a terminal (tty) and whether a notebook was
 * detected (notebook).  Returns 0, or TK_E_INVAL for a spec it does not
 * know, after setting p up as for "auto". */
int tk_pace_init(struct tk_pace *p, const char *spec, int tty, int notebook, double now);

/* 1 when a report is due at time now with the share frac (0..1; negative:
 * not known, time alone decides) of the work done, else 0 (always 0 when
 * the mode is off).  Does not change p: tk_pace_mark() records a report. */
int tk_pace_due(const struct tk_pace *p, double now, double frac);

/* Records that a report (or any line that shows the progress, such as
 * tk-train's logging lines) was made at time now with share frac done. */
void tk_pace_mark(struct tk_pace *p, double now, double frac);

#endif

/* pace.c - when a progress report is due (see pace.h). */
#include "base/pace.h"

#include <string.h>

#include "base/options.h"
#include "base/tk.h"

/* The defaults of each mode: every, min_gap, frac_step. */
static void defaults(struct tk_pace *p)
{
	switch (p->mode) {
	case TK_PACE_LINES:
		p->every = 10.0, p->min_gap = 1.0, p->frac_step = 0.02;
		break;
	case TK_PACE_BAR:
		p->every = 0.1, p->min_gap = 0.1, p->frac_step = 0;
		break;
	case TK_PACE_NOTEBOOK:
		p->every = 1.0, p->min_gap = 1.0, p->frac_step = 0;
		break;
	case TK_PACE_OFF:
		p->every = p->min_gap = p->frac_step = 0;
		break;
	}
}

static enum tk_pace_mode auto_mode(int tty, int notebook)
{
	return notebook ? TK_PACE_NOTEBOOK : tty ? TK_PACE_BAR : TK_PACE_LINES;
}

int tk_pace_init(struct tk_pace *p, const char *spec, int tty, int notebook, double now)
{
	static const struct {
		const char *name;
		int mode; /* -1: auto */
	} names[] = {
		{ "auto", -1 }, { "off", TK_PACE_OFF }, { "lines", TK_PACE_LINES },
		{ "bar", TK_PACE_BAR }, { "notebook", TK_PACE_NOTEBOOK },
	};
	memset(p, 0, sizeof(*p));
	p->last_t = now;
	p->mode = auto_mode(tty, notebook);
	if (!spec || !*spec) {
		defaults(p);
		return 0;
	}
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
	const char *secs = colon ? colon + 1 : NULL;
	int known = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == n && !strncmp(spec, names[i].name, n)) {
			p->mode = names[i].mode < 0 ? auto_mode(tty, notebook)
						    : (enum tk_pace_mode)names[i].mode;
			known = 1;
		}
	if (!known && !colon)
		secs = spec; /* a bare number of seconds */
	else if (!known)
		secs = NULL;
	defaults(p);
	double s;
	if (secs && !tk_options_parse_double(secs, 0, 1e9, &s)) {
		if (p->mode != TK_PACE_OFF)
			p->every = p->min_gap = s, p->frac_step = 0;
		return 0;
	}
	if (known && !colon)
		return 0;
	p->mode = auto_mode(tty, notebook);
	defaults(p);
	return TK_E_INVAL;
}

int tk_pace_due(const struct tk_pace *p, double now, double frac)
{
	if (p->mode == TK_PACE_OFF)
		return 0;
	double gap = now - p->last_t;
	if (gap < p->min_gap)
		return 0;
	if (gap >= p->every)
		return 1;
	return p->frac_step > 0 && frac >= 0 && frac - p->last_frac >= p->frac_step;
}

void tk_pace_mark(struct tk_pace *p, double now, double frac)
{
	p->last_t = now;
	if (frac >= 0)
		p->last_frac = frac;
}

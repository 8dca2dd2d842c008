/* test-pace.c - base/pace.h: which mode TK_PROGRESS and the environment
 * choose, and when a report is due. */
#include "base/pace.h"
#include "base/tk.h"
#include "tt.h"

static void test_auto(void)
{
	struct tk_pace p;
	TT_CHECK(!tk_pace_init(&p, NULL, 0, 0, 0) && p.mode == TK_PACE_LINES, "mode %d", p.mode);
	TT_CHECK(p.every == 10 && p.frac_step == 0.02 && p.min_gap == 1, "every %g", p.every);
	TT_CHECK(!tk_pace_init(&p, "", 1, 0, 0) && p.mode == TK_PACE_BAR, "mode %d", p.mode);
	/* a notebook wins over the terminal Jupyter's ! cells run in */
	TT_CHECK(!tk_pace_init(&p, "auto", 1, 1, 0) && p.mode == TK_PACE_NOTEBOOK, "mode %d",
		 p.mode);
	TT_CHECK(!tk_pace_init(&p, NULL, 0, 1, 0) && p.mode == TK_PACE_NOTEBOOK, "mode %d", p.mode);
}

static void test_spec(void)
{
	struct tk_pace p;
	TT_CHECK(!tk_pace_init(&p, "off", 1, 1, 0) && p.mode == TK_PACE_OFF, "mode %d", p.mode);
	TT_CHECK(!tk_pace_init(&p, "lines", 1, 1, 0) && p.mode == TK_PACE_LINES, "mode %d", p.mode);
	TT_CHECK(!tk_pace_init(&p, "notebook", 0, 0, 0) && p.mode == TK_PACE_NOTEBOOK, "%d", p.mode);
	TT_CHECK(!tk_pace_init(&p, "bar", 0, 0, 0) && p.mode == TK_PACE_BAR, "mode %d", p.mode);
	/* seconds alone: auto's mode, that interval, no 2% rule */
	TT_CHECK(!tk_pace_init(&p, "2.5", 0, 0, 0) && p.mode == TK_PACE_LINES && p.every == 2.5 &&
		 p.min_gap == 2.5 && p.frac_step == 0, "mode %d every %g", p.mode, p.every);
	TT_CHECK(!tk_pace_init(&p, "notebook:0", 0, 0, 0) && p.mode == TK_PACE_NOTEBOOK &&
		 p.every == 0, "mode %d every %g", p.mode, p.every);
	/* unknown: an error, and auto */
	const char *bad[] = { "often", "lines:x", "x:3", "-1", "lines:", "9e99" };
	for (int i = 0; i < 6; i++) {
		int rc = tk_pace_init(&p, bad[i], 1, 0, 0);
		TT_CHECK(rc == TK_E_INVAL && p.mode == TK_PACE_BAR && p.every == 0.1,
			 "'%s': rc %d mode %d", bad[i], rc, p.mode);
	}
}

static void test_due(void)
{
	struct tk_pace p;
	tk_pace_init(&p, "lines", 0, 0, 100);
	/* time: due after 10 s, whatever the share */
	TT_CHECK(!tk_pace_due(&p, 109.9, -1) && tk_pace_due(&p, 110, -1), "10 s");
	/* share: 2% more of the work done, once a second at most */
	TT_CHECK(!tk_pace_due(&p, 100.5, 0.5), "min gap");
	TT_CHECK(tk_pace_due(&p, 101, 0.02) && !tk_pace_due(&p, 101, 0.019), "2%%");
	tk_pace_mark(&p, 101, 0.02);
	TT_CHECK(!tk_pace_due(&p, 105, 0.039) && tk_pace_due(&p, 105, 0.04), "from the mark");
	/* an unknown share does not move the mark */
	tk_pace_mark(&p, 106, -1);
	TT_CHECK(p.last_frac == 0.02 && p.last_t == 106, "frac %g", p.last_frac);
	/* off: never */
	tk_pace_init(&p, "off", 0, 0, 0);
	TT_CHECK(!tk_pace_due(&p, 1e6, 1), "off");
	/* 0 s: every chance */
	tk_pace_init(&p, "0", 0, 0, 5);
	TT_CHECK(tk_pace_due(&p, 5, -1), "0 s");
}

int main(void)
{
	TT_RUN(test_auto);
	TT_RUN(test_spec);
	TT_RUN(test_due);
	return tt_done();
}

/* test-schedule.c - learning-rate schedules against transformers' own rates
 * (tests/fixtures/sched/lr.txt, made by tests/parity/gen-sched-fixture.py). */
#include "train/schedule.h"
#include "tt.h"

static void test_against_transformers(void)
{
	FILE *f = fopen(tt_fixture("sched/lr.txt"), "r");
	TT_REQUIRE(f, "no fixture %s", tt_fixture("sched/lr.txt"));
	char line[256], kind[64];
	struct tk_sched s = { 0 };
	double warmup_arg = 0;
	int cases = 0, rows = 0;
	while (fgets(line, sizeof(line), f)) {
		long k, w, total;
		double base, lr;
		if (sscanf(line, "CASE %63s %lf %lf %ld", kind, &base, &warmup_arg, &total) == 4) {
			struct tk_diag d;
			TT_REQUIRE(tk_sched_parse(kind, &s.type, &d) == 0, "%s", d.msg);
			s.base_lr = base;
			s.total = total;
			s.warmup = tk_sched_warmup_steps(warmup_arg, total);
			cases++;
			continue;
		}
		TT_REQUIRE(sscanf(line, "%ld %ld %lf", &k, &w, &lr) == 3, "bad line %s", line);
		TT_CHECK(s.warmup == w, "%s warmup %g of %ld: %ld, transformers %ld", kind,
			 warmup_arg, s.total, s.warmup, w);
		double got = tk_sched_lr(&s, k);
		TT_CHECK(got == lr, "%s step %ld: %.17g, transformers %.17g", kind, k, got, lr);
		rows++;
	}
	fclose(f);
	TT_CHECK(cases == 20 && rows > 200, "%d cases, %d rows", cases, rows);
}

static void test_names(void)
{
	enum tk_sched_type t;
	struct tk_diag d;
	TT_CHECK(tk_sched_parse("cosine_with_restarts", &t, &d) == TK_E_INVAL, "accepted");
	TT_CHECK(strstr(d.msg, "constant_with_warmup"), "%s", d.msg);
	TT_CHECK(tk_sched_parse("constant_with_warmup", &t, &d) == 0 &&
			 !strcmp(tk_sched_name(t), "constant_with_warmup"), "round trip");
}

int main(void)
{
	TT_RUN(test_against_transformers);
	TT_RUN(test_names);
	return tt_done();
}

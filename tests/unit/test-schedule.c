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

/* clip_grad_norm_'s coefficient, torch's formula evaluated in fp32 as
 * torch evaluates it (a float32 norm tensor, the Python floats cast to
 * it): max_norm / (total_norm + 1e-6), clamped to 1.  The epsilon decides
 * the result where the norm is near 1e-6. */
static void test_clip_coef(void)
{
	TT_CHECK(tk_clip_coef(1.0, 2.0) == 1.0f / (2.0f + 1e-6f), "%.9g", tk_clip_coef(1.0, 2.0));
	TT_CHECK(tk_clip_coef(1e-7, 1e-6) == 1e-7f / (1e-6f + 1e-6f), "%.9g",
		 tk_clip_coef(1e-7, 1e-6));
	TT_CHECK(tk_clip_coef(1e-7, 1e-6) < 0.051f, "the epsilon is missing");
	TT_CHECK(tk_clip_coef(1.0, 0.5) == 1.0f && tk_clip_coef(1.0, 0.0) == 1.0f, "no clamp");
}

int main(void)
{
	TT_RUN(test_against_transformers);
	TT_RUN(test_clip_coef);
	TT_RUN(test_names);
	return tt_done();
}

/* test-schedule.c - learning-rate schedules against transformers' own rates
 * (tests/fixtures/sched/lr.txt, made by tests/parity/gen-sched-fixture.py). */
#include "train/schedule.h"
#include "tt.h"

/* Sets s up as tk-train would for one fixture case. */
static int setup(struct tk_sched *s, const char *kind, double base, double warmup_arg, long total,
		 const char *kw, struct tk_diag *d)
{
	enum tk_sched_type t;
	int rc = tk_sched_parse(kind, &t, d);
	if (rc)
		return rc;
	tk_sched_init(s, t, base, tk_sched_warmup_steps(warmup_arg, total), total);
	return tk_sched_kwargs(s, kw, d);
}

static void test_against_transformers(void)
{
	FILE *f = fopen(tt_fixture("sched/lr.txt"), "r");
	TT_REQUIRE(f, "no fixture %s", tt_fixture("sched/lr.txt"));
	char line[512], kind[64], kw[256];
	struct tk_sched s;
	struct tk_diag d;
	double warmup_arg = 0, base;
	long total;
	int cases = 0, rows = 0, refused = 0, plateaus = 0, prows = 0, plateau = 0;
	while (fgets(line, sizeof(line), f)) {
		long k, w;
		double lr, metric;
		if (sscanf(line, "CASE %63s %lf %lf %ld %255s", kind, &base, &warmup_arg, &total,
			   kw) == 5) {
			TT_REQUIRE(setup(&s, kind, base, warmup_arg, total, kw, &d) == 0, "%s %s: %s",
				   kind, kw, d.msg);
			plateau = 0;
			cases++;
			continue;
		}
		if (sscanf(line, "REFUSE %63s %lf %lf %ld %255s", kind, &base, &warmup_arg, &total,
			   kw) == 5) {
			TT_CHECK(setup(&s, kind, base, warmup_arg, total, kw, &d) == TK_E_INVAL,
				 "%s %s accepted", kind, kw);
			refused++;
			continue;
		}
		if (sscanf(line, "PLATEAU %lf %255s", &base, kw) == 2) {
			TT_REQUIRE(setup(&s, "reduce_lr_on_plateau", base, 0, 10, kw, &d) == 0,
				   "%s: %s", kw, d.msg);
			plateau = 1;
			plateaus++;
			continue;
		}
		if (plateau) {
			TT_REQUIRE(sscanf(line, "%lf %lf", &metric, &lr) == 2, "bad line %s", line);
			tk_sched_plateau_step(&s, metric);
			TT_CHECK(tk_sched_lr(&s, 1000) == lr, "plateau %s eval %ld (%g): %.17g, "
				 "torch %.17g", kw, s.plateau.evals, metric, tk_sched_lr(&s, 1000), lr);
			prows++;
			continue;
		}
		TT_REQUIRE(sscanf(line, "%ld %ld %lf", &k, &w, &lr) == 3, "bad line %s", line);
		TT_CHECK(s.warmup == w, "%s warmup %g of %ld: %ld, transformers %ld", kind,
			 warmup_arg, s.total, s.warmup, w);
		double got = tk_sched_lr(&s, k);
		TT_CHECK(got == lr, "%s %s step %ld: %.17g, transformers %.17g", kind, kw, k, got, lr);
		rows++;
	}
	fclose(f);
	TT_CHECK(cases == 77 && rows > 1000 && refused == 7 && plateaus == 6 && prows == 180,
		 "%d cases, %d rows, %d refused, %d plateaus of %d rows", cases, rows, refused,
		 plateaus, prows);
}

static void test_names(void)
{
	enum tk_sched_type t;
	struct tk_diag d;
	TT_CHECK(tk_sched_parse("greedy", &t, &d) == TK_E_INVAL, "accepted");
	TT_CHECK(strstr(d.msg, "warmup_stable_decay"), "%s", d.msg);
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

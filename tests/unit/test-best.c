/* test-best.c - best checkpoint, early stopping and rotation against the
 * Trainer's own code (tests/fixtures/best/best.txt, made by
 * tests/parity/gen-best-fixture.py). */
#include <math.h>
#include <string.h>

#include "train/best.h"
#include "tt.h"

static int same(double a, double b)
{
	return a == b || (isnan(a) && isnan(b));
}

static void test_against_transformers(void)
{
	FILE *f = fopen(tt_fixture("best/best.txt"), "r");
	TT_REQUIRE(f, "no fixture %s", tt_fixture("best/best.txt"));
	char line[512];
	struct tk_best b;
	int runs = 0, evals = 0, rots = 0, greater;
	while (fgets(line, sizeof(line), f)) {
		long patience, step, best_step, counter;
		double threshold, value, best;
		int stop_want, new_want;
		if (sscanf(line, "RUN %d %ld %lf", &greater, &patience, &threshold) == 3) {
			memset(&b, 0, sizeof(b));
			b.greater = greater;
			b.patience = patience;
			b.threshold = threshold;
			runs++;
			continue;
		}
		if (!strncmp(line, "ROT ", 4)) {
			long limit, want_best, steps[16];
			int n = 0, off, del[16];
			char *p = line + 4;
			TT_REQUIRE(sscanf(p, "%ld %ld%n", &limit, &want_best, &off) == 2, "%s", line);
			p += off;
			while (n < 16 && sscanf(p, " %ld%n", &steps[n], &off) == 1) {
				p += off;
				n++;
			}
			char *arrow = strstr(line, "->"), got[128] = "", want[128];
			TT_REQUIRE(arrow, "%s", line);
			snprintf(want, sizeof(want), "%s", arrow + 3);
			want[strcspn(want, "\n")] = 0;
			tk_best_rotation(steps, (size_t)n, limit, want_best, del);
			/* the kept ones in ascending order, as the fixture lists them */
			for (long s = 0; s < 1000; s++)
				for (int i = 0; i < n; i++)
					if (steps[i] == s && !del[i])
						snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%ld",
							 got[0] ? " " : "", s);
			TT_CHECK(!strcmp(got, want), "%.*s: kept %s, transformers %s",
				 (int)(arrow - line), line, got, want);
			rots++;
			continue;
		}
		TT_REQUIRE(sscanf(line, "%lf %ld %d %lf %ld %ld %d", &value, &step, &stop_want, &best,
				  &best_step, &counter, &new_want) == 7, "bad line %s", line);
		int stop = 0, is_new = tk_best_eval(&b, value, step, &stop);
		TT_CHECK(stop == stop_want && is_new == new_want && same(b.metric, best) &&
				 b.step == best_step && b.bad == counter,
			 "run %d (greater %d patience %ld threshold %g) value %g at %ld: stop %d new %d "
			 "best %g@%ld counter %ld; transformers %d %d %g@%ld %ld", runs, b.greater,
			 b.patience, b.threshold, value, step, stop, is_new, b.metric, b.step, b.bad,
			 stop_want, new_want, best, best_step, counter);
		evals++;
	}
	fclose(f);
	TT_CHECK(runs == 40 && evals == 330 && rots == 10, "%d runs, %d evals, %d rotations", runs,
		 evals, rots);
}

int main(void)
{
	TT_RUN(test_against_transformers);
	return tt_done();
}

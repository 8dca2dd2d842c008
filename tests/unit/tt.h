/* tt.h - a minimal unit-test harness.
 *
 *	static void test_parse(void) { TT_CHECK(x == 1, "x=%d", x); }
 *	int main(void) { TT_RUN(test_parse); return tt_done(); }
 *
 * Each test prints "PASS name" or "FAIL name: file:line: what" (and "SKIP
 * name: why"); tests/run counts those lines.  Fixtures are found through
 * tt_fixture("tokenizer/gpt2.json"): $TK_ROOT/tests/fixtures/...
 */
#ifndef TT_H
#define TT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An environment variable's value saved (a copy, NULL when unset), and
 * put back as it was, the copy freed: for tests that set TK_CPU_ISA or
 * the like for a while. */
static inline char *tt_env_save(const char *name)
{
	const char *v = getenv(name);
	return v ? strdup(v) : NULL;
}

static inline void tt_env_restore(const char *name, char *saved)
{
	if (saved)
		setenv(name, saved, 1);
	else
		unsetenv(name);
	free(saved);
}

/* Messages are cut to fit tt_why; that is fine for a test report. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static int tt_failed_now, tt_skipped_now, tt_nfail;
static char tt_why[512];

#define TT_CHECK(cond, ...)                                                      \
	do {                                                                     \
		if (!(cond)) {                                                   \
			if (!tt_failed_now) {                                    \
				int tt_n_ = snprintf(tt_why, sizeof(tt_why),     \
						     "%s:%d: %s: ", __FILE__,    \
						     __LINE__, #cond);           \
				snprintf(tt_why + tt_n_, sizeof(tt_why) - tt_n_, \
					 __VA_ARGS__);                           \
			}                                                        \
			tt_failed_now = 1;                                       \
		}                                                                \
	} while (0)

/* Checks and stops the test at the first failure. */
#define TT_REQUIRE(cond, ...)                    \
	do {                                     \
		TT_CHECK(cond, __VA_ARGS__);     \
		if (tt_failed_now)               \
			return;                  \
	} while (0)

#define TT_SKIP(...)                                                \
	do {                                                        \
		snprintf(tt_why, sizeof(tt_why), __VA_ARGS__);      \
		tt_skipped_now = 1;                                 \
		return;                                             \
	} while (0)

#define TT_RUN(fn)                                                              \
	do {                                                                    \
		tt_failed_now = tt_skipped_now = 0;                             \
		tt_why[0] = 0;                                                  \
		fn();                                                           \
		if (tt_failed_now) {                                            \
			printf("FAIL %s: %s\n", #fn, tt_why);                   \
			tt_nfail++;                                             \
		} else if (tt_skipped_now)                                      \
			printf("SKIP %s: %s\n", #fn, tt_why);                   \
		else                                                            \
			printf("PASS %s\n", #fn);                               \
		fflush(stdout);                                                 \
	} while (0)

static inline int tt_done(void)
{
	return tt_nfail ? 1 : 0;
}

/* Path of a fixture under $TK_ROOT/tests/fixtures (static buffer). */
static inline const char *tt_fixture(const char *rel)
{
	static char buf[4096];
	const char *root = getenv("TK_ROOT");
	snprintf(buf, sizeof(buf), "%s/tests/fixtures/%s", root ? root : ".", rel);
	return buf;
}

/* A fresh temporary directory for this test binary (static buffer). */
static inline const char *tt_tmpdir(void)
{
	static char buf[256];
	if (!buf[0]) {
		const char *base = getenv("TK_TMP");
		snprintf(buf, sizeof(buf), "%s/tt-XXXXXX", base ? base : "/tmp");
		if (!mkdtemp(buf)) {
			perror("mkdtemp");
			exit(2);
		}
	}
	return buf;
}

#endif

/* test-jinja.c - the Jinja2 subset (lib/text/jinja.c).
 *
 * The cases of tests/fixtures/jinja/cases.json carry what jinja2 renders,
 * in the environment transformers compiles chat templates in, or which
 * exception it raises (tests/fixtures/jinja/generate.py writes them); the
 * other tests hold tk's own contract: errors name the template line, and a
 * construct outside the subset is refused rather than rendered
 * differently.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "text/jinja.h"
#include "tt.h"

/* 2026-01-02 03:04:05 UTC, the time generate.py pins strftime_now to. */
static const struct tk_jinja_opts pinned = { .pin_now = 1, .now = 1767323045 };

static cJSON *load_json(const char *rel)
{
	struct tk_buf b = { 0 };
	struct tk_diag d;
	if (tk_read_file(tt_fixture(rel), &b, &d))
		return NULL;
	cJSON *j = cJSON_ParseWithLength(b.data, b.len);
	tk_buf_free(&b);
	return j;
}

/* Renders src with vars into out; returns the status, d the diagnostic. */
static int render(const char *src, const cJSON *vars, struct tk_buf *out, struct tk_diag *d)
{
	tk_jinja_t *t;
	int rc = tk_jinja_parse(&t, src, strlen(src), d);
	if (rc)
		return rc;
	out->len = 0;
	rc = tk_jinja_render(t, vars, &pinned, out, NULL, NULL, d);
	tk_jinja_free(t);
	return rc;
}

static void test_reference_cases(void)
{
	cJSON *j = load_json("jinja/cases.json"), *c;
	struct tk_buf out = { 0 };
	int n = 0;

	TT_REQUIRE(j, "tests/fixtures/jinja/cases.json unreadable");
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
		const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
		const char *src = cJSON_GetObjectItem(c, "template")->valuestring;
		const cJSON *text = cJSON_GetObjectItem(c, "text");
		const cJSON *error = cJSON_GetObjectItem(c, "error");
		const cJSON *etype = cJSON_GetObjectItem(c, "error_type");
		struct tk_diag d = { 0 };
		int rc = render(src, cJSON_GetObjectItem(c, "vars"), &out, &d);
		n++;
		if (text) {
			TT_CHECK(rc == 0, "%s: failed: %s", name, d.msg);
			TT_CHECK(rc || (out.len == strlen(text->valuestring) &&
					!memcmp(out.data, text->valuestring, out.len)),
				 "%s: got '%.*s', jinja2 '%s'", name, (int)out.len, out.data,
				 text->valuestring);
		} else if (!strcmp(etype->valuestring, "TemplateError")) {
			/* raise_exception: the template's own message */
			TT_CHECK(rc == TK_E_INVAL && !strcmp(d.msg, error->valuestring),
				 "%s: rc %d '%s', jinja2 raised '%s'", name, rc, d.msg,
				 error->valuestring);
		} else {
			TT_CHECK(rc == TK_E_FORMAT || rc == TK_E_UNSUPPORTED,
				 "%s: rc %d ('%.*s'), jinja2 raised %s: %s", name, rc, (int)out.len,
				 out.data, etype->valuestring, error->valuestring);
		}
	}
	TT_CHECK(n >= 50, "only %d cases", n);
	tk_buf_free(&out);
	cJSON_Delete(j);
}

/* A syntax error names the line of the template. */
static void test_syntax_errors(void)
{
	static const struct { const char *src, *want; int rc; } cases[] = {
		{ "a\nb\n{% if x %}\nc", "line 3: missing {% endif %}", TK_E_FORMAT },
		{ "a\n{{ x + }}", "line 2: unexpected 'end of {{ ... }}'", TK_E_FORMAT },
		{ "{% for x in y %}\n{% endif %}", "line 2: unexpected {% endif %}", TK_E_FORMAT },
		{ "\n\n{{ 'abc }}", "line 3: unterminated string", TK_E_FORMAT },
		{ "x {# never closed", "line 1: unclosed comment", TK_E_FORMAT },
		{ "ok\n{% include 'x.jinja' %}", "line 2: unsupported tag 'include'", TK_E_UNSUPPORTED },
		{ "{% extends 'base' %}", "line 1: unsupported tag 'extends'", TK_E_UNSUPPORTED },
		{ "{% for x in y recursive %}{% endfor %}", "line 1: recursive for loops",
		  TK_E_UNSUPPORTED },
		{ "{{ x ! y }}", "line 1: unexpected character '!'", TK_E_FORMAT },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tk_jinja_t *t = NULL;
		struct tk_diag d = { 0 };
		int rc = tk_jinja_parse(&t, cases[i].src, strlen(cases[i].src), &d);
		TT_CHECK(rc == cases[i].rc && strstr(d.msg, cases[i].want),
			 "'%s': rc %d '%s', want %d '%s'", cases[i].src, rc, d.msg, cases[i].rc,
			 cases[i].want);
		tk_jinja_free(t);
	}
}

/* What tk does not implement is refused at render time with the line,
 * never rendered differently. */
static void test_unsupported(void)
{
	static const struct { const char *src, *want; } cases[] = {
		{ "a\n{{ x | truncate(3) }}", "line 2: unsupported filter 'truncate'" },
		{ "{{ 1 is foo }}", "line 1: unknown test 'foo'" },
		{ "\n{{ 'a'.zfill(3) }}", "line 2: unsupported method str.zfill()" },
		{ "{{ cycler(1) }}", "line 1: 'cycler' is undefined" },
		{ "{{ d.items }}", "line 1: d.items without a call" },
		{ "{{ '{:>5}'.format(1) }}", "line 1: str.format with a format spec" },
		{ "{{ ('a'|safe).replace('a', '<') }}", "line 1: str.replace() of a Markup string" },
		{ "{{ 2 ** 64 }}", "line 1: an integer beyond 64 bits" },
		{ "{{ [1] | map('string') }}", "line 1: a generator as text" },
	};
	cJSON *vars = cJSON_Parse("{\"d\": {\"items\": 1}}");
	struct tk_buf out = { 0 };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tk_diag d = { 0 };
		int rc = render(cases[i].src, vars, &out, &d);
		TT_CHECK(rc < 0 && strstr(d.msg, cases[i].want), "'%s': rc %d '%s', want '%s'",
			 cases[i].src, rc, d.msg, cases[i].want);
	}
	tk_buf_free(&out);
	cJSON_Delete(vars);
}

/* {% generation %} spans are byte offsets from where the render started
 * in out, as transformers' AssistantTracker counts from the start of the
 * text; the output before the render stays. */
static void test_generation_spans(void)
{
	const char *src = "{% for m in ms %}<{{ m }}>{% if loop.index is even %}"
			  "{% generation %}[é{{ m }}]{% endgeneration %}{% endif %}{% endfor %}";
	cJSON *vars = cJSON_Parse("{\"ms\": [\"a\", \"b\", \"c\", \"d\"]}");
	struct tk_buf out = { 0 };
	struct tk_diag d = { 0 };
	tk_jinja_t *t;
	size_t *spans;
	int n;

	TT_REQUIRE(!tk_jinja_parse(&t, src, strlen(src), &d), "%s", d.msg);
	TT_CHECK(tk_jinja_has_generation(t), "has_generation");
	tk_buf_append(&out, "prefix", 6);
	TT_REQUIRE(!tk_jinja_render(t, vars, NULL, &out, &spans, &n, &d), "%s", d.msg);
	TT_CHECK(!strcmp(out.data, "prefix<a><b>[éb]<c><d>[éd]"), "got '%s'", out.data);
	TT_CHECK(n == 2, "n %d", n);
	/* "<a><b>" is 6 bytes, "[éb]" 5 (é is two) */
	TT_CHECK(n == 2 && spans[0] == 6 && spans[1] == 11 && spans[2] == 17 && spans[3] == 22,
		 "spans %zu %zu %zu %zu", spans[0], spans[1], spans[2], spans[3]);
	free(spans);
	tk_jinja_free(t);
	tk_buf_free(&out);
	cJSON_Delete(vars);
}

/* raise_exception stops the render with the template's message and its
 * line; the text rendered before it stays in out. */
static void test_raise_exception(void)
{
	const char *src = "ok\n{% if x %}\n{{ raise_exception('bad: ' ~ x) }}{% endif %}";
	cJSON *vars = cJSON_Parse("{\"x\": 3}");
	struct tk_buf out = { 0 };
	struct tk_diag d = { 0 };
	int rc = render(src, vars, &out, &d);
	TT_CHECK(rc == TK_E_INVAL && !strcmp(d.msg, "bad: 3") && d.line == 3,
		 "rc %d '%s' line %lld", rc, d.msg, d.line);
	TT_CHECK(out.len == 3 && !memcmp(out.data, "ok\n", 3), "out '%.*s'", (int)out.len,
		 out.data);
	tk_buf_free(&out);
	cJSON_Delete(vars);
}

/* Deep recursion through macros is an error, not a crash. */
static void test_recursion_limit(void)
{
	const char *src = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
	struct tk_buf out = { 0 };
	struct tk_diag d = { 0 };
	int rc = render(src, NULL, &out, &d);
	TT_CHECK(rc < 0 && strstr(d.msg, "too deep"), "rc %d '%s'", rc, d.msg);
	tk_buf_free(&out);
}

int main(void)
{
	TT_RUN(test_reference_cases);
	TT_RUN(test_syntax_errors);
	TT_RUN(test_unsupported);
	TT_RUN(test_generation_spans);
	TT_RUN(test_raise_exception);
	TT_RUN(test_recursion_limit);
	return tt_done();
}

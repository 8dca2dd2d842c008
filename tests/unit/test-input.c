/* test-input.c - CSV, JSONL and text readers, templates. */
#include <stdio.h>
#include <string.h>

#include "text/input.h"
#include "tt.h"

/* Writes data to a fresh file NAME in the test directory; returns its path
 * (static buffer). */
static const char *put(const char *name, const char *data, size_t n)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tt_tmpdir(), name);
	FILE *fp = fopen(path, "wb");
	if (!fp)
		return NULL;
	fwrite(data, 1, n, fp);
	fclose(fp);
	return path;
}
#define PUT(name, lit) put(name, lit, sizeof(lit) - 1)

/* Reads every example of path into texts[] ("<text>|<prompt_len>@<line>"
 * joined by '\n' into out); returns the last tk_input_* status. */
static int slurp(const char *path, const struct tk_input_opts *o, char *out, size_t cap,
		 struct tk_diag *d)
{
	tk_input_t *in;
	size_t k = 0;
	out[0] = '\0';
	int rc = tk_input_open(&in, path, o, d);
	if (rc)
		return rc;
	struct tk_example ex;
	while ((rc = tk_input_next(in, &ex, d)) == 1) {
		if (strlen(ex.text) != ex.len) /* texts are NUL-terminated */
			return 99;
		k += (size_t)snprintf(out + k, cap - k, "%s[%s|%zu@%lld]", k ? "\n" : "",
				      ex.text, ex.prompt_len, ex.line);
		if (k >= cap)
			return 98;
	}
	tk_input_free(in);
	return rc;
}

static void test_csv_rfc4180(void)
{
	const char *p = PUT("a.csv", "\xEF\xBB\xBFquote,author\r\n"
			    "\"Hello, world\",Ann\r\n"
			    "\"two\nlines\",\"Bob \"\"B\"\"\"\r\n"
			    "\r\n"
			    " spaced ,\"\"\n"
			    "last,no newline");
	struct tk_input_opts o = { .column = "quote" };
	char got[1024];
	struct tk_diag d;
	int rc = slurp(p, &o, got, sizeof(got), &d);
	TT_REQUIRE(rc == 0, "rc %d: %s", rc, d.msg);
	TT_CHECK(!strcmp(got, "[Hello, world|0@2]\n[two\nlines|0@3]\n[ spaced |0@6]\n"
			 "[last|0@7]"), "got %s", got);
	o.column = "author";
	rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[Ann|0@2]\n[Bob \"B\"|0@3]\n[|0@6]\n[no newline|0@7]"),
		 "got %s", got);
}

static void test_csv_template(void)
{
	const char *p = PUT("t.csv", "quote,author\nBe brief.,Anon\n\"{x}\",\"a\\b\"\n");
	struct tk_input_opts o = { .tmpl = "Quote: {quote}\\nAuthor:\\t{author} {{ok}} \\\\" };
	char got[1024];
	struct tk_diag d;
	int rc = slurp(p, &o, got, sizeof(got), &d);
	TT_REQUIRE(rc == 0, "rc %d: %s", rc, d.msg);
	TT_CHECK(!strcmp(got, "[Quote: Be brief.\nAuthor:\tAnon {ok} \\|0@2]\n"
			 "[Quote: {x}\nAuthor:\ta\\b {ok} \\|0@3]"), "got %s", got);
	o.tmpl = "{author}: {quote} ({author})";
	rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[Anon: Be brief. (Anon)|0@2]\n[a\\b: {x} (a\\b)|0@3]"),
		 "got %s", got);
	o.tmpl = "{quote} by {auth}";
	rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && !strcmp(d.msg, "no column 'auth' (columns: quote, author)"),
		 "rc %d msg %s", rc, d.msg);
}

static void test_csv_prompt_response(void)
{
	const char *p = PUT("pr.csv", "q,a,prompt,completion\nWhat?,This.,P1,C1\n");
	struct tk_input_opts o = { .prompt = "q", .response = "a" };
	char got[256];
	struct tk_diag d;
	int rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[What?This.|5@2]"), "rc %d got %s", rc, got);
	struct tk_input_opts none = { 0 }; /* prompt/completion chosen by name */
	rc = slurp(p, &none, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[P1C1|2@2]"), "rc %d got %s", rc, got);
	struct tk_input_opts half = { .prompt = "q" };
	rc = slurp(p, &half, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL, "rc %d", rc);
	struct tk_input_opts both = { .prompt = "q", .response = "a", .column = "q" };
	rc = slurp(p, &both, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "choose one"), "rc %d %s", rc, d.msg);
}

static void test_csv_default_column(void)
{
	struct tk_input_opts o = { 0 };
	char got[256];
	struct tk_diag d;
	int rc = slurp(PUT("d1.csv", "id,text\n1,hi\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[hi|0@2]"), "rc %d got %s", rc, got);
	rc = slurp(PUT("d2.csv", "only\nx\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[x|0@2]"), "rc %d got %s", rc, got);
	rc = slurp(PUT("d3.csv", "a,b\nx,y\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "(columns: a, b); choose one"), "rc %d %s", rc, d.msg);
	rc = slurp(PUT("d4.csv", ""), &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !got[0], "empty file: rc %d got %s", rc, got);
}

static void test_csv_errors(void)
{
	struct tk_input_opts o = { .column = "a" };
	char got[256];
	struct tk_diag d;
	int rc = slurp(PUT("e1.csv", "a,b\n1,2\n3\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 3 && !strcmp(d.msg, "1 field, but the header has 2"),
		 "rc %d line %lld %s", rc, d.line, d.msg);
	rc = slurp(PUT("e2.csv", "a,b\n1,2\n\"x\ny\",\"open\nstill\nopen\n"), &o, got,
		   sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 4 && !strcmp(d.msg, "unterminated quoted field") &&
		 strstr(d.path, "e2.csv"), "rc %d line %lld %s", rc, d.line, d.msg);
	rc = slurp(PUT("e3.csv", "a,b\n1,2\n3,4\n\"ab\"c,d\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 4 && strstr(d.msg, "malformed quoting"),
		 "rc %d line %lld %s", rc, d.line, d.msg);
	rc = slurp(PUT("e4.csv", "a,b\n1,2,3\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 2 && !strcmp(d.msg, "3 fields, but the header has 2"),
		 "rc %d line %lld %s", rc, d.line, d.msg);
	/* a short last row without a newline */
	rc = slurp(PUT("e5.csv", "a,b\n1,2\n3"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 3, "rc %d line %lld %s", rc, d.line, d.msg);
}

static void test_utf8(void)
{
	/* "caf\xC3" cut short, then "\xFF", on line 3 at byte 4+6+3 */
	const char data[] = "a,b\nok,1\ncaf\xC3,\xFF\n";
	const char *p = put("u.csv", data, sizeof(data) - 1);
	struct tk_input_opts o = { .column = "a" };
	char got[256];
	struct tk_diag d;
	int rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 3 && d.offset == 12 &&
		 strstr(d.msg, "invalid UTF-8 at byte 12"), "rc %d line %lld off %lld %s", rc,
		 d.line, d.offset, d.msg);
	o.invalid_utf8_replace = 1;
	o.tmpl = "{a}|{b}";
	o.column = NULL;
	rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[ok|1|0@2]\n[caf\xEF\xBF\xBD|\xEF\xBF\xBD|0@3]"),
		 "rc %d got %s", rc, got);

	const char j[] = "{\"text\":\"x\"}\n{\"text\":\"\xE2\x82\"}\n";
	p = put("u.jsonl", j, sizeof(j) - 1);
	struct tk_input_opts oj = { 0 };
	rc = slurp(p, &oj, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 2 && d.offset == 13 + 9, "rc %d line %lld off %lld",
		 rc, d.line, d.offset);
	oj.invalid_utf8_replace = 1;
	rc = slurp(p, &oj, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[x|0@1]\n[\xEF\xBF\xBD|0@2]"), "rc %d got %s", rc, got);

	const char t[] = "line one\nline \xC0\x80 two\n";
	p = put("u.txt", t, sizeof(t) - 1);
	struct tk_input_opts ot = { 0 };
	rc = slurp(p, &ot, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 2 && d.offset == 14, "rc %d line %lld off %lld",
		 rc, d.line, d.offset);
	ot.invalid_utf8_replace = 1;
	rc = slurp(p, &ot, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[line one\nline \xEF\xBF\xBD\xEF\xBF\xBD two\n|0@1]"),
		 "rc %d got %s", rc, got);
}

static void test_jsonl(void)
{
	const char *p = PUT("j.jsonl", "{\"quote\": \"Hi \\\"there\\\"\\n\", \"n\": 3, \"f\": 0.5,"
			    " \"b\": true, \"z\": null}\n\n   \r\n"
			    "{\"quote\": \"caf\\u00e9\", \"n\": 1e20, \"f\": -2, \"b\": false}\r\n");
	struct tk_input_opts o = { .field = "quote" };
	char got[1024];
	struct tk_diag d;
	int rc = slurp(p, &o, got, sizeof(got), &d);
	TT_REQUIRE(rc == 0, "rc %d %s", rc, d.msg);
	TT_CHECK(!strcmp(got, "[Hi \"there\"\n|0@1]\n[caf\xC3\xA9|0@4]"), "got %s", got);
	o.field = NULL;
	o.tmpl = "{n} {f} {b}";
	rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[3 0.5 True|0@1]\n[1e+20 -2 False|0@4]"), "rc %d got %s",
		 rc, got);
	o.tmpl = "{quote}{z}";
	rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 1 && !strcmp(d.msg, "field 'z' is null, not a string"),
		 "rc %d %s", rc, d.msg);
	o.tmpl = NULL;
	o.column = "qoute"; /* the CSV name works for JSONL too */
	rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 1 &&
		 !strcmp(d.msg, "no field 'qoute' (fields: quote, n, f, b, z)"), "rc %d %s", rc, d.msg);
	o.column = NULL;
	o.prompt = "quote";
	o.response = "n";
	rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[Hi \"there\"\n3|11@1]\n[caf\xC3\xA9" "1e+20|5@4]"),
		 "rc %d got %s", rc, got);
}

static void test_jsonl_errors(void)
{
	struct tk_input_opts o = { 0 };
	char got[256];
	struct tk_diag d;
	int rc = slurp(PUT("j1.jsonl", "{\"text\":\"a\"}\n{\"text\":\"b\",}\n"), &o, got,
		       sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 2 && strstr(d.msg, "not JSON"), "rc %d %lld %s", rc,
		 d.line, d.msg);
	rc = slurp(PUT("j2.jsonl", "{\"text\":\"a\"}\n\n[1,2]\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 3 && strstr(d.msg, "not a JSON object"),
		 "rc %d %lld %s", rc, d.line, d.msg);
	rc = slurp(PUT("j3.jsonl", "{\"text\":\"a\"} {\"text\":\"b\"}\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 1 && strstr(d.msg, "text after"), "rc %d %s", rc,
		 d.msg);
	rc = slurp(PUT("j4.jsonl", "{\"text\":\"a\"}\n{\"text\":[\"b\"]}\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 2 && strstr(d.msg, "an array"), "rc %d %s", rc,
		 d.msg);
	rc = slurp(PUT("j5.jsonl", "{\"prompt\":\"p\",\"completion\":\"c\"}\n"), &o, got,
		   sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[pc|1@1]"), "rc %d got %s", rc, got);
	rc = slurp(PUT("j6.jsonl", "{\"a\":\"p\",\"b\":\"c\"}\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && d.line == 1 && strstr(d.msg, "(fields: a, b); choose one"), "rc %d %s", rc,
		 d.msg);
}

static void test_text(void)
{
	const char *p = PUT("x.txt", "\xEF\xBB\xBFone\r\n\ntwo  \nthree");
	struct tk_input_opts o = { 0 };
	char got[256];
	struct tk_diag d;
	int rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[one\r\n\ntwo  \nthree|0@1]"), "rc %d got %s", rc, got);
	o.split_lines = 1;
	rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[one|0@1]\n[two  |0@3]\n[three|0@4]"), "rc %d got %s", rc,
		 got);
	o.split_lines = 0;
	rc = slurp(PUT("empty.txt", ""), &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !got[0], "rc %d got %s", rc, got);
	o.column = "x";
	rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL, "rc %d", rc);
	o.column = NULL;
	o.format = TK_INPUT_CSV; /* forced */
	rc = slurp(PUT("forced.txt", "text\nhi\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[hi|0@2]"), "rc %d got %s", rc, got);
	rc = slurp("/nonexistent/x.txt", &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_IO && d.sys_errno, "rc %d", rc);
}

static void test_format_of(void)
{
	TT_CHECK(tk_input_format_of("a/b.CSV") == TK_INPUT_CSV, "csv");
	TT_CHECK(tk_input_format_of("b.jsonl") == TK_INPUT_JSONL, "jsonl");
	TT_CHECK(tk_input_format_of("b.json") == TK_INPUT_JSONL, "json");
	TT_CHECK(tk_input_format_of("b.ndjson") == TK_INPUT_JSONL, "ndjson");
	TT_CHECK(tk_input_format_of("b.csv.d/x") == TK_INPUT_TEXT, "dir");
	TT_CHECK(tk_input_format_of("-") == TK_INPUT_TEXT, "stdin");
}

static void test_tmpl_errors(void)
{
	struct tk_tmpl t;
	struct tk_diag d;
	static const struct {
		const char *src, *msg;
		long long at;
	} bad[] = {
		{ "a {b", "unclosed {", 2 },
		{ "a {b {c}", "unclosed {", 2 },
		{ "x}", "a lone }", 1 },
		{ "{}", "empty {}", 0 },
		{ "a\\qb", "unknown escape", 1 },
		{ "ab\\", "a lone \\ at the end", 2 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = tk_tmpl_parse(&t, bad[i].src, &d);
		TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, bad[i].msg) && d.offset == bad[i].at,
			 "'%s': rc %d msg %s at %lld", bad[i].src, rc, d.msg, d.offset);
	}
	int rc = tk_tmpl_parse(&t, "{a}{b}{a}\\t", &d);
	TT_REQUIRE(rc == 0, "rc %d", rc);
	TT_CHECK(t.n_names == 2 && !strcmp(t.names[0], "a") && !strcmp(t.names[1], "b"), "names");
	const char *vals[] = { "1", "22" };
	size_t lens[] = { 1, 2 };
	struct tk_buf b = { 0 };
	TT_CHECK(tk_tmpl_render(&t, vals, lens, &b) == 0 && !strcmp(b.data, "1221\t"), "%s", b.data);
	tk_buf_free(&b);
	tk_tmpl_free(&t);
}

/* Many rows through the streaming reader: every one comes out, in order,
 * with the right line numbers, though rows are queued a line at a time. */
static void test_csv_many(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/many.csv", tt_tmpdir());
	FILE *fp = fopen(path, "wb");
	TT_REQUIRE(fp, "fopen");
	fputs("n,t\n", fp);
	for (int i = 0; i < 20000; i++)
		fprintf(fp, i % 7 ? "%d,row %d\n" : "%d,\"row\n%d\"\n", i, i);
	fclose(fp);
	struct tk_input_opts o = { .column = "t" };
	tk_input_t *in;
	struct tk_diag d;
	TT_REQUIRE(tk_input_open(&in, path, &o, &d) == 0, "%s", d.msg);
	struct tk_example ex;
	long long line = 2;
	int i = 0, rc;
	char want[64];
	while ((rc = tk_input_next(in, &ex, &d)) == 1) {
		snprintf(want, sizeof(want), i % 7 ? "row %d" : "row\n%d", i);
		TT_CHECK(!strcmp(ex.text, want) && ex.line == line, "row %d: %s @%lld", i, ex.text,
			 ex.line);
		line += i % 7 ? 1 : 2;
		i++;
	}
	TT_CHECK(rc == 0 && i == 20000, "rc %d rows %d", rc, i);
	tk_input_free(in);
}

/* A field picked because the first line has only it is read by name from
 * every later line (the name once pointed into the first line's freed
 * parse tree). */
static void test_jsonl_auto_field(void)
{
	struct tk_input_opts o = { 0 };
	char got[256];
	struct tk_diag d;
	int rc = slurp(PUT("af.jsonl", "{\"quote\":\"first\"}\n"
			   "{\"zz\":\"WRONG\",\"quote\":\"RIGHT\"}\n"
			   "{\"quote\":\"x\",\"a\":\"WRONG\",\"b\":\"WRONG\"}\n"),
		       &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[first|0@1]\n[RIGHT|0@2]\n[x|0@3]"), "rc %d %s got %s",
		 rc, d.msg, got);
	rc = slurp(PUT("af2.jsonl", "{\"quote\":\"first\"}\n{\"zz\":\"WRONG\"}\n"), &o, got,
		   sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 2 && !strcmp(d.msg, "no field 'quote' (fields: zz)"),
		 "rc %d line %lld %s", rc, d.line, d.msg);
}

/* Numbers become the text Python gives them, str(json.loads(line)[f]):
 * integers as written, floats as repr (the goldens come from Python,
 * tests/fixtures/input/gen-numbers.py). */
static void test_jsonl_numbers(void)
{
	char want[256];
	FILE *fp = fopen(tt_fixture("input/numbers.expected"), "r");
	TT_REQUIRE(fp, "no input/numbers.expected");
	struct tk_input_opts o = { .field = "n" };
	tk_input_t *in;
	struct tk_diag d;
	TT_REQUIRE(tk_input_open(&in, tt_fixture("input/numbers.jsonl"), &o, &d) == 0, "%s", d.msg);
	struct tk_example ex;
	int rc, n = 0, bad = 0;
	while ((rc = tk_input_next(in, &ex, &d)) == 1) {
		if (!fgets(want, sizeof(want), fp))
			break;
		want[strcspn(want, "\n")] = '\0';
		n++;
		if (strcmp(ex.text, want) && bad++ < 10)
			TT_CHECK(0, "line %lld: got %s, Python gives %s", ex.line, ex.text, want);
	}
	TT_CHECK(rc == 0 && n == 409 && !bad, "rc %d (%s), %d lines, %d wrong", rc, d.msg, n, bad);
	tk_input_free(in);
	fclose(fp);

	/* booleans as Python writes them; a template mixes strings and numbers */
	char got[256];
	struct tk_input_opts t = { .tmpl = "{a} {b} {c} {d}" };
	rc = slurp(PUT("nb.jsonl", "{\"a\":true,\"b\":false,\"c\":\"1e400\",\"d\":1e400}\n"
		       "{\"a\":-0,\"b\":1E5,\"c\":123456789012345678901234567890,\"d\":-0.0}\n"),
		   &t, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[True False 1e400 inf|0@1]\n"
			 "[0 100000.0 123456789012345678901234567890 -0.0|0@2]"), "rc %d %s got %s",
		 rc, d.msg, got);

	/* what cJSON lets through but JSON (and json.loads) does not */
	static const char *const bad_num[] = { "01", "-01", "1.", "-.5", "1.e5", "00.5" };
	for (size_t i = 0; i < sizeof(bad_num) / sizeof(bad_num[0]); i++) {
		char line[64], msg[128];
		int k = snprintf(line, sizeof(line), "{\"text\":\"a\"}\n{\"x\":1, \"text\": %s}\n",
				 bad_num[i]);
		struct tk_input_opts ot = { 0 };
		rc = slurp(put("nx.jsonl", line, (size_t)k), &ot, got, sizeof(got), &d);
		snprintf(msg, sizeof(msg), "not JSON (bad number %s at character 17)", bad_num[i]);
		TT_CHECK(rc == TK_E_FORMAT && d.line == 2 && !strcmp(d.msg, msg),
			 "%s: rc %d line %lld %s", bad_num[i], rc, d.line, d.msg);
	}
}

/* CSV fields are text as they stand, numbers or not. */
static void test_csv_numbers(void)
{
	char got[256];
	struct tk_diag d;
	struct tk_input_opts o = { .tmpl = "{a}|{b}|{c}|{d}" };
	int rc = slurp(PUT("cn.csv", "a,b,c,d\n1e400,-0,123456789012345678901234567890,1E5\n"),
		       &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[1e400|-0|123456789012345678901234567890|1E5|0@2]"),
		 "rc %d got %s", rc, got);
}

/* A NUL character cannot be part of a text: cJSON would cut the string
 * short there, so it is an error naming the line (as a raw NUL byte,
 * which JSON does not allow, is). */
static void test_jsonl_nul(void)
{
	char got[256];
	struct tk_diag d;
	struct tk_input_opts o = { 0 };
	int rc = slurp(PUT("z1.jsonl", "{\"text\":\"ok\\\\u0000\"}\n{\"text\":\"a\\u0000b\"}\n"), &o,
		       got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 2 && !strcmp(got, "[ok\\u0000|0@1]") &&
		 strstr(d.msg, "\\u0000 (a NUL character) at character 11"), "rc %d line %lld %s got %s",
		 rc, d.line, d.msg, got);
	const char raw[] = "{\"text\":\"a\0b\"}\n";
	rc = slurp(put("z2.jsonl", raw, sizeof(raw) - 1), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 1 && strstr(d.msg, "a NUL byte at character 11"),
		 "rc %d line %lld %s", rc, d.line, d.msg);
	struct tk_input_opts oc = { .messages = "m" }; /* nested strings too */
	rc = slurp(PUT("z3.jsonl", "{\"m\":[{\"role\":\"user\",\"content\":\"\\u0000\"}]}\n"), &oc,
		   got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 1 && strstr(d.msg, "NUL"), "rc %d %s", rc, d.msg);
}

/* A field given twice: json.loads keeps the last, cJSON the first and
 * Arrow's JSON reader (datasets) refuses; so does tk. */
static void test_jsonl_duplicate(void)
{
	char got[256];
	struct tk_diag d;
	struct tk_input_opts o = { 0 };
	int rc = slurp(PUT("dup.jsonl", "{\"text\":\"a\",\"x\":1,\"x\":2}\n"
			   "{\"text\":\"first\",\"text\":\"last\"}\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_FORMAT && d.line == 2 && !strcmp(got, "[a|0@1]") &&
		 !strcmp(d.msg, "field 'text' given twice"), "rc %d line %lld %s got %s", rc, d.line,
		 d.msg, got);
}

/* Line ends, a last line without one, blank lines, a byte order mark. */
static void test_jsonl_lines(void)
{
	char got[256];
	struct tk_diag d;
	struct tk_input_opts o = { 0 };
	int rc = slurp(PUT("le.jsonl", "\xEF\xBB\xBF{\"text\":\"a\\r\\n\"}\r\n\r\n \t\n"
			   "{\"text\" : \"b\" , \"n\" :\t1.5 }\r\n{\"text\":\"c\"}"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[a\r\n|0@1]\n[b|0@4]\n[c|0@5]"), "rc %d %s got %s", rc,
		 d.msg, got);
	o.tmpl = "{n}{text}";
	rc = slurp(PUT("le2.jsonl", "{ \"n\" :\t-1.50e+0 , \"text\":\"x\"}\r\n"), &o, got,
		   sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[-1.5x|0@1]"), "rc %d %s got %s", rc, d.msg, got);
}

/* One quoted field of 4 MB on one line (libcsv grows its buffer by a fixed
 * 128 bytes unless told otherwise: quadratic copying) comes out whole, and
 * so does one of many lines. */
static char big_char(size_t i)
{
	return i % 500 == 7 ? '"' : (char)('a' + (int)(i % 26));
}

static void test_csv_big_field(void)
{
	const size_t big = 4u << 20;
	char path[512];
	snprintf(path, sizeof(path), "%s/big.csv", tt_tmpdir());
	for (int multi = 0; multi < 2; multi++) {
		FILE *fp = fopen(path, "wb");
		TT_REQUIRE(fp, "fopen");
		fputs("id,text\n1,\"", fp);
		for (size_t i = 0; i < big; i++) {
			char c = multi && i % 100 == 99 ? '\n' : big_char(i);
			fputs(c == '"' ? "\"\"" : (char[2]){ c, 0 }, fp);
		}
		fputs("\"\n2,short\n", fp);
		fclose(fp);
		struct tk_input_opts o = { 0 };
		tk_input_t *in;
		struct tk_diag d;
		TT_REQUIRE(tk_input_open(&in, path, &o, &d) == 0, "%s", d.msg);
		struct tk_example ex;
		int rc = tk_input_next(in, &ex, &d);
		int ok = rc == 1 && ex.len == big && ex.line == 2;
		for (size_t i = 0; ok && i < big; i++)
			ok = ex.text[i] == (multi && i % 100 == 99 ? '\n' : big_char(i));
		TT_CHECK(ok, "multi %d: rc %d len %zu line %lld", multi, rc, rc == 1 ? ex.len : 0,
			 rc == 1 ? ex.line : 0);
		rc = tk_input_next(in, &ex, &d);
		long long line = 3 + (multi ? (long long)(big / 100) : 0);
		TT_CHECK(rc == 1 && !strcmp(ex.text, "short") && ex.line == line,
			 "multi %d: rc %d %s line %lld", multi, rc, rc == 1 ? ex.text : d.msg,
			 rc == 1 ? ex.line : 0);
		tk_input_free(in);
	}
}

/* A file holding one array of objects reads as JSONL does: each record an
 * example numbered by the line where it starts, records spanning lines or
 * sharing one, strings holding brackets, braces and escaped quotes. */
static void test_json_array(void)
{
	char got[512];
	struct tk_diag d;
	struct tk_input_opts o = { 0 };
	int rc = slurp(PUT("arr.json", "\xEF\xBB\xBF\n [\n  {\"text\": \"a ] } [ {\",\n   \"n\": 1},"
			   " {\"text\": \"b \\\"}\\\" \\\\\"}\r\n, {\n\"text\"\n:\n\"c\"\n}\n]\n\n"), &o,
		       got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[a ] } [ {|0@3]\n[b \"}\" \\|0@4]\n[c|0@5]"),
		 "rc %d %s got %s", rc, d.msg, got);
	rc = slurp(PUT("one.json", "[{\"text\":\"x\"},{\"text\":\"y\"}]"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[x|0@1]\n[y|0@1]"), "rc %d %s got %s", rc, d.msg, got);
	rc = slurp(PUT("empty.json", " [ ]\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !got[0], "rc %d %s got %s", rc, d.msg, got);
	struct tk_input_opts p = { .prompt_tmpl = "Q: {q}\\n", .response = "a" };
	rc = slurp(PUT("pa.json", "[{\"q\": \"1+1?\", \"a\": 2},\n {\"q\": \"x\", \"a\": \"y\"}]"), &p,
		   got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[Q: 1+1?\n2|8@1]\n[Q: x\ny|5@2]"), "rc %d %s got %s", rc,
		 d.msg, got);
}

static void test_json_array_errors(void)
{
	static const struct {
		const char *src, *msg;
		long long line;
	} bad[] = {
		{ "[\n{\"text\": \"a\"},\n{\"x\": \"b\"}]", "record 2: no field 'text' (fields: x)", 3 },
		{ "[\n{\"text\": \"a\"},\n{\"text\":\n tru}]", "record 2: not JSON", 4 },
		{ "[{\"text\": \"a\"}, 3]", "record 2: not a JSON object (an array of objects "
		  "expected)", 1 },
		{ "[{\"text\": \"a\"}\n{\"text\": \"b\"}]", "not JSON (',' or ']' expected after "
		  "record 1)", 2 },
		{ "[{\"text\": \"a\"},\n]", "not JSON (a comma before the closing ])", 2 },
		{ "[{\"text\": \"a\"},\n{\"text\": \"b\"}", "not JSON (the array never ends: ']' "
		  "expected)", 2 },
		{ "[{\"text\": \"a\"},\n{\"text\": \"b]\n", "record 2: not JSON (it never ends)", 2 },
		{ "[{\"text\": \"a\"}]\n[]", "text after the JSON array (one array of objects, or "
		  "one object per line, expected)", 2 },
		{ "[{\"text\": \"a\", \"text\": \"b\"}]", "record 1: field 'text' given twice", 1 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char got[256];
		struct tk_diag d;
		struct tk_input_opts o = { 0 };
		int rc = slurp(put("bad.json", bad[i].src, strlen(bad[i].src)), &o, got, sizeof(got),
			       &d);
		TT_CHECK(rc == TK_E_FORMAT && d.line == bad[i].line && !strcmp(d.msg, bad[i].msg) &&
			 strstr(d.path, "bad.json"), "%zu: rc %d line %lld %s", i, rc, d.line, d.msg);
	}
}

/* Each half of a prompt/response pair from a column or a template; the
 * prompt's bytes are prompt_len, nothing is put between the two. */
static void test_pair_templates(void)
{
	const char *p = PUT("pt.csv", "q,a,x\nWhat?,This.,{y}\n");
	char got[256];
	struct tk_diag d;
	struct tk_input_opts o = { .prompt_tmpl = "Q: {q}\\n{{{x}}}\\n", .response_tmpl = "A: {a}{q}" };
	int rc = slurp(p, &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[Q: What?\n{{y}}\nA: This.What?|15@2]"), "rc %d %s got %s",
		 rc, d.msg, got);
	struct tk_input_opts o2 = { .prompt = "q", .response_tmpl = " -> {a}" };
	rc = slurp(p, &o2, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[What? -> This.|5@2]"), "rc %d %s got %s", rc, d.msg, got);
	struct tk_input_opts o3 = { .prompt_tmpl = "{q}\\n", .response = "a" };
	rc = slurp(p, &o3, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[What?\nThis.|6@2]"), "rc %d %s got %s", rc, d.msg, got);
	struct tk_input_opts e1 = { .prompt_tmpl = "{qq}", .response = "a" };
	rc = slurp(p, &e1, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && !strcmp(d.msg, "no column 'qq' (columns: q, a, x)"), "rc %d %s",
		 rc, d.msg);
	struct tk_input_opts e2 = { .prompt_tmpl = "{q}", .prompt = "q", .response = "a" };
	rc = slurp(p, &e2, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "column or a template, not both"), "rc %d %s", rc,
		 d.msg);
	struct tk_input_opts e3 = { .response_tmpl = "{a}" };
	rc = slurp(p, &e3, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "needs a response"), "rc %d %s", rc, d.msg);
	struct tk_input_opts e4 = { .response_tmpl = "{a", .prompt = "q" };
	rc = slurp(p, &e4, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && !strncmp(d.msg, "response template: unclosed {", 29), "rc %d %s",
		 rc, d.msg);
	struct tk_input_opts e5 = { .tmpl = "{a}", .prompt_tmpl = "{q}", .response = "a" };
	rc = slurp(p, &e5, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "choose one"), "rc %d %s", rc, d.msg);
}

/* --delimiter, a tab for .tsv, and the advice when the header holds another. */
static void test_csv_delimiter(void)
{
	char got[256];
	struct tk_diag d;
	struct tk_input_opts o = { .column = "b", .delimiter = ';' };
	int rc = slurp(PUT("sc.csv", "a;b\n\"x;y\";\"1,2\"\n"), &o, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[1,2|0@2]"), "rc %d %s got %s", rc, d.msg, got);
	struct tk_input_opts t = { .column = "b" };
	rc = slurp(PUT("t.tsv", "a\tb\nx y\t 1,2\n"), &t, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[ 1,2|0@2]"), "rc %d %s got %s", rc, d.msg, got);
	TT_CHECK(tk_input_format_of("x.TSV") == TK_INPUT_CSV, "format of .tsv");
	rc = slurp(PUT("sc2.csv", "a;b\n1;2\n"), &t, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && !strcmp(d.msg, "no column 'b' (columns: a;b); the header looks "
					     "';'-separated: try --delimiter ';'"), "rc %d %s", rc, d.msg);
	rc = slurp(PUT("tab.csv", "a\tb\n1\t2\n"), &t, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "looks tab-separated: try --delimiter '\\t'"),
		 "rc %d %s", rc, d.msg);
	struct tk_input_opts none = { 0 };
	rc = slurp(PUT("sc3.csv", "a|b|c\n1|2|3\n"), &none, got, sizeof(got), &d);
	TT_CHECK(rc == 0 && !strcmp(got, "[1|2|3|0@2]"), "one column: rc %d %s", rc, d.msg);
	rc = slurp(PUT("sc4.csv", "a,b\n1,2\n"), &t, got, sizeof(got), &d);
	TT_CHECK(rc == 0, "rc %d %s", rc, d.msg);
	struct tk_input_opts pipe = { .column = "z", .delimiter = '|' };
	rc = slurp(PUT("sc5.csv", "a,b\n1,2\n"), &pipe, got, sizeof(got), &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "(columns: a,b); the header looks ','-separated"),
		 "rc %d %s", rc, d.msg);
}

int main(void)
{
	TT_RUN(test_csv_rfc4180);
	TT_RUN(test_csv_template);
	TT_RUN(test_csv_prompt_response);
	TT_RUN(test_csv_default_column);
	TT_RUN(test_csv_errors);
	TT_RUN(test_utf8);
	TT_RUN(test_jsonl);
	TT_RUN(test_jsonl_errors);
	TT_RUN(test_text);
	TT_RUN(test_format_of);
	TT_RUN(test_tmpl_errors);
	TT_RUN(test_csv_many);
	TT_RUN(test_jsonl_auto_field);
	TT_RUN(test_jsonl_numbers);
	TT_RUN(test_csv_numbers);
	TT_RUN(test_jsonl_nul);
	TT_RUN(test_jsonl_duplicate);
	TT_RUN(test_jsonl_lines);
	TT_RUN(test_csv_big_field);
	TT_RUN(test_json_array);
	TT_RUN(test_json_array_errors);
	TT_RUN(test_pair_templates);
	TT_RUN(test_csv_delimiter);
	return tt_done();
}

/* test-options.c - the option table parser and the checked number parsers. */
#include "base/options.h"
#include "tt.h"

struct o {
	int32_t n;
	double lr;
	const char *out, *mode;
	int pad, eos, quiet;
	struct tk_strlist mods;
};

static int parse(struct o *o, int argc, const char **args, int *npos, struct tk_diag *d)
{
	static const char *argv[32];
	const struct tk_opt opts[] = {
		TK_OPT_INT32('s', "seq-len", &o->n, "N", 1, 1 << 20, "tokens"),
		TK_OPT_DOUBLE(0, "learning-rate", &o->lr, "LR", 0, 1, "lr"),
		TK_OPT_STR('o', "output", &o->out, "FILE", "out"),
		TK_OPT_CHOICE(0, "mode", &o->mode, "pack|pad", "mode"),
		TK_OPT_BOOL(0, "pad", &o->pad, "pad"),
		TK_OPT_BOOL(0, "add-eos", &o->eos, "eos"),
		TK_OPT_BOOL('q', "quiet", &o->quiet, "quiet"),
		TK_OPT_LIST(0, "target", &o->mods, "M", "module"),
		TK_OPT_HELP(),
		TK_OPT_END,
	};
	argv[0] = "prog";
	for (int i = 0; i < argc; i++)
		argv[i + 1] = args[i];
	return tk_options_parse(argc + 1, (char **)argv, opts, npos, d);
}

static void test_forms(void)
{
	struct o o = { .eos = 1 };
	struct tk_diag d;
	int n;
	const char *a[] = { "-s", "128", "in.txt", "--learning-rate=2e-4", "-oout.tks", "--pad",
			    "--no-add-eos", "--target", "q_proj", "--target=v_proj", "-q",
			    "--mode", "pad", "--", "--not-an-option", "-" };
	TT_REQUIRE(parse(&o, 16, a, &n, &d) == TK_OPT_DONE, "%s", d.msg);
	TT_CHECK(o.n == 128 && o.lr == 2e-4, "n %d lr %g", o.n, o.lr);
	TT_CHECK(!strcmp(o.out, "out.tks"), "%s", o.out);
	TT_CHECK(o.pad == 1 && o.eos == 0 && o.quiet == 1, "bools");
	TT_CHECK(o.mods.n == 2 && !strcmp(o.mods.v[1], "v_proj"), "list");
	TT_CHECK(!strcmp(o.mode, "pad"), "choice");
	TT_CHECK(n == 3, "positional %d", n);
	free(o.mods.v);
}

static void test_errors(void)
{
	struct o o = { 0 };
	struct tk_diag d;
	int n;
	const char *c1[] = { "--seq-len", "0" };
	TT_CHECK(parse(&o, 2, c1, &n, &d) == TK_E_INVAL && strstr(d.msg, "--seq-len: '0'"), "%s", d.msg);
	const char *c2[] = { "--seq-len", "12abc" };
	TT_CHECK(parse(&o, 2, c2, &n, &d) == TK_E_INVAL, "trailing junk accepted");
	const char *c3[] = { "--sequence" };
	TT_CHECK(parse(&o, 1, c3, &n, &d) == TK_E_INVAL && strstr(d.msg, "unknown option '--sequence'"), "%s", d.msg);
	const char *c4[] = { "--output" };
	TT_CHECK(parse(&o, 1, c4, &n, &d) == TK_E_INVAL && strstr(d.msg, "needs a value"), "%s", d.msg);
	const char *c5[] = { "--mode", "zip" };
	TT_CHECK(parse(&o, 2, c5, &n, &d) == TK_E_INVAL && strstr(d.msg, "pack|pad"), "%s", d.msg);
	const char *c6[] = { "--learning-rate", "nan" };
	TT_CHECK(parse(&o, 2, c6, &n, &d) == TK_E_INVAL, "nan accepted");
	const char *c7[] = { "--no-output" };
	TT_CHECK(parse(&o, 1, c7, &n, &d) == TK_E_INVAL, "--no- on a string accepted");
	const char *c8[] = { "-x" };
	TT_CHECK(parse(&o, 1, c8, &n, &d) == TK_E_INVAL && strstr(d.msg, "'-x'"), "%s", d.msg);
	const char *c9[] = { "--pad=maybe" };
	TT_CHECK(parse(&o, 1, c9, &n, &d) == TK_E_INVAL, "bad bool accepted");
	const char *h[] = { "in", "--help" };
	TT_CHECK(parse(&o, 2, h, &n, &d) == TK_OPT_SHOW_HELP, "help");
	free(o.mods.v);
}

/* HfArgumentParser's snake_case spellings, and the nearest option named
 * for a typo (not for a name far from every option). */
static void test_hf_and_near(void)
{
	struct o o = { .eos = 1 };
	struct tk_diag d;
	int n;
	const char *a[] = { "--seq_len", "64", "--learning_rate=0.5", "--no_add_eos" };
	TT_REQUIRE(parse(&o, 4, a, &n, &d) == TK_OPT_DONE, "%s", d.msg);
	TT_CHECK(o.n == 64 && o.lr == 0.5 && o.eos == 0, "n %d lr %g eos %d", o.n, o.lr, o.eos);
	const char *b[] = { "--learning-rat", "1" };
	TT_CHECK(parse(&o, 2, b, &n, &d) == TK_E_INVAL &&
		 !strcmp(d.msg, "unknown option '--learning-rat'; did you mean --learning-rate?"),
		 "%s", d.msg);
	const char *c[] = { "--outptu", "x" };
	TT_CHECK(parse(&o, 2, c, &n, &d) == TK_E_INVAL && strstr(d.msg, "did you mean --output?"),
		 "%s", d.msg);
	const char *e[] = { "--no-such-option" };
	TT_CHECK(parse(&o, 1, e, &n, &d) == TK_E_INVAL && !strstr(d.msg, "did you mean"), "%s",
		 d.msg);
	/* a one-letter difference in a short name is near; two are not */
	const char *f[] = { "--pads" }, *g[] = { "--pxds" };
	TT_CHECK(parse(&o, 1, f, &n, &d) == TK_E_INVAL && strstr(d.msg, "--pad?"), "%s", d.msg);
	TT_CHECK(parse(&o, 1, g, &n, &d) == TK_E_INVAL && !strstr(d.msg, "did you"), "%s", d.msg);
	free(o.mods.v);
}

static void test_numbers(void)
{
	long long v;
	double x;
	/* decimal only, as Python's int(): no octal, no hex */
	TT_CHECK(tk_options_parse_ll("010", 0, 100, &v) == 0 && v == 10, "010 read as %lld", v);
	TT_CHECK(tk_options_parse_ll("08", 0, 100, &v) == 0 && v == 8, "08 refused");
	TT_CHECK(tk_options_parse_ll("0x10", 0, 100, &v) == TK_E_INVAL, "hex accepted");
	TT_CHECK(tk_options_parse_ll("+5", 0, 100, &v) == 0 && v == 5, "+5");
	TT_CHECK(tk_options_parse_ll("-5", -10, 100, &v) == 0 && v == -5, "-5");
	const char *bad_ll[] = { " 5", "5 ", "1_000", "+", "-", "5.0", "1e3", "0b1", "--5" };
	for (size_t i = 0; i < sizeof(bad_ll) / sizeof(bad_ll[0]); i++)
		TT_CHECK(tk_options_parse_ll(bad_ll[i], -100, 10000, &v) == TK_E_INVAL, "'%s' accepted",
			 bad_ll[i]);
	const char *bad_d[] = { "nan", "inf", "-inf", "infinity", "0x1p-3", " 0.5", "0.5 ",
				".", "1e", "1e+", "e5", "1_0", "", "+" };
	for (size_t i = 0; i < sizeof(bad_d) / sizeof(bad_d[0]); i++)
		TT_CHECK(tk_options_parse_double(bad_d[i], -1e300, 1e300, &x) == TK_E_INVAL, "'%s' accepted",
			 bad_d[i]);
	const char *good_d[] = { "1", "-2", "+0.5", ".5", "5.", "2e-4", "2E+4", "007.50" };
	const double want_d[] = { 1, -2, 0.5, 0.5, 5, 2e-4, 2e4, 7.5 };
	for (size_t i = 0; i < sizeof(good_d) / sizeof(good_d[0]); i++)
		TT_CHECK(tk_options_parse_double(good_d[i], -1e300, 1e300, &x) == 0 && x == want_d[i],
			 "'%s' refused or misread", good_d[i]);
	TT_CHECK(tk_options_parse_ll("99999999999999999999", 0, 1LL << 62, &v) == TK_E_INVAL, "overflow");
	TT_CHECK(tk_options_parse_ll("", 0, 1, &v) == TK_E_INVAL, "empty");
	TT_CHECK(tk_options_parse_double("1e400", 0, 1e300, &x) == TK_E_INVAL, "inf");
	TT_CHECK(tk_options_parse_double("0.05", 0, 1, &x) == 0 && x == 0.05, "0.05");
}

static void test_usage_text(void)
{
	struct o o = { 0 };
	const struct tk_opt opts[] = {
		TK_OPT_INT32('s', "seq-len", &o.n, "N", 1, 10, "tokens per block"),
		TK_OPT_BOOL(0, "pad", &o.pad, "one document per block"),
		TK_OPT_END,
	};
	const char *usage[] = { "tk-x [OPTIONS] FILE", "tk-x --help", NULL };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	tk_options_usage(f, usage, "About.", opts);
	fclose(f);
	TT_CHECK(strstr(buf, "usage: tk-x [OPTIONS] FILE\n   or: tk-x --help\n"), "%s", buf);
	TT_CHECK(strstr(buf, "  -s, --seq-len N") && strstr(buf, "tokens per block"), "%s", buf);
	TT_CHECK(strstr(buf, "      --pad "), "%s", buf);
	free(buf);
}

static void test_json_config(void)
{
	struct o o = { .eos = 1 };
	struct tk_diag d;
	const struct tk_opt opts[] = {
		TK_OPT_INT32('s', "seq-len", &o.n, "N", 1, 1 << 20, "tokens"),
		TK_OPT_DOUBLE(0, "learning-rate", &o.lr, "LR", 0, 1, "lr"),
		TK_OPT_STR('o', "output-dir", &o.out, "DIR", "out"),
		TK_OPT_CHOICE(0, "mode", &o.mode, "pack|pad", "mode"),
		TK_OPT_BOOL(0, "add-eos", &o.eos, "eos"),
		TK_OPT_LIST(0, "target-modules", &o.mods, "M", "module"),
		TK_OPT_HELP(),
		TK_OPT_END,
	};
	const char *ignore[] = { "report_to", NULL };
	void *hold;
	TT_CHECK(tk_options_json_key_taken(opts, ignore) == NULL, "ignore list apart from the options");
	const char *clash[] = { "report_to", "add_eos", NULL };
	const char *taken = tk_options_json_key_taken(opts, clash);
	TT_CHECK(taken && !strcmp(taken, "add_eos"), "an ignored key that is an option: %s",
		 taken ? taken : "(none)");
	const char *ok = "{\"seq_len\": 256, \"learning_rate\": 2e-4, \"output_dir\": \"out\","
			 " \"mode\": \"pad\", \"add_eos\": false, \"report_to\": [\"none\"],"
			 " \"target_modules\": [\"q_proj\", \"v_proj\"], \"seq-len\": null}";
	TT_REQUIRE(tk_options_apply_json(opts, ok, "train.json", ignore, &hold, &d) == 0, "%s", d.msg);
	TT_CHECK(o.n == 256 && o.lr == 2e-4 && !strcmp(o.out, "out") && !strcmp(o.mode, "pad") &&
			 o.eos == 0, "values");
	TT_CHECK(o.mods.n == 2 && !strcmp(o.mods.v[1], "v_proj"), "list");
	tk_options_json_free(hold);
	/* an object for a string option (lr_scheduler_kwargs) arrives as its text */
	const char *obj = "{\"output_dir\": {\"num_cycles\": 2, \"a\": [1, \"x\"]}, \"seq_len\": 8}";
	TT_REQUIRE(tk_options_apply_json(opts, obj, "train.json", NULL, &hold, &d) == 0, "%s", d.msg);
	TT_CHECK(!strcmp(o.out, "{\"num_cycles\":2,\"a\":[1,\"x\"]}") && o.n == 8, "%s %d",
		 o.out, o.n);
	tk_options_json_free(hold);
	struct { const char *json, *want; } bad[] = {
		{ "{\"learning_rat\": 1}", "unknown key 'learning_rat'" },
		{ "{\"seq_len\": 0}", "key 'seq_len'" },
		{ "{\"seq_len\": \"x\"}", "not an integer" },
		{ "{\"output_dir\": 3}", "expected a string" },
		{ "{\"mode\": {\"a\": 1}}", "expected a string" },
		{ "{\"seq_len\": [1]}", "a list is not allowed" },
		{ "[1]", "not a JSON object" },
		{ "{\"help\": true}", "unknown key 'help'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = tk_options_apply_json(opts, bad[i].json, "train.json", NULL, &hold, &d);
		TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, bad[i].want) && !strcmp(d.path, "train.json"),
			 "%s: %d %s", bad[i].json, rc, d.msg);
		TT_CHECK(hold == NULL, "hold kept on failure");
	}
	free(o.mods.v);
}

/* The typed kinds: each writes its own C type, within the table's range
 * narrowed to what the type holds; given marks what was set. */
struct typed {
	int32_t i32;
	uint32_t u32;
	int64_t i64;
	uint64_t u64;
	size_t sz;
	float f;
	double x;
	int b, b2;
	struct tk_strlist l;
	const char *s;
	int given_f, given_b, given_any;
};

static int parse_typed(struct typed *t, int argc, const char **args, struct tk_diag *d,
		       const char *json)
{
	static const char *argv[32];
	const struct tk_opt opts[] = {
		TK_OPT_INT32(0, "i32", &t->i32, "N", -1e12, 1e12, "int32", .given = &t->given_any),
		TK_OPT_UINT32(0, "u32", &t->u32, "N", -5, 1e12, "uint32"),
		TK_OPT_INT64(0, "i64", &t->i64, "N", -1e30, 1e30, "int64"),
		TK_OPT_UINT64(0, "u64", &t->u64, "N", -1, 1e30, "uint64"),
		TK_OPT_SIZE(0, "sz", &t->sz, "N", 1, 1 << 20, "size"),
		TK_OPT_FLOAT(0, "f", &t->f, "F", -1e300, 1e300, "float", .given = &t->given_f),
		TK_OPT_DOUBLE(0, "x", &t->x, "X", 0, 1, "double"),
		TK_OPT_BOOL('b', "flag", &t->b, "bool", .given = &t->given_b),
		TK_OPT_BOOL('c', "other", &t->b2, "bool"),
		TK_OPT_LIST(0, "l", &t->l, "M", "list", .given = &t->given_any),
		TK_OPT_STR(0, "s", &t->s, "S", "string", .given = &t->given_any),
		TK_OPT_END,
	};
	if (json) {
		void *hold;
		int rc = tk_options_apply_json(opts, json, "t.json", NULL, &hold, d);
		tk_options_json_free(hold); /* only numbers and booleans below */
		return rc;
	}
	argv[0] = "prog";
	for (int i = 0; i < argc; i++)
		argv[i + 1] = args[i];
	int n;
	return tk_options_parse(argc + 1, (char **)argv, opts, &n, d);
}

static void test_kinds(void)
{
	struct typed t = { .b = 0, .b2 = 0 };
	struct tk_diag d;
	const char *ok[] = { "--i32", "-2147483648", "--u32=4294967295",
			     "--i64", "-9223372036854775808", "--u64", "9223372036854775807",
			     "--sz", "1048576", "--f", "3.5", "--x", "0.25", "-bc", "--l", "a",
			     "--l=b" };
	TT_REQUIRE(parse_typed(&t, 17, ok, &d, NULL) == 0, "%s", d.msg);
	TT_CHECK(t.i32 == INT32_MIN && t.u32 == UINT32_MAX, "%d %u", t.i32, t.u32);
	TT_CHECK(t.i64 == INT64_MIN && t.u64 == (uint64_t)INT64_MAX, "%lld %llu",
		 (long long)t.i64, (unsigned long long)t.u64);
	TT_CHECK(t.sz == 1048576 && t.f == 3.5f && t.x == 0.25, "%zu %g %g", t.sz, t.f, t.x);
	TT_CHECK(t.b == 1 && t.b2 == 1 && t.l.n == 2 && !strcmp(t.l.v[1], "b"), "bools, list");
	TT_CHECK(t.given_f && t.given_b && t.given_any, "given");
	/* beyond the type, whatever the table allows: the type's range is named */
	struct { const char *arg, *val, *want; } bad[] = {
		{ "--i32", "2147483648", "'2147483648' is not an integer in [-2147483648, 2147483647]" },
		{ "--i32", "-2147483649", "in [-2147483648, 2147483647]" },
		{ "--u32", "4294967296", "--u32: '4294967296' is not an integer in [0, 4294967295]" },
		{ "--u32", "-1", "in [0, 4294967295]" },
		{ "--i64", "9223372036854775808", "in [-9223372036854775808, 9223372036854775807]" },
		{ "--u64", "-1", "in [0, 9223372036854775807]" },
		{ "--u64", "18446744073709551615", "in [0, 9223372036854775807]" },
		{ "--sz", "0", "--sz: '0' is not an integer in [1, 1048576]" },
		{ "--sz", "1048577", "in [1, 1048576]" },
		{ "--sz", "1.5", "not an integer" },
		{ "--f", "1e39", "--f: '1e39' is not a number in [-3.40282e+38, 3.40282e+38]" },
		{ "--f", "-1e39", "not a number" },
		{ "--x", "1.0001", "--x: '1.0001' is not a number in [0, 1]" },
		{ "--flag=2", NULL, "--flag: '2' is not true or false" },
		{ "--no-flag=0", NULL, "--no-flag takes no value" },
		{ "--no-f", NULL, "unknown option '--no-f'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct typed u = { .i32 = 7, .u32 = 7, .sz = 7, .f = 7 };
		const char *a[] = { bad[i].arg, bad[i].val };
		int rc = parse_typed(&u, bad[i].val ? 2 : 1, a, &d, NULL);
		TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, bad[i].want), "%s %s: %d %s", bad[i].arg,
			 bad[i].val ? bad[i].val : "", rc, d.msg);
		TT_CHECK(u.i32 == 7 && u.u32 == 7 && u.sz == 7 && u.f == 7 && !u.given_any &&
				 !u.given_f, "%s: a refused value was written", bad[i].arg);
	}
	/* --no-X clears and marks given; an option not given stays unmarked */
	struct typed v = { .b = 1 };
	const char *no[] = { "--no-flag", "--flag=false", "--i64", "5" };
	TT_REQUIRE(parse_typed(&v, 4, no, &d, NULL) == 0, "%s", d.msg);
	TT_CHECK(v.b == 0 && v.given_b && !v.given_f && !v.given_any && v.i64 == 5, "--no-flag");
	/* the JSON of a config file reaches the same kinds */
	struct typed w = { 0 };
	TT_REQUIRE(parse_typed(&w, 0, NULL, &d, "{\"i32\": -3, \"u32\": 4000000000, \"sz\": 64, "
				  "\"f\": 0.5, \"u64\": 12345678901234, \"flag\": true}") == 0,
		   "%s", d.msg);
	TT_CHECK(w.i32 == -3 && w.u32 == 4000000000u && w.sz == 64 && w.f == 0.5f &&
			 w.u64 == 12345678901234ull && w.b == 1 && w.given_f && w.given_b &&
			 w.given_any, "json values");
	struct typed z = { .u32 = 9 };
	TT_CHECK(parse_typed(&z, 0, NULL, &d, "{\"u32\": 4294967296}") == TK_E_INVAL &&
			 strstr(d.msg, "in [0, 4294967295] (key 'u32')") && z.u32 == 9,
		 "%s", d.msg);
	TT_CHECK(parse_typed(&z, 0, NULL, &d, "{\"sz\": 2.5}") == TK_E_INVAL &&
			 strstr(d.msg, "not an integer"), "%s", d.msg);
	free(t.l.v);
}

int main(void)
{
	TT_RUN(test_forms);
	TT_RUN(test_errors);
	TT_RUN(test_hf_and_near);
	TT_RUN(test_numbers);
	TT_RUN(test_usage_text);
	TT_RUN(test_json_config);
	TT_RUN(test_kinds);
	return tt_done();
}

/* test-options.c - the option table parser and the checked number parsers. */
#include "base/options.h"
#include "tt.h"

struct o {
	long long n;
	double lr;
	const char *out, *mode;
	int pad, eos, quiet;
	struct tk_strlist mods;
};

static int parse(struct o *o, int argc, const char **args, int *npos, struct tk_diag *d)
{
	static const char *argv[32];
	const struct tk_opt opts[] = {
		TK_OPT_INT('s', "seq-len", &o->n, "N", 1, 1 << 20, "tokens"),
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
	TT_CHECK(o.n == 128 && o.lr == 2e-4, "n %lld lr %g", o.n, o.lr);
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
	TT_CHECK(o.n == 64 && o.lr == 0.5 && o.eos == 0, "n %lld lr %g eos %d", o.n, o.lr, o.eos);
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
		TK_OPT_INT('s', "seq-len", &o.n, "N", 1, 10, "tokens per block"),
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
		TK_OPT_INT('s', "seq-len", &o.n, "N", 1, 1 << 20, "tokens"),
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
	TT_CHECK(!strcmp(o.out, "{\"num_cycles\":2,\"a\":[1,\"x\"]}") && o.n == 8, "%s %lld",
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

int main(void)
{
	TT_RUN(test_forms);
	TT_RUN(test_errors);
	TT_RUN(test_hf_and_near);
	TT_RUN(test_numbers);
	TT_RUN(test_usage_text);
	TT_RUN(test_json_config);
	return tt_done();
}

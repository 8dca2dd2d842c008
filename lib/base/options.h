/* options.h - command-line options from one declarative table.
 *
 * A tool lists its options once, each bound to a field of the library's
 * options struct, whose *_opts_init() has set the defaults:
 *
 *	struct tk_pack_opts o;
 *	tk_pack_opts_init(&o);
 *	const struct tk_opt opts[] = {
 *		TK_OPT_UINT32('s', "seq-len", &o.seq_len, "N", 1, 1 << 20, "tokens per block"),
 *		TK_OPT_BOOL(0, "pad", &o.pad, "one document per block"),
 *		TK_OPT_END,
 *	};
 *
 * and tk_options_parse() writes the values given straight into those
 * fields, accepting `--name value`, `--name=value`, `-s value`, `-svalue`,
 * bundled short flags, `--no-NAME` for booleans and `--` to end options;
 * `--snake_case` as HfArgumentParser takes it is the same as
 * `--snake-case`.  Each kind writes one C type, and its macro refuses (at
 * compile time) a pointer to any other.  Every number goes through a
 * checked parser with the range in the table, narrowed to what the type
 * holds.  tk_options_usage() prints the help text generated from the same
 * table, with each number's and CHOICE's default read from its field, so
 * that the help text never writes a default down a second time.
 */
#ifndef TK_OPTIONS_H
#define TK_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "base/tk.h"

enum tk_opt_type {
	TK_OPT_TYPE_END = 0,
	TK_OPT_TYPE_BOOL,   /* int: 1 for --x, 0 for --no-x */
	TK_OPT_TYPE_STR,    /* const char *: last one wins */
	TK_OPT_TYPE_LIST,   /* struct tk_strlist: repeatable */
	TK_OPT_TYPE_INT32,  /* int32_t (int), within [min, max] and the type's range */
	TK_OPT_TYPE_UINT32, /* uint32_t, the same */
	TK_OPT_TYPE_INT64,  /* int64_t, the same */
	TK_OPT_TYPE_UINT64, /* uint64_t, the same, at most INT64_MAX */
	TK_OPT_TYPE_SIZE,   /* size_t, the same, at most INT64_MAX */
	TK_OPT_TYPE_FLOAT,  /* float, within [min, max] and +-FLT_MAX */
	TK_OPT_TYPE_DOUBLE, /* double, within [min, max] */
	TK_OPT_TYPE_CHOICE, /* an enum (int or unsigned), the value of a word of choices */
	TK_OPT_TYPE_HELP,   /* -h/--help */
	TK_OPT_TYPE_VERSION, /* --version */
	TK_OPT_TYPE_GROUP,  /* a heading in the help text */
};

struct tk_opt {
	char short_name;      /* 0 if none */
	const char *long_name; /* NULL if none */
	enum tk_opt_type type;
	void *value;          /* the field the kind writes, of the kind's type */
	const char *argh;     /* placeholder in help, e.g. "N" (CHOICE: its words) */
	double min, max;
	const char *help;
	/* (optional) set to 1 when the option is given (on the command line
	 * or in a JSON), for "was it asked for" without comparing the value
	 * to its default; put `.given = &flag` after an entry's arguments */
	int *given;
	/* CHOICE: the {word, value} pairs, ended by {NULL, 0} */
	const struct tk_opt_choice *choices;
	/* (optional) CHOICE: set to the word given (several words may name
	 * one value); `.word = &ptr` as .given */
	const char **word;
	/* (optional) 1: the help prints no "(default: ...)" for this entry,
	 * whose initial value is a sentinel (-1: none) that the help text
	 * explains in words */
	int no_default;
	/* (optional) STR: 1: the value names a file or directory, and an
	 * empty one is refused (a usage error); `.path = 1` as .given */
	int path;
};

/* A word of a CHOICE option and the enum value it writes. */
struct tk_opt_choice {
	const char *word;
	int value;
};

struct tk_strlist {
	const char **v;
	int n;
};

/* p as the void * of an entry when it points to a T; any other pointer is
 * a compile-time error ("not compatible with any association").  cppcheck
 * 2.10 cannot parse a _Generic in an initializer, so `make lint` defines
 * TK_LINT and gets the plain cast (the compilers check the type). */
#ifdef TK_LINT
#define TK_OPT_PTR(T, p) ((void *)(p))
#define TK_OPT_ENUM_PTR(p) ((void *)(p))
#else
#define TK_OPT_PTR(T, p) _Generic((p), T *: (void *)(p))
/* an enum is compatible with int or unsigned int (the compiler picks
 * which): either is written as an int */
#define TK_OPT_ENUM_PTR(p) _Generic((p), int *: (void *)(p), unsigned *: (void *)(p))
#endif

/* The entries.  s: short name or 0, l: long name or NULL, v: &field, a:
 * placeholder in the help ("N"), lo and hi: the range, h: the help text.
 * Each takes, after its arguments, optional designated initializers of
 * struct tk_opt (`.given = &flag`). */
#define TK_OPT_ENTRY_(s, l, k, v, a, lo, hi, h, ...)                                  \
	{ .short_name = (s), .long_name = (l), .type = (k), .value = (v), .argh = (a), \
	  .min = (lo), .max = (hi), .help = (h), __VA_ARGS__ }
#define TK_OPT_BOOL(s, l, v, h, ...) \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_BOOL, TK_OPT_PTR(int, v), NULL, 0, 0, h, __VA_ARGS__)
#define TK_OPT_STR(s, l, v, a, h, ...)                                                   \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_STR, TK_OPT_PTR(const char *, v), a, 0, 0, h, \
		      __VA_ARGS__)
#define TK_OPT_LIST(s, l, v, a, h, ...)                                                     \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_LIST, TK_OPT_PTR(struct tk_strlist, v), a, 0, 0, h, \
		      __VA_ARGS__)
/* CHOICE: t is an array of struct tk_opt_choice ending with {NULL, 0}; v
 * an enum (or int) field, given the value of the word */
#define TK_OPT_CHOICE(s, l, v, t, h, ...)                                                  \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_CHOICE, TK_OPT_ENUM_PTR(v), NULL, 0, 0, h,          \
		      .choices = (t), __VA_ARGS__)
#define TK_OPT_INT32(s, l, v, a, lo, hi, h, ...) \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_INT32, TK_OPT_PTR(int32_t, v), a, lo, hi, h, __VA_ARGS__)
#define TK_OPT_UINT32(s, l, v, a, lo, hi, h, ...)                                     \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_UINT32, TK_OPT_PTR(uint32_t, v), a, lo, hi, h, \
		      __VA_ARGS__)
#define TK_OPT_INT64(s, l, v, a, lo, hi, h, ...) \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_INT64, TK_OPT_PTR(int64_t, v), a, lo, hi, h, __VA_ARGS__)
#define TK_OPT_UINT64(s, l, v, a, lo, hi, h, ...)                                     \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_UINT64, TK_OPT_PTR(uint64_t, v), a, lo, hi, h, \
		      __VA_ARGS__)
#define TK_OPT_SIZE(s, l, v, a, lo, hi, h, ...) \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_SIZE, TK_OPT_PTR(size_t, v), a, lo, hi, h, __VA_ARGS__)
#define TK_OPT_FLOAT(s, l, v, a, lo, hi, h, ...) \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_FLOAT, TK_OPT_PTR(float, v), a, lo, hi, h, __VA_ARGS__)
#define TK_OPT_DOUBLE(s, l, v, a, lo, hi, h, ...) \
	TK_OPT_ENTRY_(s, l, TK_OPT_TYPE_DOUBLE, TK_OPT_PTR(double, v), a, lo, hi, h, __VA_ARGS__)
/* -h/--help and --version: every tool's table ends with these */
#define TK_OPT_HELP()                                                                  \
	{ .short_name = 'h', .long_name = "help", .type = TK_OPT_TYPE_HELP,             \
	  .help = "show this help and exit" },                                         \
	{ .long_name = "version", .type = TK_OPT_TYPE_VERSION,                          \
	  .help = "show the version, the build, the CPU and the GEMM kernel tk runs on " \
		  "it, and exit" }
#define TK_OPT_GROUP(title) { .type = TK_OPT_TYPE_GROUP, .help = (title) }
#define TK_OPT_END { .type = TK_OPT_TYPE_END }

enum {
	TK_OPT_DONE = 0,   /* parsed; positional arguments returned */
	TK_OPT_SHOW_HELP = 1,
	TK_OPT_SHOW_VERSION = 2,
};

/* Parses argv[1..argc-1] against opts.  Positional arguments are moved, in
 * order, to the front of argv starting at argv[0] and their count stored in
 * *npos.  Returns TK_OPT_DONE, TK_OPT_SHOW_HELP when -h/--help was given,
 * TK_OPT_SHOW_VERSION for --version, or
 * TK_E_INVAL with d->msg saying what was wrong (unknown option, with the
 * nearest known one where one is near, missing or bad value). */
int tk_options_parse(int argc, char **argv, const struct tk_opt *opts, int *npos,
		 struct tk_diag *d);

/* Writes the usage lines ("usage: LINE" for each, the first prefixed with
 * "usage:" and the rest with "   or:"), an optional description and the
 * option table to out.  An integer, FLOAT, DOUBLE or CHOICE entry's help
 * ends with "(default: V)", V the field's value now (the shortest decimal
 * that reads back as it; a CHOICE's first word of it, none when no word
 * has it), unless the entry has .no_default; call it before parsing
 * changes the fields. */
void tk_options_usage(FILE *out, const char *const *usage, const char *about,
		  const struct tk_opt *opts);

/* The long name of the option nearest to name[0..len) (at most len/3
 * edits away, '_' taken as '-'), for "did you mean ...?", or NULL when none
 * is that near. */
const char *tk_options_nearest(const struct tk_opt *opts, const char *name, size_t len);

/* Applies a JSON object of option values (a TrainingArguments or
 * LoraConfig JSON): each key is an option's long name in snake case
 * ("learning_rate" for --learning-rate); strings, numbers, booleans and
 * (for repeatable options) arrays of strings go through the same checked
 * parsers as the command line; null leaves the default.  An unknown key is
 * TK_E_INVAL naming the key and the file, unless it is listed in ignore
 * (NULL-terminated; keys HF writes that mean nothing to the tool).  String
 * options take JSON strings only.  String values stay owned by *hold,
 * which the caller frees with tk_options_json_free() once done with the
 * options.  The caller parses the command line again afterwards so that
 * it wins. */
int tk_options_apply_json(const struct tk_opt *opts, const char *json, const char *name,
		      const char *const *ignore, void **hold, struct tk_diag *d);
void tk_options_json_free(void *hold);

/* The first of keys (NULL-terminated) that tk_options_apply_json would take as
 * an option of opts, or NULL when none is.  An ignore list must get NULL:
 * a key there that is also an option would be dropped from every JSON
 * instead of setting the option. */
const char *tk_options_json_key_taken(const struct tk_opt *opts, const char *const *keys);

/* The first word of the CHOICE table t (ended by {NULL, 0}) whose value
 * is value, or NULL when none is. */
const char *tk_options_choice_word(const struct tk_opt_choice *t, int value);

/* Checked number parsers: the whole string must be a decimal number in
 * range, as Python's int() and float() read them but stricter: an optional
 * sign and digits ("010" is ten, never octal; "0x10" is refused), for
 * doubles also a fraction and an exponent; no spaces, underscores, hex,
 * "inf" or "nan".  Return 0 or TK_E_INVAL. */
int tk_options_parse_ll(const char *s, long long min, long long max, long long *out);
int tk_options_parse_double(const char *s, double min, double max, double *out);

#endif

/* options.c - see options.h. */
#include "base/options.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* [+-]?DIGITS: the decimal integers Python's int() reads, without the
 * surrounding spaces and the underscores it also takes.  A leading zero is
 * not octal ("010" is 10) and "0x10" is refused, as int("0x10") is. */
static int is_decimal_int(const char *s)
{
	if (*s == '+' || *s == '-')
		s++;
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* [+-]?(D+[.D*]|.D+)([eE][+-]?D+)?: a decimal number, so no hex floats,
 * "inf", "nan" or surrounding spaces, which strtod would accept. */
static int is_decimal_real(const char *s)
{
	int digits = 0;
	if (*s == '+' || *s == '-')
		s++;
	for (; *s >= '0' && *s <= '9'; s++)
		digits++;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			digits++;
	if (!digits)
		return 0;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (*s < '0' || *s > '9')
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

int tk_options_parse_ll(const char *s, long long min, long long max, long long *out)
{
	if (!s || !is_decimal_int(s))
		return TK_E_INVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return TK_E_INVAL;
	*out = v;
	return 0;
}

int tk_options_parse_double(const char *s, double min, double max, double *out)
{
	if (!s || !is_decimal_real(s))
		return TK_E_INVAL;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < min || v > max)
		return TK_E_INVAL;
	*out = v;
	return 0;
}

/* The entry of o's choices whose word is v, or NULL. */
static const struct tk_opt_choice *choice_find(const struct tk_opt *o, const char *v)
{
	for (const struct tk_opt_choice *c = o->choices; c && c->word; c++)
		if (!strcmp(c->word, v))
			return c;
	return NULL;
}

const char *tk_options_choice_word(const struct tk_opt_choice *t, int value)
{
	for (; t && t->word; t++)
		if (t->value == value)
			return t->word;
	return NULL;
}

/* The words of o's choices, sep between them, into buf (cut at n). */
static const char *choice_words(const struct tk_opt *o, char *buf, size_t n, char sep)
{
	size_t len = 0;
	buf[0] = 0;
	for (const struct tk_opt_choice *c = o->choices; c && c->word && len < n; c++) {
		if (len && len + 1 < n)
			buf[len++] = sep, buf[len] = 0;
		len += (size_t)snprintf(buf + len, n - len, "%s", c->word);
	}
	return buf;
}

/* The placeholder of a value in help and messages, into buf: the
 * table's, a CHOICE's words, or VALUE. */
static const char *placeholder(const struct tk_opt *o, char *buf, size_t n)
{
	if (o->type == TK_OPT_TYPE_CHOICE)
		return choice_words(o, buf, n, '|');
	snprintf(buf, n, "%s", o->argh ? o->argh : "VALUE");
	return buf;
}

static int takes_value(const struct tk_opt *o)
{
	return o->type != TK_OPT_TYPE_BOOL && o->type != TK_OPT_TYPE_HELP &&
	       o->type != TK_OPT_TYPE_VERSION;
}

static void opt_name(const struct tk_opt *o, char *buf, size_t n)
{
	if (o->long_name)
		snprintf(buf, n, "--%s", o->long_name);
	else
		snprintf(buf, n, "-%c", o->short_name);
}

/* The range of an integer kind: the table's [min, max] narrowed to what
 * the field's type holds (and to long long, which tk_options_parse_ll
 * reads). */
static void int_range(const struct tk_opt *o, long long *lo, long long *hi)
{
	double tmin = (double)LLONG_MIN, tmax = 9223372036854775807.0; /* LLONG_MAX + 1 */
	switch (o->type) {
	case TK_OPT_TYPE_INT32:
		tmin = INT32_MIN, tmax = INT32_MAX;
		break;
	case TK_OPT_TYPE_UINT32:
		tmin = 0, tmax = UINT32_MAX;
		break;
	case TK_OPT_TYPE_UINT64:
		tmin = 0;
		break;
	case TK_OPT_TYPE_SIZE:
		tmin = 0;
		if ((double)SIZE_MAX < tmax) /* a 32-bit size_t */
			tmax = (double)SIZE_MAX;
		break;
	default:
		break;
	}
	*lo = o->min > tmin ? (long long)o->min : (long long)tmin;
	if (o->max < tmax)
		*hi = (long long)o->max;
	else /* 2^63 - 1 is 2^63 as a double, which no long long holds */
		*hi = tmax >= 9223372036854775807.0 ? LLONG_MAX : (long long)tmax;
}

/* Writes the integer v (within int_range) into the field of o's kind. */
static void store_int(const struct tk_opt *o, long long v)
{
	switch (o->type) {
	case TK_OPT_TYPE_INT32:
		*(int32_t *)o->value = (int32_t)v;
		break;
	case TK_OPT_TYPE_UINT32:
		*(uint32_t *)o->value = (uint32_t)v;
		break;
	case TK_OPT_TYPE_INT64:
		*(int64_t *)o->value = (int64_t)v;
		break;
	case TK_OPT_TYPE_UINT64:
		*(uint64_t *)o->value = (uint64_t)v;
		break;
	default: /* TK_OPT_TYPE_SIZE */
		*(size_t *)o->value = (size_t)v;
		break;
	}
}

static int is_int_kind(enum tk_opt_type t)
{
	return t == TK_OPT_TYPE_INT32 || t == TK_OPT_TYPE_UINT32 ||
	       t == TK_OPT_TYPE_INT64 || t == TK_OPT_TYPE_UINT64 || t == TK_OPT_TYPE_SIZE;
}

static void set_bool(const struct tk_opt *o, int v)
{
	*(int *)o->value = v;
	if (o->given)
		*o->given = 1;
}

static int set_value(const struct tk_opt *o, const char *v, struct tk_diag *d)
{
	char name[96];
	opt_name(o, name, sizeof(name));
	if (is_int_kind(o->type)) {
		long long lo, hi, x;
		int_range(o, &lo, &hi);
		if (tk_options_parse_ll(v, lo, hi, &x))
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "%s: '%s' is not an integer in [%lld, %lld]", name, v,
					   lo, hi);
		store_int(o, x);
		goto given;
	}
	switch (o->type) {
	case TK_OPT_TYPE_STR:
		if (o->path && !v[0])
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%s: an empty path", name);
		*(const char **)o->value = v;
		break;
	case TK_OPT_TYPE_LIST: {
		struct tk_strlist *l = o->value;
		const char **nv = tk_reallocn(l->v, (size_t)l->n + 1, sizeof(*nv));
		if (!nv)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		l->v = nv;
		l->v[l->n++] = v;
		break;
	}
	case TK_OPT_TYPE_FLOAT:
	case TK_OPT_TYPE_DOUBLE: {
		double lo = o->min, hi = o->max, x;
		if (o->type == TK_OPT_TYPE_FLOAT) {
			lo = lo > -FLT_MAX ? lo : -FLT_MAX;
			hi = hi < FLT_MAX ? hi : FLT_MAX;
		}
		if (tk_options_parse_double(v, lo, hi, &x))
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "%s: '%s' is not a number in [%g, %g]", name, v, lo, hi);
		if (o->type == TK_OPT_TYPE_FLOAT)
			*(float *)o->value = (float)x;
		else
			*(double *)o->value = x;
		break;
	}
	case TK_OPT_TYPE_CHOICE: {
		const struct tk_opt_choice *c = choice_find(o, v);
		char words[512];
		if (!c)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%s: '%s' is not one of %s",
					   name, v, choice_words(o, words, sizeof(words), '|'));
		*(int *)o->value = c->value;
		if (o->word)
			*o->word = v;
		break;
	}
	case TK_OPT_TYPE_BOOL:
		if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
			*(int *)o->value = 1;
		else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
			*(int *)o->value = 0;
		else
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "%s: '%s' is not true or false", name, v);
		break;
	default:
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%s: takes no value", name);
	}
given:
	if (o->given)
		*o->given = 1;
	return 0;
}

static const struct tk_opt *find_long(const struct tk_opt *opts, const char *name,
				      size_t len)
{
	for (const struct tk_opt *o = opts; o->type != TK_OPT_TYPE_END; o++)
		if (o->long_name && strlen(o->long_name) == len &&
		    !strncmp(o->long_name, name, len))
			return o;
	return NULL;
}

static const struct tk_opt *find_short(const struct tk_opt *opts, char c)
{
	for (const struct tk_opt *o = opts; o->type != TK_OPT_TYPE_END; o++)
		if (o->short_name && o->short_name == c)
			return o;
	return NULL;
}

/* The edit distance (insertions, deletions, substitutions) between a[0..n)
 * and b[0..m), '_' and '-' counted as the same; at most 64 characters of a
 * are compared (longer is never "near"). */
static size_t edit_distance(const char *a, size_t n, const char *b, size_t m)
{
	size_t row[65];
	if (n > 64)
		return (size_t)-1;
	for (size_t i = 0; i <= n; i++)
		row[i] = i;
	for (size_t j = 1; j <= m; j++) {
		size_t diag = row[0];
		row[0] = j;
		for (size_t i = 1; i <= n; i++) {
			char x = a[i - 1] == '_' ? '-' : a[i - 1], y = b[j - 1] == '_' ? '-' : b[j - 1];
			size_t best = diag + (x != y), up = row[i] + 1, left = row[i - 1] + 1;
			if (up < best)
				best = up;
			if (left < best)
				best = left;
			diag = row[i];
			row[i] = best;
		}
	}
	return row[n];
}

const char *tk_options_nearest(const struct tk_opt *opts, const char *name, size_t len)
{
	const struct tk_opt *best = NULL;
	size_t best_d = len / 3 > 0 ? len / 3 : 1;
	for (const struct tk_opt *o = opts; o->type != TK_OPT_TYPE_END; o++) {
		if (!o->long_name || o->type == TK_OPT_TYPE_GROUP)
			continue;
		size_t dist = edit_distance(name, len, o->long_name, strlen(o->long_name));
		if (dist <= best_d && (!best || dist < best_d))
			best = o, best_d = dist;
	}
	return best ? best->long_name : NULL;
}

/* The option named name[0..len), HfArgumentParser's spelling too: it
 * takes --num_train_epochs for --num-train-epochs. */
static const struct tk_opt *find_long_hf(const struct tk_opt *opts, const char *name,
					 size_t len)
{
	const struct tk_opt *o = find_long(opts, name, len);
	char key[128];
	if (o || len >= sizeof(key) || !memchr(name, '_', len))
		return o;
	for (size_t i = 0; i < len; i++)
		key[i] = name[i] == '_' ? '-' : name[i];
	return find_long(opts, key, len);
}

static int parse_long(char **argv, int argc, int *i, const struct tk_opt *opts,
		      struct tk_diag *d)
{
	const char *arg = argv[*i] + 2;
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	const struct tk_opt *o = find_long_hf(opts, arg, len);
	int negated = 0;
	if (!o && len > 3 && !strncmp(arg, "no", 2) && (arg[2] == '-' || arg[2] == '_')) {
		o = find_long_hf(opts, arg + 3, len - 3);
		if (o && o->type != TK_OPT_TYPE_BOOL)
			o = NULL;
		negated = o != NULL;
	}
	if (!o) {
		const char *near = tk_options_nearest(opts, arg, len);
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "unknown option '--%.*s'%s%s%s",
				   (int)len, arg, near ? "; did you mean --" : "", near ? near : "",
				   near ? "?" : "");
	}
	if (o->type == TK_OPT_TYPE_HELP)
		return TK_OPT_SHOW_HELP;
	if (o->type == TK_OPT_TYPE_VERSION)
		return eq ? tk_diag_set(d, TK_E_INVAL, NULL, -1, "--version takes no value")
			  : TK_OPT_SHOW_VERSION;
	if (o->type == TK_OPT_TYPE_BOOL) {
		if (negated) {
			if (eq)
				return tk_diag_set(d, TK_E_INVAL, NULL, -1,
						   "--%.*s takes no value", (int)len, arg);
			set_bool(o, 0);
			return 0;
		}
		if (eq)
			return set_value(o, eq + 1, d);
		set_bool(o, 1);
		return 0;
	}
	if (eq)
		return set_value(o, eq + 1, d);
	char ph[512];
	if (*i + 1 >= argc)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "--%s needs a value (%s)",
				   o->long_name, placeholder(o, ph, sizeof(ph)));
	return set_value(o, argv[++*i], d);
}

static int parse_short(char **argv, int argc, int *i, const struct tk_opt *opts,
		       struct tk_diag *d)
{
	for (const char *p = argv[*i] + 1; *p; p++) {
		const struct tk_opt *o = find_short(opts, *p);
		if (!o)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "unknown option '-%c'", *p);
		if (o->type == TK_OPT_TYPE_HELP)
			return TK_OPT_SHOW_HELP;
		if (!takes_value(o)) {
			set_bool(o, 1);
			continue;
		}
		if (p[1])
			return set_value(o, p + 1, d);
		char ph[512];
		if (*i + 1 >= argc)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "-%c needs a value (%s)",
					   *p, placeholder(o, ph, sizeof(ph)));
		return set_value(o, argv[++*i], d);
	}
	return 0;
}

int tk_options_parse(int argc, char **argv, const struct tk_opt *opts, int *npos,
		 struct tk_diag *d)
{
	int n = 0, only_pos = 0;
	tk_diag_clear(d);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int rc = 0;
		if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
			argv[n++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--")) {
			only_pos = 1;
			continue;
		}
		rc = a[1] == '-' ? parse_long(argv, argc, &i, opts, d)
				 : parse_short(argv, argc, &i, opts, d);
		if (rc)
			return rc;
	}
	*npos = n;
	return TK_OPT_DONE;
}

static void print_wrapped(FILE *out, const char *text, int indent, int width)
{
	int col = indent;
	const char *p = text;
	while (*p) {
		const char *sp = p;
		while (*sp && *sp != ' ' && *sp != '\n')
			sp++;
		int wl = (int)(sp - p);
		if (col > indent && col + 1 + wl > width) {
			fprintf(out, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', out);
			col++;
		}
		fwrite(p, 1, (size_t)wl, out);
		col += wl;
		p = sp;
		if (*p == '\n') {
			fprintf(out, "\n%*s", indent, "");
			col = indent;
			p++;
		} else if (*p == ' ')
			p++;
	}
	fputc('\n', out);
}

/* v as the shortest %g that reads back as v (as a float when is_float). */
static void shortest(char *buf, size_t n, double v, int is_float)
{
	if (v == trunc(v) && fabs(v) < 1e15) { /* 500, not 5e+02 */
		snprintf(buf, n, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, v);
		double back = strtod(buf, NULL);
		if (is_float ? (float)back == (float)v : back == v)
			break;
	}
	/* 5e-05 -> 5e-5, 1e+20 -> 1e20 */
	char *e = strchr(buf, 'e');
	if (e) {
		char *d = e + 1, *s = d;
		if (*s == '+')
			s++;
		else if (*s == '-')
			d++, s++;
		while (*s == '0' && s[1])
			s++;
		memmove(d, s, strlen(s) + 1);
	}
}

/* " (default: V)" for o's field as it is now into buf, or "" where o
 * prints none. */
static const char *default_text(const struct tk_opt *o, char *buf, size_t n)
{
	char v[64];
	buf[0] = 0;
	if (o->no_default || !o->value)
		return buf;
	switch (o->type) {
	case TK_OPT_TYPE_INT32:
		snprintf(v, sizeof(v), "%d", (int)*(int32_t *)o->value);
		break;
	case TK_OPT_TYPE_UINT32:
		snprintf(v, sizeof(v), "%u", (unsigned)*(uint32_t *)o->value);
		break;
	case TK_OPT_TYPE_INT64:
		snprintf(v, sizeof(v), "%lld", (long long)*(int64_t *)o->value);
		break;
	case TK_OPT_TYPE_UINT64:
		snprintf(v, sizeof(v), "%llu", (unsigned long long)*(uint64_t *)o->value);
		break;
	case TK_OPT_TYPE_SIZE:
		snprintf(v, sizeof(v), "%zu", *(size_t *)o->value);
		break;
	case TK_OPT_TYPE_FLOAT:
		shortest(v, sizeof(v), *(float *)o->value, 1);
		break;
	case TK_OPT_TYPE_DOUBLE:
		shortest(v, sizeof(v), *(double *)o->value, 0);
		break;
	case TK_OPT_TYPE_CHOICE: {
		const char *w = tk_options_choice_word(o->choices, *(int *)o->value);
		if (!w)
			return buf;
		snprintf(v, sizeof(v), "%s", w);
		break;
	}
	default:
		return buf;
	}
	snprintf(buf, n, "(default: %s)", v);
	return buf;
}

void tk_options_usage(FILE *out, const char *const *usage, const char *about,
		  const struct tk_opt *opts)
{
	for (int i = 0; usage && usage[i]; i++)
		fprintf(out, "%s %s\n", i ? "   or:" : "usage:", usage[i]);
	if (about && *about) {
		fputc('\n', out);
		print_wrapped(out, about, 0, 79);
	}
	fputc('\n', out);
	for (const struct tk_opt *o = opts; o->type != TK_OPT_TYPE_END; o++) {
		if (o->type == TK_OPT_TYPE_GROUP) {
			fprintf(out, "\n%s\n", o->help);
			continue;
		}
		char left[128];
		int n = snprintf(left, sizeof(left), "  ");
		if (o->short_name)
			n += snprintf(left + n, sizeof(left) - n, "-%c%s", o->short_name,
				      o->long_name ? ", " : "");
		else
			n += snprintf(left + n, sizeof(left) - n, "    ");
		if (o->long_name)
			n += snprintf(left + n, sizeof(left) - n, "--%s", o->long_name);
		/* a long list of choices goes under the help, one word apart */
		char ph[512];
		placeholder(o, ph, sizeof(ph));
		int many = o->type == TK_OPT_TYPE_CHOICE && strlen(ph) > 40;
		if (takes_value(o))
			snprintf(left + n, sizeof(left) - n, " %s", many ? "NAME" : ph);
		if (strlen(left) > 28)
			fprintf(out, "%s\n%30s", left, "");
		else
			fprintf(out, "%-30s", left);
		char help[1024], def[128];
		default_text(o, def, sizeof(def));
		int at = snprintf(help, sizeof(help), "%s%s%s%s", o->help,
				  *o->help && *def ? " " : "", def, many ? "; one of: " : "");
		if (at >= (int)sizeof(help))
			at = (int)sizeof(help) - 1;
		snprintf(help + at, sizeof(help) - (size_t)at, "%s", many ? ph : "");
		for (char *c = help + at; many && *c; c++)
			if (*c == '|')
				*c = ' ';
		print_wrapped(out, help, 30, 79);
	}
}

/* The option a JSON key names (its long name in snake case), or NULL. */
static const struct tk_opt *json_key_opt(const struct tk_opt *opts, const char *k)
{
	char key[128];
	size_t n = strlen(k);
	if (n >= sizeof(key))
		return NULL;
	for (size_t i = 0; i <= n; i++)
		key[i] = k[i] == '_' ? '-' : k[i];
	return find_long(opts, key, n);
}

const char *tk_options_json_key_taken(const struct tk_opt *opts, const char *const *keys)
{
	for (int i = 0; keys && keys[i]; i++)
		if (json_key_opt(opts, keys[i]))
			return keys[i];
	return NULL;
}

int tk_options_apply_json(const struct tk_opt *opts, const char *json, const char *name,
		      const char *const *ignore, void **hold, struct tk_diag *d)
{
	*hold = NULL;
	cJSON *root = cJSON_Parse(json);
	if (!root || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return tk_diag_set(d, TK_E_INVAL, name, -1, "not a JSON object");
	}
	int rc = 0;
	char num[64];
	for (cJSON *it = root->child; it && !rc; it = it->next) {
		size_t n = strlen(it->string);
		int skip = 0;
		for (int i = 0; ignore && ignore[i]; i++)
			skip |= !strcmp(ignore[i], it->string);
		if (skip || cJSON_IsNull(it))
			continue;
		const struct tk_opt *o = json_key_opt(opts, it->string);
		if (!o || o->type == TK_OPT_TYPE_HELP || o->type == TK_OPT_TYPE_VERSION ||
		    o->type == TK_OPT_TYPE_GROUP) {
			const char *near = tk_options_nearest(opts, it->string, n);
			char snake[128] = "";
			for (size_t i = 0; near && near[i] && i + 1 < sizeof(snake); i++)
				snake[i] = near[i] == '-' ? '_' : near[i], snake[i + 1] = 0;
			rc = tk_diag_set(d, TK_E_INVAL, name, -1, "unknown key '%.100s'%s%s%s",
					 it->string, near ? "; did you mean " : "", snake,
					 near ? "?" : "");
			break;
		}
		int is_list = cJSON_IsArray(it);
		if (is_list && o->type != TK_OPT_TYPE_LIST) {
			rc = tk_diag_set(d, TK_E_INVAL, name, -1, "%s: a list is not allowed here",
					 it->string);
			break;
		}
		int wants_str = o->type == TK_OPT_TYPE_STR || o->type == TK_OPT_TYPE_LIST ||
				o->type == TK_OPT_TYPE_CHOICE;
		if (cJSON_IsObject(it) && o->type == TK_OPT_TYPE_STR) {
			/* an object (lr_scheduler_kwargs) reaches the option as its text */
			char *txt = cJSON_PrintUnformatted(it);
			cJSON *sv = txt ? cJSON_CreateString(txt) : NULL;
			free(txt);
			if (sv && !(sv->string = strdup(it->string))) {
				cJSON_Delete(sv);
				sv = NULL;
			}
			if (!sv || !cJSON_ReplaceItemViaPointer(root, it, sv)) {
				cJSON_Delete(sv);
				rc = tk_diag_set(d, TK_E_NOMEM, name, -1, "out of memory");
				break;
			}
			it = sv;
		}
		for (cJSON *v = is_list ? it->child : it; v && !rc; v = is_list ? v->next : NULL) {
			const char *text = NULL;
			if (cJSON_IsString(v))
				text = v->valuestring;
			else if (wants_str)
				text = NULL;
			else if (cJSON_IsBool(v))
				text = cJSON_IsTrue(v) ? "true" : "false";
			else if (cJSON_IsNumber(v)) {
				snprintf(num, sizeof(num), "%.17g", v->valuedouble);
				text = num;
			}
			if (!text) {
				rc = tk_diag_set(d, TK_E_INVAL, name, -1, "%s: expected %s",
						 it->string, wants_str ? "a string" : "a number or boolean");
				break;
			}
			if ((rc = set_value(o, text, d))) {
				char msg[sizeof(d->msg)];
				snprintf(msg, sizeof(msg), "%s", d ? d->msg : "");
				tk_diag_set(d, rc, name, -1, "%s (key '%s')", msg, it->string);
			}
		}
	}
	if (rc)
		cJSON_Delete(root);
	else
		*hold = root;
	return rc;
}

void tk_options_json_free(void *hold)
{
	cJSON_Delete(hold);
}

/* input.c - see input.h.
 *
 * Every format is read one physical line at a time (getdelim), so memory
 * stays bounded by the longest line or record, and each line's number and
 * byte offset are known when something in it is wrong.  UTF-8 is checked
 * (or repaired) line by line before parsing: a newline never belongs to a
 * multi-byte sequence, so this gives the same result as checking the whole
 * file.  CSV lines are pushed into libcsv, which calls back per field and
 * per row; finished rows become examples in a small queue.
 */
#include "text/input.h"

#include <cjson/cJSON.h>
#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text/chat.h"
#include "text/tokenizer.h"

/* How the text of an example is chosen. */
enum pick { PICK_NONE, PICK_ONE, PICK_TMPL, PICK_PAIR, PICK_PAIR_TMPL, PICK_CHAT };

/* A finished example waiting in the queue. */
struct pending {
	size_t off, len, prompt_len;
	long long line;
	int chat, n_spans;
	size_t span_off;        /* into spans */
};

struct tk_input {
	FILE *fp;
	int own_fp;
	char *name;
	enum tk_input_format fmt;
	struct tk_input_opts o;
	int eof;

	char *line;             /* the current physical line */
	size_t line_cap;
	long long lineno;       /* of the line last read */
	long long offset;       /* file offset of the next line */
	struct tk_buf fixed;    /* a repaired line */

	/* Selection of the text: a column/field, a template or a pair. */
	enum pick pick;
	struct tk_tmpl tmpl;
	const char *want[2];    /* PICK_ONE: want[0]; PICK_PAIR: prompt, response */
	char *picked;           /* the only column/field, taken by default (own copy) */
	int n_want;             /* names in use: 1, 2 or tmpl.n_names */
	const char **vals;      /* per name, for rendering */
	size_t *lens;
	struct tk_buf *num;     /* JSONL: numbers and booleans as text, per name */
	int n_vals;             /* room in vals, lens and num */
	size_t n_prompt_parts;  /* PICK_PAIR_TMPL: tmpl's first parts form the prompt */
	unsigned char delim;    /* CSV: the field separator */

	/* JSON: a file holding one array of objects (json_array_*) */
	int jarr;               /* 0 not known yet, 1 JSONL, 2 in the array, 3 after it */
	int jwant;              /* in it, between records: 0 a record or ], 1 , or ],
				   2 a record (after a comma), 3 the opening [ */
	int jdepth, jstr, jesc; /* inside a record: nesting, in a string, after \ */
	struct tk_buf jrec;     /* the record being read */
	long long jrec_line;    /* where it starts */
	long long jrec_no;      /* records begun, 1-based */

	/* CSV */
	struct csv_parser csv;
	int csv_ready;
	struct tk_buf row;      /* the fields of the row being read */
	size_t *fld_off, *fld_len;
	int n_fld, fld_cap;
	char **cols;            /* header */
	int n_cols;
	int *col_of;            /* name index -> column */
	long long row_line;     /* where the current row began */
	long long quote_line;   /* where the open quoted field began */
	int fields_ended;       /* field callbacks during the current line */
	int err;
	struct tk_diag *cb_diag;

	/* The queue of finished examples and their text. */
	struct tk_buf out;
	size_t *spans;          /* conversations' assistant spans, pairs */
	size_t n_spans, spans_cap;
	struct pending *q;
	size_t q_n, q_head, q_cap;
};

/* ---- templates ---------------------------------------------------------- */

void tk_tmpl_free(struct tk_tmpl *t)
{
	for (size_t i = 0; i < t->n_names; i++)
		free(t->names[i]);
	free(t->names);
	free(t->parts);
	free(t->lit);
	memset(t, 0, sizeof(*t));
}

static int tmpl_add(struct tk_tmpl *t, int name, size_t off, size_t len)
{
	if (name < 0 && t->n_parts && t->parts[t->n_parts - 1].name < 0) {
		t->parts[t->n_parts - 1].len += len; /* extend the literal */
		return 0;
	}
	struct tk_tmpl_part *p = tk_reallocn(t->parts, t->n_parts + 1, sizeof(*p));
	if (!p)
		return TK_E_NOMEM;
	t->parts = p;
	p[t->n_parts++] = (struct tk_tmpl_part){ name, off, len };
	return 0;
}

static int tmpl_name(struct tk_tmpl *t, const char *s, size_t n)
{
	for (size_t i = 0; i < t->n_names; i++)
		if (strlen(t->names[i]) == n && !memcmp(t->names[i], s, n))
			return (int)i;
	char **v = tk_reallocn(t->names, t->n_names + 1, sizeof(*v));
	if (!v)
		return TK_E_NOMEM;
	t->names = v;
	if (!(v[t->n_names] = strndup(s, n)))
		return TK_E_NOMEM;
	return (int)t->n_names++;
}

static int tmpl_fail(struct tk_tmpl *t, struct tk_diag *d, size_t at, const char *what)
{
	tk_tmpl_free(t);
	tk_diag_set(d, TK_E_INVAL, NULL, -1, "template: %s at character %zu%s", what,
		    at + 1, strchr(what, '{') || strchr(what, '}')
		    ? " (write {{ or }} for a literal brace)" : "");
	if (d)
		d->offset = (long long)at;
	return TK_E_INVAL;
}

int tk_tmpl_parse(struct tk_tmpl *t, const char *src, struct tk_diag *d)
{
	size_t n = strlen(src), k = 0;
	memset(t, 0, sizeof(*t));
	if (!(t->lit = malloc(n + 1)))
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	for (size_t i = 0; i < n;) {
		char c = src[i];
		int rc = 0;
		if (c == '\\') {
			char e = src[i + 1];
			char r = e == 'n' ? '\n' : e == 't' ? '\t' : e == '\\' ? '\\' : 0;
			if (!r)
				return tmpl_fail(t, d, i, e ? "unknown escape (use \\n, \\t or \\\\)"
							    : "a lone \\ at the end");
			t->lit[k] = r;
			rc = tmpl_add(t, -1, k++, 1);
			i += 2;
		} else if ((c == '{' && src[i + 1] == '{') || (c == '}' && src[i + 1] == '}')) {
			t->lit[k] = c;
			rc = tmpl_add(t, -1, k++, 1);
			i += 2;
		} else if (c == '{') {
			const char *end = strchr(src + i + 1, '}');
			const char *open = strchr(src + i + 1, '{');
			if (!end || (open && open < end))
				return tmpl_fail(t, d, i, "unclosed {");
			if (end == src + i + 1)
				return tmpl_fail(t, d, i, "empty {}");
			int id = tmpl_name(t, src + i + 1, (size_t)(end - src - i - 1));
			rc = id < 0 ? id : tmpl_add(t, id, 0, 0);
			i = (size_t)(end - src) + 1;
		} else if (c == '}') {
			return tmpl_fail(t, d, i, "a lone }");
		} else {
			t->lit[k] = c;
			rc = tmpl_add(t, -1, k++, 1);
			i++;
		}
		if (rc) {
			tk_tmpl_free(t);
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		}
	}
	t->lit[k] = '\0';
	return 0;
}

int tk_tmpl_render(const struct tk_tmpl *t, const char *const *vals,
		   const size_t *lens, struct tk_buf *out)
{
	for (size_t i = 0; i < t->n_parts; i++) {
		const struct tk_tmpl_part *p = &t->parts[i];
		int rc = p->name < 0 ? tk_buf_append(out, t->lit + p->off, p->len)
				     : tk_buf_append(out, vals[p->name], lens[p->name]);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- prompt/response templates ------------------------------------------ */

/* One side of a prompt/response pair as a template into t: src parsed (its
 * messages say which side, what), or with src NULL the one field col,
 * whatever characters its name has. */
static int pair_side(struct tk_tmpl *t, const char *src, const char *col, const char *what,
		     struct tk_diag *d)
{
	int id = 0;
	if (src) {
		int rc = tk_tmpl_parse(t, src, d);
		if (rc == TK_E_INVAL && d && !strncmp(d->msg, "template: ", 10)) {
			char m[sizeof(d->msg)];
			snprintf(m, sizeof(m), "%s", d->msg);
			snprintf(d->msg, sizeof(d->msg), "%s %.1000s", what, m);
		}
		return rc;
	}
	memset(t, 0, sizeof(*t));
	if (!(t->lit = strdup("")) || (id = tmpl_name(t, col, strlen(col))) < 0 ||
	    tmpl_add(t, id, 0, 0)) {
		tk_tmpl_free(t);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	return 0;
}

/* in->tmpl from the prompt's and the response's templates (or columns):
 * the prompt's parts, then the response's (never joined into one literal),
 * the names shared; in->n_prompt_parts says where the response begins.
 * Nothing to do without a prompt or response template. */
static int pair_tmpl_build(tk_input_t *in, struct tk_diag *d)
{
	const struct tk_input_opts *o = &in->o;
	struct tk_tmpl r;
	int rc;
	if (o->tmpl || !(o->prompt_tmpl || o->response_tmpl))
		return 0; /* choose() says what does not go together */
	if ((o->prompt && o->prompt_tmpl) || (o->response && o->response_tmpl))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "give the %s as a column or a template, not both",
				   o->prompt && o->prompt_tmpl ? "prompt" : "response");
	if (!(o->prompt || o->prompt_tmpl) || !(o->response || o->response_tmpl))
		return 0; /* choose() asks for the other half */
	if ((rc = pair_side(&in->tmpl, o->prompt_tmpl, o->prompt, "prompt", d)) ||
	    (rc = pair_side(&r, o->response_tmpl, o->response, "response", d)))
		return rc; /* in->tmpl is freed with in */
	size_t lp = strlen(in->tmpl.lit), lr = strlen(r.lit);
	char *lit = realloc(in->tmpl.lit, lp + lr + 1);
	struct tk_tmpl_part *parts = NULL;
	if (lit) {
		in->tmpl.lit = lit;
		memcpy(lit + lp, r.lit, lr + 1);
		parts = tk_reallocn(in->tmpl.parts, in->tmpl.n_parts + r.n_parts + 1,
				    sizeof(*parts));
	}
	rc = parts ? 0 : TK_E_NOMEM;
	if (parts)
		in->tmpl.parts = parts;
	in->n_prompt_parts = in->tmpl.n_parts;
	for (size_t i = 0; i < r.n_parts && !rc; i++) {
		struct tk_tmpl_part p = r.parts[i];
		if (p.name >= 0)
			rc = p.name = tmpl_name(&in->tmpl, r.names[p.name], strlen(r.names[p.name]));
		else
			p.off += lp;
		if (rc >= 0) {
			in->tmpl.parts[in->tmpl.n_parts++] = p;
			rc = 0;
		}
	}
	tk_tmpl_free(&r);
	return rc ? tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory") : 0;
}

/* Appends the prompt, then the response, to in->out; *plen gets the
 * prompt's length. */
static int pair_tmpl_render(tk_input_t *in, size_t *plen)
{
	struct tk_tmpl t = in->tmpl;
	size_t start = in->out.len;
	t.n_parts = in->n_prompt_parts;
	int rc = tk_tmpl_render(&t, in->vals, in->lens, &in->out);
	*plen = in->out.len - start;
	t.parts += in->n_prompt_parts;
	t.n_parts = in->tmpl.n_parts - in->n_prompt_parts;
	return rc ? rc : tk_tmpl_render(&t, in->vals, in->lens, &in->out);
}

/* ---- CSV delimiters ----------------------------------------------------- */

/* The CSV field separator: the option's, else a tab for .tsv, else ','. */
static unsigned char csv_delim(const struct tk_input_opts *o, const char *path)
{
	const char *dot = strrchr(path, '.');
	if (o->delimiter)
		return (unsigned char)o->delimiter;
	return dot && !strchr(dot, '/') && !strcasecmp(dot, ".tsv") ? '\t' : ',';
}

/* When the header's names hold another usual separator (, ; tab |), the
 * advice to use it, for a message about a missing column: into h (64
 * bytes), else "". */
static const char *csv_delim_hint(const tk_input_t *in, char *h)
{
	static const char cand[] = ",;\t|";
	int best = -1, best_n = 0;
	h[0] = '\0';
	for (int k = 0; cand[k]; k++) {
		int cnt = 0;
		if ((unsigned char)cand[k] == in->delim)
			continue;
		for (int i = 0; i < in->n_cols; i++)
			for (const char *p = in->cols[i]; *p; p++)
				cnt += *p == cand[k];
		if (cnt > best_n) {
			best_n = cnt;
			best = k;
		}
	}
	if (best >= 0)
		snprintf(h, 64, "; the header looks %s-separated: try --delimiter %s",
			 cand[best] == '\t' ? "tab" : (char[]){ '\'', cand[best], '\'', 0 },
			 cand[best] == '\t' ? "'\\t'" : (char[]){ '\'', cand[best], '\'', 0 });
	return h;
}

/* ---- reading lines ------------------------------------------------------ */

enum tk_input_format tk_input_format_of(const char *path)
{
	const char *dot = strrchr(path, '.');
	const char *slash = strrchr(path, '/');
	if (!dot || (slash && slash > dot))
		return TK_INPUT_TEXT;
	if (!strcasecmp(dot, ".csv") || !strcasecmp(dot, ".tsv"))
		return TK_INPUT_CSV;
	if (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".json") ||
	    !strcasecmp(dot, ".ndjson"))
		return TK_INPUT_JSONL;
	return TK_INPUT_TEXT;
}

/* Reads the next physical line (with its newline) into s and n, checked or
 * repaired as UTF-8.  Returns 1, 0 at the end, or an error. */
static int read_line(tk_input_t *in, const char **s, size_t *n, struct tk_diag *d)
{
	errno = 0;
	ssize_t got = getdelim(&in->line, &in->line_cap, '\n', in->fp);
	if (got < 0) {
		if (ferror(in->fp))
			return tk_diag_sys(d, in->name, "read failed");
		if (errno == ENOMEM)
			return tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
		in->eof = 1;
		return 0;
	}
	const char *p = in->line;
	size_t len = (size_t)got;
	long long off = in->offset;
	in->offset += got;
	in->lineno++;
	if (in->lineno == 1 && len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) {
		p += 3; /* a byte order mark */
		len -= 3;
		off += 3;
	}
	size_t ok = tk_utf8_valid(p, len);
	if (ok < len) {
		if (!in->o.invalid_utf8_replace) {
			tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
				    "invalid UTF-8 at byte %lld (--invalid-utf8 replace "
				    "substitutes U+FFFD)", off + (long long)ok);
			if (d)
				d->offset = off + (long long)ok;
			return TK_E_FORMAT;
		}
		in->fixed.len = 0;
		if (tk_utf8_repair(p, len, &in->fixed))
			return tk_diag_set(d, TK_E_NOMEM, in->name, in->lineno, "out of memory");
		p = in->fixed.data;
		len = in->fixed.len;
	}
	*s = p;
	*n = len;
	return 1;
}

static size_t chomp(const char *s, size_t n)
{
	if (n && s[n - 1] == '\n')
		n--;
	if (n && s[n - 1] == '\r')
		n--;
	return n;
}

/* Starts a new text at the end of in->out: every text is NUL-terminated,
 * so the next starts after the previous one's NUL.  Returns its offset. */
static size_t text_begin(tk_input_t *in)
{
	if (in->q_n > in->q_head || in->out.len)
		tk_buf_append(&in->out, "", 1); /* failure shows up in queue() */
	return in->out.len;
}

/* Queues the example whose text runs from off to the end of in->out. */
static int queue(tk_input_t *in, size_t off, size_t prompt_len, long long line)
{
	if (!in->out.data || in->out.len < off)
		return TK_E_NOMEM;
	if (in->q_n == in->q_cap) {
		size_t cap = in->q_cap ? in->q_cap * 2 : 8;
		struct pending *q = tk_reallocn(in->q, cap, sizeof(*q));
		if (!q)
			return TK_E_NOMEM;
		in->q = q;
		in->q_cap = cap;
	}
	in->q[in->q_n++] = (struct pending){ off, in->out.len - off, prompt_len, line, 0, 0, 0 };
	return 0;
}

/* Builds the example from vals/lens (one per name in use) and queues it. */
static int emit(tk_input_t *in, long long line)
{
	size_t off = text_begin(in), plen = 0;
	int rc = 0;
	switch (in->pick) {
	case PICK_ONE:
		rc = tk_buf_append(&in->out, in->vals[0], in->lens[0]);
		break;
	case PICK_TMPL:
		rc = tk_tmpl_render(&in->tmpl, in->vals, in->lens, &in->out);
		break;
	case PICK_PAIR:
		plen = in->lens[0];
		rc = tk_buf_append(&in->out, in->vals[0], in->lens[0]);
		if (!rc)
			rc = tk_buf_append(&in->out, in->vals[1], in->lens[1]);
		break;
	case PICK_PAIR_TMPL:
		rc = pair_tmpl_render(in, &plen);
		break;
	case PICK_NONE:
	case PICK_CHAT: /* conversation() */
		break;
	}
	return rc ? rc : queue(in, off, plen, line);
}

/* Decides which names are in use from the options, or, when none were
 * given, from what the data has (names[0..n-1]): a "text" column/field,
 * else "prompt" and "completion", else the only one. */
static int choose(tk_input_t *in, char *const *names, int n, const char *kind,
		  struct tk_diag *d, long long line)
{
	const struct tk_input_opts *o = &in->o;
	const char *one = in->fmt == TK_INPUT_CSV ? o->column : o->field;
	if (!one)
		one = in->fmt == TK_INPUT_CSV ? o->field : o->column;
	int pair = o->prompt || o->response || o->prompt_tmpl || o->response_tmpl;
	int given = !!one + !!o->tmpl + pair + !!o->messages;
	if (given > 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "choose one of a %s, a template, a prompt/response pair "
				   "or a messages field", kind);
	if (o->messages && in->fmt != TK_INPUT_JSONL)
		return tk_diag_set(d, TK_E_INVAL, in->name, -1,
				   "conversations (a messages field) come from JSONL only");
	if (pair && !((o->prompt || o->prompt_tmpl) && (o->response || o->response_tmpl)))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "a prompt %s (or template) needs a response %s (or template), "
				   "and the other way round", kind, kind);
	if (o->messages) {
		in->pick = PICK_CHAT;
		in->want[0] = o->messages;
		in->n_want = 1;
	} else if (o->tmpl) {
		in->pick = PICK_TMPL;
		in->n_want = (int)in->tmpl.n_names;
	} else if (o->prompt_tmpl || o->response_tmpl) {
		in->pick = PICK_PAIR_TMPL;
		in->n_want = (int)in->tmpl.n_names;
	} else if (o->prompt) {
		in->pick = PICK_PAIR;
		in->want[0] = o->prompt;
		in->want[1] = o->response;
		in->n_want = 2;
	} else if (one) {
		in->pick = PICK_ONE;
		in->want[0] = one;
		in->n_want = 1;
	} else {
		int has_p = 0, has_c = 0, has_m = 0;
		in->n_want = 1;
		for (int i = 0; i < n; i++) {
			if (!strcmp(names[i], "text")) {
				in->pick = PICK_ONE;
				in->want[0] = "text";
				return 0;
			}
			has_p |= !strcmp(names[i], "prompt");
			has_c |= !strcmp(names[i], "completion");
			has_m |= !strcmp(names[i], "messages");
		}
		if (has_m && in->fmt == TK_INPUT_JSONL) {
			in->pick = PICK_CHAT;
			in->want[0] = "messages";
		} else if (has_p && has_c) {
			in->pick = PICK_PAIR;
			in->want[0] = "prompt";
			in->want[1] = "completion";
			in->n_want = 2;
		} else if (n == 1) {
			/* names may die with the line they came from */
			if (!(in->picked = strdup(names[0])))
				return tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
			in->pick = PICK_ONE;
			in->want[0] = in->picked;
		} else {
			struct tk_buf l = { 0 };
			for (int i = 0; i < n; i++)
				if (tk_buf_append(&l, i ? ", " : "", i ? 2 : 0) ||
				    tk_buf_append(&l, names[i], strlen(names[i])))
					break;
			char h[64] = "";
			if (in->fmt == TK_INPUT_CSV)
				csv_delim_hint(in, h);
			tk_diag_set(d, TK_E_INVAL, in->name, in->fmt == TK_INPUT_CSV ? -1 : line,
				    "no %s named 'text' (%ss: %s)%s; choose one with --%s, "
				    "--template, --prompt-%s and --response-%s, or "
				    "--messages-field", kind, kind,
				    l.data ? l.data : "", h, kind, kind, kind);
			tk_buf_free(&l);
			return TK_E_INVAL;
		}
	}
	return 0;
}

static const char *want_name(const tk_input_t *in, int i)
{
	return in->pick == PICK_TMPL || in->pick == PICK_PAIR_TMPL ? in->tmpl.names[i]
								    : in->want[i];
}

/* ---- CSV ---------------------------------------------------------------- */

static int no_space(unsigned char c)
{
	(void)c;
	return 0;
}

static void csv_field(void *s, size_t len, void *arg)
{
	tk_input_t *in = arg;
	in->fields_ended++;
	if (in->err)
		return;
	if (in->n_fld == in->fld_cap) {
		int cap = in->fld_cap ? in->fld_cap * 2 : 16;
		size_t *a = tk_reallocn(in->fld_off, (size_t)cap, sizeof(*a));
		size_t *b = a ? tk_reallocn(in->fld_len, (size_t)cap, sizeof(*b)) : NULL;
		if (a)
			in->fld_off = a;
		if (!b) {
			in->err = tk_diag_set(in->cb_diag, TK_E_NOMEM, in->name, -1,
					      "out of memory");
			return;
		}
		in->fld_len = b;
		in->fld_cap = cap;
	}
	in->fld_off[in->n_fld] = in->row.len;
	in->fld_len[in->n_fld++] = len;
	if (tk_buf_append(&in->row, s, len))
		in->err = tk_diag_set(in->cb_diag, TK_E_NOMEM, in->name, -1, "out of memory");
}

static int csv_header(tk_input_t *in)
{
	struct tk_diag *d = in->cb_diag;
	in->cols = tk_mallocn((size_t)in->n_fld, sizeof(*in->cols));
	if (!in->cols)
		return tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
	for (int i = 0; i < in->n_fld; i++) {
		in->cols[i] = strndup(in->row.data + in->fld_off[i], in->fld_len[i]);
		if (!in->cols[i])
			return tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
		in->n_cols++;
	}
	int rc = choose(in, in->cols, in->n_cols, "column", d, in->row_line);
	if (rc)
		return rc;
	in->col_of = tk_mallocn((size_t)in->n_want, sizeof(*in->col_of));
	if (!in->col_of)
		return tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
	for (int k = 0; k < in->n_want; k++) {
		const char *w = want_name(in, k);
		in->col_of[k] = -1;
		for (int i = 0; i < in->n_cols && in->col_of[k] < 0; i++)
			if (!strcmp(in->cols[i], w))
				in->col_of[k] = i;
		if (in->col_of[k] >= 0)
			continue;
		struct tk_buf l = { 0 };
		for (int i = 0; i < in->n_cols; i++)
			if (tk_buf_append(&l, i ? ", " : "", i ? 2 : 0) ||
			    tk_buf_append(&l, in->cols[i], strlen(in->cols[i])))
				break;
		char h[64];
		tk_diag_set(d, TK_E_INVAL, in->name, -1, "no column '%s' (columns: %s)%s", w,
			    l.data ? l.data : "", csv_delim_hint(in, h));
		tk_buf_free(&l);
		return TK_E_INVAL;
	}
	return 0;
}

static void csv_row(int term, void *arg)
{
	tk_input_t *in = arg;
	(void)term;
	if (in->err)
		goto out;
	if (!in->cols) {
		in->err = csv_header(in);
		goto out;
	}
	if (in->n_fld != in->n_cols) {
		in->err = tk_diag_set(in->cb_diag, TK_E_FORMAT, in->name, in->row_line,
				      "%d field%s, but the header has %d", in->n_fld,
				      in->n_fld == 1 ? "" : "s", in->n_cols);
		goto out;
	}
	for (int k = 0; k < in->n_want; k++) {
		in->vals[k] = in->row.data + in->fld_off[in->col_of[k]];
		in->lens[k] = in->fld_len[in->col_of[k]];
	}
	if (emit(in, in->row_line))
		in->err = tk_diag_set(in->cb_diag, TK_E_NOMEM, in->name, -1, "out of memory");
out:
	in->n_fld = 0;
	in->row.len = 0;
}

/* Pushes lines into libcsv until a row is queued (or the header is read,
 * with header_only), or the input ends. */
static int csv_pump(tk_input_t *in, int header_only, struct tk_diag *d)
{
	in->cb_diag = d;
	while (!in->err && !in->eof && in->q_n == in->q_head &&
	       !(header_only && in->cols)) {
		const char *s;
		size_t n;
		int rc = read_line(in, &s, &n, d);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			if (csv_fini(&in->csv, csv_field, csv_row, in)) {
				if (in->err)
					return in->err;
				return tk_diag_set(d, TK_E_FORMAT, in->name, in->quote_line,
						   "unterminated quoted field");
			}
			break;
		}
		int was_quoted = in->csv.pstate != 0 && in->csv.quoted;
		if (in->csv.pstate == 0)
			in->row_line = in->lineno;
		in->fields_ended = 0;
		/* libcsv grows its field buffer by blk_size bytes at a time (128
		 * by default: quadratic copying for a long field); by as much as
		 * it holds and this line has, it grows once per line at most
		 * and doubles */
		size_t blk = in->csv.entry_size > n ? in->csv.entry_size : n;
		csv_set_blk_size(&in->csv, blk > 4096 ? blk : 4096);
		if (csv_parse(&in->csv, s, n, csv_field, csv_row, in) != n && !in->err)
			return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					   "malformed quoting (quote the whole field and "
					   "double the quotes inside it: \"say \"\"hi\"\"\")");
		if (!was_quoted || in->fields_ended)
			in->quote_line = in->lineno;
	}
	return in->err;
}

/* ---- JSONL -------------------------------------------------------------- */

static int json_fields(const cJSON *obj, struct tk_buf *l)
{
	int i = 0;
	for (const cJSON *c = obj->child; c; c = c->next, i++)
		if (tk_buf_append(l, i ? ", " : "", i ? 2 : 0) ||
		    tk_buf_append(l, c->string, strlen(c->string)))
			return TK_E_NOMEM;
	return tk_buf_append(l, "", 0);
}

/* Member w of obj into *v (NULL when there is none) and its index into *at
 * (when at is not NULL).  A name given twice is TK_E_FORMAT: json.loads
 * would keep the last value, cJSON the first, and Arrow's JSON reader
 * (datasets) refuses the line. */
static int json_get(tk_input_t *in, const cJSON *obj, const char *w, const cJSON **v, int *at,
		    struct tk_diag *d)
{
	int i = 0;
	*v = NULL;
	for (const cJSON *c = obj->child; c; c = c->next, i++) {
		if (strcmp(c->string, w))
			continue;
		if (*v)
			return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					   "field '%s' given twice", w);
		*v = c;
		if (at)
			*at = i;
	}
	return 0;
}

/* Where a NUL is in line s[0..n): a raw byte (*esc 0; JSON allows none) or
 * a \u0000 escape (*esc 1), which cJSON would take as the end of the
 * string.  Returns its offset, or -1 when there is none. */
static long long json_nul(const char *s, size_t n, int *esc)
{
	for (size_t i = 0; i < n; i++) {
		if (!s[i]) {
			*esc = 0;
			return (long long)i;
		}
		if (s[i] != '\\' || i + 1 == n)
			continue;
		if (n - i >= 6 && !memcmp(s + i + 1, "u0000", 5)) {
			*esc = 1;
			return (long long)i;
		}
		if (s[i + 1])
			i++; /* an escaped character, a backslash included */
	}
	return -1;
}

/* The walk through the source of a line that cJSON parsed, to find where a
 * value lies: whitespace as cJSON skips it (every byte up to the space). */
static size_t json_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (unsigned char)s[i] <= 32)
		i++;
	return i;
}

/* One past the closing quote of the string that opens at s[i]. */
static size_t json_str_end(const char *s, size_t n, size_t i)
{
	for (i++; i < n && s[i] != '"'; i++)
		if (s[i] == '\\')
			i++;
	return i < n ? i + 1 : n;
}

/* One past the end of the value that starts at s[i]. */
static size_t json_value_end(const char *s, size_t n, size_t i)
{
	if (i < n && s[i] == '"')
		return json_str_end(s, n, i);
	if (i < n && (s[i] == '{' || s[i] == '[')) {
		int depth = 0;
		for (; i < n; i++) {
			if (s[i] == '"')
				i = json_str_end(s, n, i) - 1;
			else if (s[i] == '{' || s[i] == '[')
				depth++;
			else if ((s[i] == '}' || s[i] == ']') && !--depth)
				return i + 1;
		}
		return n;
	}
	while (i < n && (unsigned char)s[i] > 32 && s[i] != ',' && s[i] != '}' && s[i] != ']')
		i++;
	return i;
}

/* The source [*b, *e) of the value of member k (0-based, in the order of
 * cJSON's children) of the object that line s[0..n) holds. */
static void json_member(const char *s, size_t n, int k, size_t *b, size_t *e)
{
	size_t i = n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3) ? 3 : 0; /* cJSON skips it */
	i = json_ws(s, n, i) + 1; /* past { */
	for (int m = 0;; m++) {
		i = json_ws(s, n, json_str_end(s, n, json_ws(s, n, i))) + 1; /* the name, : */
		*b = json_ws(s, n, i);
		*e = json_value_end(s, n, *b);
		if (m == k || *e >= n)
			break;
		i = json_ws(s, n, *e) + 1; /* past , */
	}
	*b = *b < n ? *b : n; /* never past the line, should cJSON differ */
	*e = *e < n ? *e : n;
}

/* Whether s[0..n) is exactly a JSON number (cJSON also takes 01, 1. and
 * -.5); *is_int says whether it has neither fraction nor exponent. */
static int json_number_ok(const char *s, size_t n, int *is_int)
{
	size_t i = 0, j;
#define DIGITS() for (j = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0')
		i++;
	else if (i < n && s[i] >= '1' && s[i] <= '9')
		DIGITS();
	else
		return 0;
	*is_int = 1;
	if (i < n && s[i] == '.') {
		i++;
		DIGITS();
		if (i == j)
			return 0;
		*is_int = 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		DIGITS();
		if (i == j)
			return 0;
		*is_int = 0;
	}
#undef DIGITS
	return i == n;
}

/* Python's repr(x) into r (64 bytes): the shortest digits that read back
 * as x (of two candidates as short, the nearer), written as 1e+16, 1e-05,
 * 0.0001, 100.0, inf. */
static void py_float_repr(double x, char *r)
{
	char e[64], dig[24];
	int nd = 0, exp10 = 0, neg = signbit(x) != 0;
	double ax = fabs(x);

	if (isinf(x) || ax == 0) {
		snprintf(r, 64, "%s%s", neg ? "-" : "", ax == 0 ? "0.0" : "inf");
		return;
	}
	for (int p = 1; p <= 17; p++) {
		/* the nearest p digits, d.ddde+X */
		snprintf(e, sizeof(e), "%.*e", p - 1, ax);
		nd = 0;
		for (const char *c = e; *c != 'e'; c++)
			if (*c != '.')
				dig[nd++] = *c;
		exp10 = atoi(strchr(e, 'e') + 1);
		double y = strtod(e, NULL);
		if (y == ax)
			break;
		/* or the p digits on x's other side: where the gap to the next
		 * double is smaller below x than above (at a power of two), they
		 * may read back as x when the nearest does not */
		int k = nd - 1;
		if (y < ax) {
			while (k >= 0 && dig[k] == '9')
				dig[k--] = '0';
			if (k < 0) {
				memmove(dig + 1, dig, (size_t)nd);
				dig[0] = '1';
				exp10++;
			} else {
				dig[k]++;
			}
		} else {
			while (k > 0 && dig[k] == '0') /* dig[0] is not 0: stop there */
				dig[k--] = '9';
			dig[k]--;
			if (dig[0] == '0') {
				memmove(dig, dig + 1, (size_t)--nd);
				exp10--;
			}
		}
		snprintf(e, sizeof(e), "%c.%.*se%d", dig[0], nd - 1, dig + 1, exp10);
		if (strtod(e, NULL) == ax)
			break;
	}
	while (nd > 1 && dig[nd - 1] == '0')
		nd--;
	/* Python's format_float_short: an exponent below 1e-4 and from 1e16 */
	int decpt = exp10 + 1;
	char *o = r;
	if (neg)
		*o++ = '-';
	if (exp10 < -4 || exp10 >= 16) {
		snprintf(o, 60, "%c%s%.*se%c%02d", dig[0], nd > 1 ? "." : "", nd - 1, dig + 1,
			 exp10 < 0 ? '-' : '+', abs(exp10));
		return;
	}
	if (decpt <= 0) {
		*o++ = '0';
		*o++ = '.';
		for (int i = decpt; i < 0; i++)
			*o++ = '0';
	}
	for (int i = 0; i < nd || i < decpt; i++) {
		if (i == decpt && decpt > 0)
			*o++ = '.';
		*o++ = i < nd ? dig[i] : '0';
	}
	if (decpt >= nd) {
		*o++ = '.';
		*o++ = '0';
	}
	*o = '\0';
}

/* The text Python makes of the JSON number s[0..n), str(json.loads(s)),
 * into out: an integer as written (-0 is 0, and no digit is lost), a
 * float as repr writes it (1E5 is 100000.0, 1e400 inf).  TK_E_FORMAT when
 * s is not a JSON number. */
static int json_number_text(const char *s, size_t n, struct tk_buf *out)
{
	int is_int;
	out->len = 0;
	if (!json_number_ok(s, n, &is_int))
		return TK_E_FORMAT;
	if (is_int) {
		if (n == 2 && s[0] == '-' && s[1] == '0')
			s++, n--;
		return tk_buf_append(out, s, n);
	}
	char r[64];
	if (tk_buf_append(out, s, n)) /* NUL-terminated for strtod */
		return TK_E_NOMEM;
	py_float_repr(strtod(out->data, NULL), r);
	out->len = 0;
	return tk_buf_append(out, r, strlen(r));
}

/* The first key given twice in an object inside j (json.loads keeps the
 * last, cJSON the first); NULL when none is. */
static const char *json_dup_key(const cJSON *j)
{
	for (const cJSON *c = j ? j->child : NULL; c; c = c->next) {
		const char *k;
		if (cJSON_IsObject(j))
			for (const cJSON *e = c->next; e; e = e->next)
				if (!strcmp(c->string, e->string))
					return c->string;
		if ((k = json_dup_key(c)))
			return k;
	}
	return NULL;
}

/* A JSONL line's conversation rendered through the chat template and
 * queued with its assistant spans (when o.chat_spans): the list of field
 * want[0] (PICK_CHAT), or (PICK_PAIR with lists, TRL's conversational
 * prompt-completion) the prompt's messages then the completion's, the
 * prompt being the text that the prompt's messages render to with the
 * generation prompt (as far as the whole text starts with it).  The
 * line's "tools" and "chat_template_kwargs" fields reach the template, as
 * TRL passes a dataset's. */
static int conversation(tk_input_t *in, const cJSON *obj, struct tk_diag *d)
{
	const int pair = in->pick == PICK_PAIR;
	const cJSON *v[2] = { NULL, NULL }, *tools = NULL, *kw = NULL;
	cJSON *all = NULL;
	struct tk_buf pt = { 0 };
	size_t *sp = NULL;
	int ns = 0, rc = 0;

	for (int f = 0; f < 1 + pair; f++) {
		if ((rc = json_get(in, obj, in->want[f], &v[f], NULL, d)))
			return rc;
		if (!v[f]) {
			struct tk_buf l = { 0 };
			json_fields(obj, &l);
			rc = tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					 "no field '%s' (fields: %s)", in->want[f], l.data ? l.data : "");
			tk_buf_free(&l);
			return rc;
		}
		if (!cJSON_IsArray(v[f]) || !cJSON_GetArraySize(v[f]))
			return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					   "field '%s' is not a list of messages", in->want[f]);
	}
	if ((rc = json_get(in, obj, "tools", &tools, NULL, d)) ||
	    (rc = json_get(in, obj, "chat_template_kwargs", &kw, NULL, d)))
		return rc;
	if (kw && !cJSON_IsObject(kw))
		return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
				   "field 'chat_template_kwargs' is not an object");
	const cJSON *parts[4] = { v[0], v[1], tools, kw };
	for (int i = 0; i < 4; i++) {
		const char *k = json_dup_key(parts[i]);
		if (k)
			return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					   "field '%s' given twice", k);
	}
	if (!in->o.chat)
		return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
				   "a conversation needs a chat template: %s",
				   in->o.no_chat_why ? in->o.no_chat_why : "none given");
	if (!(all = cJSON_CreateArray()))
		return tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
	for (int f = 0; f < 1 + pair; f++) {
		const cJSON *it;
		cJSON_ArrayForEach(it, v[f])
			if (!cJSON_AddItemReferenceToArray(all, (cJSON *)it))
				rc = tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
	}
	if (!rc && pair)
		rc = tk_chat_apply(in->o.chat, v[0], tools, kw, TK_CHAT_GENERATION_PROMPT, &pt, NULL,
				   NULL, d);
	size_t off = text_begin(in), plen = 0;
	if (!rc)
		rc = tk_chat_apply(in->o.chat, all, tools, kw, 0, &in->out,
				   in->o.chat_spans ? &sp : NULL, &ns, d);
	cJSON_Delete(all);
	while (!rc && plen < pt.len && off + plen < in->out.len &&
	       in->out.data[off + plen] == pt.data[plen])
		plen++;
	tk_buf_free(&pt);
	if (!rc && in->spans_cap - in->n_spans < 2 * (size_t)ns) {
		size_t cap = in->n_spans + 2 * (size_t)ns + 64;
		size_t *p = tk_reallocn(in->spans, cap, sizeof(*p));
		if (!p)
			rc = tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
		else
			in->spans = p, in->spans_cap = cap;
	}
	if (rc) {
		free(sp);
		if (rc == TK_E_INVAL) /* the template's raise_exception: bad data */
			rc = TK_E_FORMAT;
		if (d && !d->path[0]) {
			snprintf(d->path, sizeof(d->path), "%.1000s", in->name);
			d->line = in->lineno;
		}
		return rc;
	}
	if (ns)
		memcpy(in->spans + in->n_spans, sp, 2 * (size_t)ns * sizeof(*sp));
	free(sp);
	if (queue(in, off, plen, in->lineno))
		return tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
	struct pending *p = &in->q[in->q_n - 1];
	p->chat = 1;
	p->span_off = in->n_spans;
	p->n_spans = ns;
	in->n_spans += 2 * (size_t)ns;
	return 0;
}

static int jsonl_line(tk_input_t *in, const char *s, size_t n, struct tk_diag *d)
{
	const char *end = NULL;
	cJSON *obj = cJSON_ParseWithLengthOpts(s, n, &end, 0);
	int rc = 0;
	char **tmp = NULL;
	if (!obj || !cJSON_IsObject(obj)) {
		if (!obj)
			rc = tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					 "not JSON (error at character %lld; one object per "
					 "line expected)", end ? (long long)(end - s) + 1 : 1LL);
		else
			rc = tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					 "not a JSON object (one object per line expected)");
		goto out;
	}
	for (end = end ? end : s + n; end < s + n && strchr(" \t\r\n", *end); end++)
		;
	if (end < s + n) {
		rc = tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
				 "text after the JSON object (one object per line expected)");
		goto out;
	}
	int esc;
	long long nul = json_nul(s, n, &esc);
	if (nul >= 0) {
		rc = tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
				 esc ? "\\u0000 (a NUL character) at character %lld cannot be part "
				       "of a text" : "not JSON (a NUL byte at character %lld)",
				 nul + 1);
		goto out;
	}
	if (in->pick == PICK_NONE) {
		int k = cJSON_GetArraySize(obj);
		tmp = tk_mallocn((size_t)k, sizeof(*tmp));
		if (!tmp) {
			rc = tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
			goto out;
		}
		int i = 0;
		for (const cJSON *c = obj->child; c; c = c->next)
			tmp[i++] = c->string;
		if ((rc = choose(in, tmp, k, "field", d, in->lineno)))
			goto out;
	}
	if (in->pick == PICK_CHAT ||
	    (in->pick == PICK_PAIR && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(obj, in->want[0])))) {
		rc = conversation(in, obj, d);
		goto out;
	}
	for (int k = 0; k < in->n_want && !rc; k++) {
		const char *w = want_name(in, k);
		const cJSON *v;
		int at = 0;
		if ((rc = json_get(in, obj, w, &v, &at, d)))
			break;
		if (cJSON_IsString(v)) {
			in->vals[k] = v->valuestring;
			in->lens[k] = strlen(v->valuestring);
		} else if (cJSON_IsNumber(v) || cJSON_IsBool(v)) {
			/* as Python's str() writes what json.loads reads: 3, 0.5,
			 * 1e+20, 100000.0 for 1E5, True; from the source, where
			 * cJSON keeps only a double */
			struct tk_buf *t = &in->num[k];
			size_t b, e;
			t->len = 0;
			if (cJSON_IsBool(v)) {
				rc = cJSON_IsTrue(v) ? tk_buf_append(t, "True", 4)
						     : tk_buf_append(t, "False", 5);
			} else {
				json_member(s, n, at, &b, &e);
				rc = json_number_text(s + b, e - b, t);
				if (rc == TK_E_FORMAT) {
					int cut = e - b > 40;
					rc = tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
							 "not JSON (bad number %.*s%s at character "
							 "%zu)", cut ? 40 : (int)(e - b), s + b,
							 cut ? "..." : "", b + 1);
					break;
				}
			}
			if (rc) {
				rc = tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
				break;
			}
			in->vals[k] = t->data;
			in->lens[k] = t->len;
		} else if (!v) {
			struct tk_buf l = { 0 };
			json_fields(obj, &l);
			rc = tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					 "no field '%s' (fields: %s)", w, l.data ? l.data : "");
			tk_buf_free(&l);
		} else {
			rc = tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					 "field '%s' is %s, not a string", w,
					 cJSON_IsNull(v) ? "null" : cJSON_IsArray(v) ? "an array"
								: "an object");
		}
	}
	if (!rc && emit(in, in->lineno))
		rc = tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
out:
	free(tmp);
	cJSON_Delete(obj);
	return rc;
}

/* ---- JSON arrays -------------------------------------------------------- */

/* A .json file may hold one array of objects (Alpaca's data.json) instead of
 * one object per line: datasets' json loader reads both.  The array is
 * scanned as lines arrive (strings, escapes and nesting tracked), each
 * record is collected whole and then goes through jsonl_line as if it were
 * a line of its own, numbered by the line where it starts; messages name the
 * record too.  Memory stays bounded by the longest record (and line). */

/* Whether the JSON input is an array: decided at its first non-blank line
 * (s NULL: at the end of the input). */
static int json_array_in(tk_input_t *in, const char *s, size_t n)
{
	if (in->jarr == 0 && s) {
		size_t i = json_ws(s, n, 0);
		if (i < n)
			in->jarr = s[i] == '[' ? 2 : 1;
		in->jwant = 3; /* the [ first */
	}
	return in->jarr >= 2;
}

/* Sets d's message to "record N: MSG" (the record being read). */
static void json_record_msg(tk_input_t *in, struct tk_diag *d)
{
	char m[sizeof(d->msg)];
	if (!d)
		return;
	snprintf(m, sizeof(m), "%s", d->msg);
	snprintf(d->msg, sizeof(d->msg), "record %lld: %.990s", in->jrec_no, m);
}

/* The record in in->jrec, whole: checked to be one JSON object, then read
 * as a line. */
static int json_array_record(tk_input_t *in, struct tk_diag *d)
{
	const char *s = in->jrec.data, *end = NULL;
	size_t n = in->jrec.len;
	cJSON *obj = cJSON_ParseWithLengthOpts(s, n, &end, 0);
	int rc;
	if (!obj || !cJSON_IsObject(obj)) {
		long long line = in->jrec_line;
		for (const char *p = s; obj == NULL && end && p < end && p < s + n; p++)
			line += *p == '\n';
		cJSON_Delete(obj);
		return tk_diag_set(d, TK_E_FORMAT, in->name, line, "record %lld: not JSON%s",
				   in->jrec_no, obj ? " (not an object)" : "");
	}
	cJSON_Delete(obj);
	long long lineno = in->lineno;
	in->lineno = in->jrec_line; /* messages and the example name its start */
	rc = jsonl_line(in, s, n, d);
	in->lineno = lineno;
	if (rc < 0 && d && d->path[0]) /* about the data, not the options */
		json_record_msg(in, d);
	in->jrec.len = 0;
	return rc;
}

/* Scans line s[0..n) of the array (s NULL: the input ended), reading each
 * record that ends in it. */
static int json_array_line(tk_input_t *in, const char *s, size_t n, struct tk_diag *d)
{
	if (!s) {
		if (in->jarr == 3)
			return 0;
		if (in->jdepth)
			return tk_diag_set(d, TK_E_FORMAT, in->name, in->jrec_line,
					   "record %lld: not JSON (it never ends)", in->jrec_no);
		return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
				   "not JSON (the array never ends: ']' expected)");
	}
	size_t seg = 0; /* where this line's part of the current record begins */
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in->jdepth) {
			if (in->jstr) {
				if (in->jesc)
					in->jesc = 0;
				else if (c == '\\')
					in->jesc = 1;
				else if (c == '"')
					in->jstr = 0;
				continue;
			}
			if (c == '"')
				in->jstr = 1;
			else if (c == '{' || c == '[')
				in->jdepth++;
			else if ((c == '}' || c == ']') && !--in->jdepth) {
				int rc;
				if (tk_buf_append(&in->jrec, s + seg, i + 1 - seg))
					return tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
				if ((rc = json_array_record(in, d)))
					return rc;
				in->jwant = 1;
			}
			continue;
		}
		if ((unsigned char)c <= 32)
			continue; /* whitespace, as cJSON skips it */
		if (in->jwant == 3) { /* the array's own [ (json_array_in saw it) */
			in->jwant = 0;
			continue;
		}
		if (in->jarr == 3)
			return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					   "text after the JSON array (one array of objects, "
					   "or one object per line, expected)");
		if (in->jwant != 1 && c == '{') {
			in->jdepth = 1;
			in->jrec_no++;
			in->jrec_line = in->lineno;
			seg = i;
		} else if (in->jwant == 1 && c == ',') {
			in->jwant = 2;
		} else if (in->jwant != 2 && c == ']') {
			in->jarr = 3;
		} else if (in->jwant == 1) {
			return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					   "not JSON (',' or ']' expected after record %lld)",
					   in->jrec_no);
		} else if (c == ']') {
			return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					   "not JSON (a comma before the closing ])");
		} else {
			return tk_diag_set(d, TK_E_FORMAT, in->name, in->lineno,
					   "record %lld: not a JSON object (an array of objects "
					   "expected)", in->jrec_no + 1);
		}
	}
	if (in->jdepth && tk_buf_append(&in->jrec, s + seg, n - seg))
		return tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
	return 0;
}

/* ---- text --------------------------------------------------------------- */

static int text_whole(tk_input_t *in, struct tk_diag *d)
{
	const char *s;
	size_t n;
	int rc;
	size_t off = text_begin(in);
	while ((rc = read_line(in, &s, &n, d)) > 0)
		if (tk_buf_append(&in->out, s, n))
			return tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
	if (rc < 0)
		return rc;
	if (in->out.len > off)
		return queue(in, off, 0, 1) ? tk_diag_set(d, TK_E_NOMEM, in->name, -1,
							"out of memory") : 0;
	return 0;
}

/* ---- the public interface ----------------------------------------------- */

int tk_input_open(tk_input_t **inp, const char *path, const struct tk_input_opts *o,
		  struct tk_diag *d)
{
	tk_input_t *in = calloc(1, sizeof(*in));
	int rc = 0;
	*inp = NULL;
	if (!in)
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	in->o = *o;
	in->fmt = o->format != TK_INPUT_AUTO ? o->format : tk_input_format_of(path);
	in->name = strdup(strcmp(path, "-") ? path : "<stdin>");
	if (!in->name) {
		rc = tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
		goto fail;
	}
	if (o->tmpl && (rc = tk_tmpl_parse(&in->tmpl, o->tmpl, d)))
		goto fail;
	if ((rc = pair_tmpl_build(in, d)))
		goto fail;
	if (strcmp(path, "-")) {
		if (!(in->fp = fopen(path, "rb"))) {
			rc = tk_diag_sys(d, path, "cannot open");
			goto fail;
		}
		in->own_fp = 1;
	} else {
		in->fp = stdin;
	}
	if (in->fmt == TK_INPUT_CSV) {
		if (csv_init(&in->csv, CSV_STRICT | CSV_STRICT_FINI)) {
			rc = tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
			goto fail;
		}
		in->csv_ready = 1;
		csv_set_space_func(&in->csv, no_space);
		csv_set_delim(&in->csv, in->delim = csv_delim(o, path));
	}
	if (in->fmt == TK_INPUT_CSV || in->fmt == TK_INPUT_JSONL) {
		/* room for every name a choice can use */
		in->n_vals = in->tmpl.n_names > 2 ? (int)in->tmpl.n_names : 2;
		in->vals = tk_mallocn((size_t)in->n_vals, sizeof(*in->vals));
		in->lens = tk_mallocn((size_t)in->n_vals, sizeof(*in->lens));
		in->num = calloc((size_t)in->n_vals, sizeof(*in->num));
		if (!in->vals || !in->lens || !in->num) {
			rc = tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
			goto fail;
		}
	}
	if (in->fmt == TK_INPUT_CSV) {
		if ((rc = csv_pump(in, 1, d)))
			goto fail;
	} else if (in->fmt == TK_INPUT_TEXT && (o->column || o->field || o->tmpl ||
						  o->prompt || o->response || o->messages ||
						  o->prompt_tmpl || o->response_tmpl)) {
		rc = tk_diag_set(d, TK_E_INVAL, in->name, -1,
				 "plain text has no columns or fields (use a .csv or "
				 ".jsonl file, or --format)");
		goto fail;
	}
	*inp = in;
	return 0;
fail:
	tk_input_free(in);
	return rc;
}

int tk_input_next(tk_input_t *in, struct tk_example *ex, struct tk_diag *d)
{
	int rc = 0;
	if (in->q_head == in->q_n) {
		in->q_head = in->q_n = 0;
		in->out.len = 0;
		in->n_spans = 0;
	}
	while (in->q_head == in->q_n && !in->eof && !rc) {
		const char *s;
		size_t n;
		switch (in->fmt) {
		case TK_INPUT_CSV:
			rc = csv_pump(in, 0, d);
			break;
		case TK_INPUT_JSONL:
			if ((rc = read_line(in, &s, &n, d)) < 0)
				break;
			if (json_array_in(in, rc ? s : NULL, n)) {
				rc = json_array_line(in, rc ? s : NULL, n, d);
				break;
			}
			if (!rc)
				break;
			rc = 0;
			n = chomp(s, n);
			if (strspn(s, " \t\r") < n)
				rc = jsonl_line(in, s, n, d);
			break;
		case TK_INPUT_TEXT:
		case TK_INPUT_AUTO:
			if (!in->o.split_lines) {
				rc = text_whole(in, d);
				break;
			}
			if ((rc = read_line(in, &s, &n, d)) <= 0)
				break;
			rc = 0;
			n = chomp(s, n);
			if (!n)
				break;
			size_t off = text_begin(in);
			if (tk_buf_append(&in->out, s, n) || queue(in, off, 0, in->lineno))
				rc = tk_diag_set(d, TK_E_NOMEM, in->name, -1, "out of memory");
			break;
		}
	}
	if (rc < 0)
		return rc;
	if (in->q_head == in->q_n)
		return 0;
	const struct pending *p = &in->q[in->q_head++];
	ex->text = in->out.data + p->off;
	ex->len = p->len;
	ex->prompt_len = p->prompt_len;
	ex->line = p->line;
	ex->chat = p->chat;
	ex->spans = p->chat ? in->spans + p->span_off : NULL;
	ex->n_spans = p->n_spans;
	return 1;
}

void tk_input_free(tk_input_t *in)
{
	if (!in)
		return;
	if (in->own_fp)
		fclose(in->fp);
	if (in->csv_ready)
		csv_free(&in->csv);
	for (int i = 0; i < in->n_cols; i++)
		free(in->cols[i]);
	free(in->cols);
	free(in->col_of);
	free(in->fld_off);
	free(in->fld_len);
	free(in->vals);
	free(in->lens);
	for (int i = 0; in->num && i < in->n_vals; i++)
		tk_buf_free(&in->num[i]);
	free(in->num);
	free(in->picked);
	free(in->q);
	free(in->spans);
	free(in->line);
	free(in->name);
	tk_buf_free(&in->fixed);
	tk_buf_free(&in->row);
	tk_buf_free(&in->out);
	tk_buf_free(&in->jrec);
	tk_tmpl_free(&in->tmpl);
	free(in);
}

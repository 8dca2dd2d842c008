/* jinja.c - the Jinja2 subset of chat templates (see jinja.h).
 *
 * Three parts: a lexer that applies jinja2's whitespace rules (trim_blocks,
 * lstrip_blocks, "-" and "+" on tags) while it splits the template into
 * text and tag tokens; a recursive-descent parser that builds a tree of
 * nodes, in jinja2's operator precedence; and an evaluator over Python-like
 * values.  Everything a compile or a render allocates comes from an arena
 * freed at once, and errors unwind with longjmp to the entry point, which
 * turns them into a tk_diag.
 */
#include "text/jinja.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

/* ---------------------------------------------------------------- arena */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t data[];
};

struct arena {
	struct chunk *head;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (!a->head || a->head->cap - a->head->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		struct chunk *c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = a->head;
		c->used = 0;
		c->cap = cap;
		a->head = c;
	}
	void *p = (char *)a->head->data + a->head->used;
	a->head->used += n;
	return p;
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct chunk *c = a->head;
		a->head = c->next;
		free(c);
	}
}

/* An error unwinds to the entry point through a jump buffer; err and msg
 * say what, line where. */
struct fail {
	jmp_buf jb;
	int err;
	int line;
	char msg[900];
};

static _Noreturn __attribute__((format(printf, 4, 5))) void
fail(struct fail *f, int err, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	f->err = err;
	f->line = line;
	longjmp(f->jb, 1);
}

static void *xalloc(struct arena *a, struct fail *f, size_t n)
{
	void *p = arena_alloc(a, n);
	if (!p)
		fail(f, TK_E_NOMEM, 0, "out of memory");
	memset(p, 0, n);
	return p;
}

static char *xstrndup(struct arena *a, struct fail *f, const char *s, size_t n)
{
	char *p = xalloc(a, f, n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

static int is_ws(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
	       (c >= 0x1c && c <= 0x1f);
}

/* ---------------------------------------------------------------- lexer */

enum tok_type { T_TEXT, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT,
		T_OP, T_EOF };

struct tok {
	int t, line;
	const char *s; /* text, name, string (NUL-terminated), operator */
	size_t n;
	long long i;
	double f;
};

struct lexer {
	struct arena *a;
	struct fail *f;
	const char *src;
	size_t len, pos;
	int line;
	struct tok *toks;
	size_t n, cap;
};

static void push_tok(struct lexer *L, struct tok t)
{
	if (L->n == L->cap) {
		size_t cap = L->cap ? 2 * L->cap : 256;
		struct tok *nt = xalloc(L->a, L->f, cap * sizeof(*nt));
		if (L->n)
			memcpy(nt, L->toks, L->n * sizeof(*nt));
		L->toks = nt;
		L->cap = cap;
	}
	L->toks[L->n++] = t;
}

static int count_nl(const char *s, size_t n)
{
	int k = 0;
	for (size_t i = 0; i < n; i++)
		k += s[i] == '\n';
	return k;
}

/* Appends the UTF-8 encoding of code point c to p; returns its length. */
static int put_utf8(char *p, uint32_t c)
{
	utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)c, (utf8proc_uint8_t *)p);
	return n > 0 ? (int)n : 0;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	     : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A string literal from its opening quote at L->pos, unescaped as Python
 * does. */
static void lex_string(struct lexer *L)
{
	const char *s = L->src;
	char q = s[L->pos];
	size_t i = L->pos + 1, o = 0;
	int line = L->line;
	char *out;

	while (i < L->len && s[i] != q) {
		if (s[i] == '\\' && i + 1 < L->len)
			i++;
		i++;
	}
	if (i >= L->len)
		fail(L->f, TK_E_FORMAT, line, "unterminated string");
	out = xalloc(L->a, L->f, i - L->pos + 8);
	for (size_t k = L->pos + 1; k < i; k++) {
		char c = s[k];
		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		c = s[++k];
		int w = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
		if (w) {
			uint32_t v = 0;
			int ok = k + w < i;
			for (int j = 1; ok && j <= w; j++) {
				int h = hexval((unsigned char)s[k + j]);
				ok = h >= 0;
				v = v * 16 + (uint32_t)(h < 0 ? 0 : h);
			}
			if (!ok)
				fail(L->f, TK_E_FORMAT, line, "bad \\%c escape in a string", c);
			o += (size_t)put_utf8(out + o, v);
			k += (size_t)w;
			continue;
		}
		if (c >= '0' && c <= '7') {
			uint32_t v = 0;
			int j = 0;
			while (j < 3 && s[k] >= '0' && s[k] <= '7')
				v = v * 8 + (uint32_t)(s[k++] - '0'), j++;
			k--;
			o += (size_t)put_utf8(out + o, v);
			continue;
		}
		switch (c) {
		case 'n': out[o++] = '\n'; break;
		case 't': out[o++] = '\t'; break;
		case 'r': out[o++] = '\r'; break;
		case 'a': out[o++] = '\a'; break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'v': out[o++] = '\v'; break;
		case '\\': case '\'': case '"': out[o++] = c; break;
		case '\n': break;
		default: out[o++] = '\\'; out[o++] = c; break;
		}
	}
	out[o] = 0;
	L->line += count_nl(s + L->pos, i - L->pos);
	push_tok(L, (struct tok){ .t = T_STR, .line = line, .s = out, .n = o });
	L->pos = i + 1;
}

/* The tokens of a tag's inside up to its end ("}}" for a variable tag,
 * "%}" for a block tag), with "-" and "+" modifiers in *mod.  Braces
 * opened inside the tag are balanced first, as jinja2 does. */
static void lex_tag(struct lexer *L, int block, int *mod)
{
	const char *s = L->src;
	int depth = 0, start_line = L->line;
	static const char *const ops[] = { "//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/",
					   "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}",
					   ",", ".", ":", "|", NULL };

	for (;;) {
		while (L->pos < L->len && is_ws((unsigned char)s[L->pos]))
			L->line += s[L->pos++] == '\n';
		if (L->pos >= L->len)
			fail(L->f, TK_E_FORMAT, start_line, "unclosed %s tag",
			     block ? "{% ... %}" : "{{ ... }}");
		const char *p = s + L->pos;
		size_t left = L->len - L->pos;
		const char *end = block ? "%}" : "}}";
		if (depth == 0) {
			if ((*p == '-' || *p == '+') && left >= 3 && !memcmp(p + 1, end, 2)) {
				*mod = *p;
				L->pos += 3;
				return;
			}
			if (left >= 2 && !memcmp(p, end, 2)) {
				*mod = 0;
				L->pos += 2;
				return;
			}
		}
		if (*p == '\'' || *p == '"') {
			lex_string(L);
			continue;
		}
		if (*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
			size_t n = 1;
			while (n < left && (p[n] == '_' || (p[n] >= 'a' && p[n] <= 'z') ||
					    (p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= '0' && p[n] <= '9')))
				n++;
			push_tok(L, (struct tok){ .t = T_NAME, .line = L->line,
						  .s = xstrndup(L->a, L->f, p, n), .n = n });
			L->pos += n;
			continue;
		}
		if (*p >= '0' && *p <= '9') {
			char buf[128];
			size_t n = 0, b = 0;
			int is_float = 0;
			while (n < left && ((p[n] >= '0' && p[n] <= '9') || p[n] == '_'))
				n++;
			if (n + 1 < left && p[n] == '.' && p[n + 1] >= '0' && p[n + 1] <= '9') {
				is_float = 1;
				n++;
				while (n < left && ((p[n] >= '0' && p[n] <= '9') || p[n] == '_'))
					n++;
			}
			if (n < left && (p[n] == 'e' || p[n] == 'E')) {
				size_t m = n + 1;
				if (m < left && (p[m] == '+' || p[m] == '-'))
					m++;
				if (m < left && p[m] >= '0' && p[m] <= '9') {
					is_float = 1;
					n = m;
					while (n < left && p[n] >= '0' && p[n] <= '9')
						n++;
				}
			}
			for (size_t k = 0; k < n && b + 1 < sizeof(buf); k++)
				if (p[k] != '_')
					buf[b++] = p[k];
			buf[b] = 0;
			errno = 0;
			struct tok t = { .t = is_float ? T_FLOAT : T_INT, .line = L->line };
			if (is_float)
				t.f = strtod(buf, NULL);
			else
				t.i = strtoll(buf, NULL, 10);
			if (errno)
				fail(L->f, TK_E_UNSUPPORTED, L->line, "number %s out of range", buf);
			push_tok(L, t);
			L->pos += n;
			continue;
		}
		int k;
		for (k = 0; ops[k]; k++)
			if (!strncmp(p, ops[k], strlen(ops[k])))
				break;
		if (!ops[k])
			fail(L->f, TK_E_FORMAT, L->line, "unexpected character '%c'", *p);
		if (*p == '(' || *p == '[' || *p == '{')
			depth++;
		else if ((*p == ')' || *p == ']' || *p == '}') && depth > 0)
			depth--;
		push_tok(L, (struct tok){ .t = T_OP, .line = L->line, .s = ops[k],
					  .n = strlen(ops[k]) });
		L->pos += strlen(ops[k]);
	}
}

/* Skips white space after a "-" tag end; returns whether the last skipped
 * character was a newline. */
static int skip_ws(struct lexer *L)
{
	int nl = 0;
	while (L->pos < L->len && is_ws((unsigned char)L->src[L->pos])) {
		nl = L->src[L->pos] == '\n';
		L->line += nl;
		L->pos++;
	}
	return nl;
}

static void push_text(struct lexer *L, const char *s, size_t n, int line)
{
	if (n)
		push_tok(L, (struct tok){ .t = T_TEXT, .line = line, .s = s, .n = n });
}

/* Whether the block tag whose tokens start at toks[k] is {% raw %}. */
static int is_raw(const struct lexer *L, size_t k)
{
	return L->n == k + 2 && L->toks[k].t == T_NAME && !strcmp(L->toks[k].s, "raw");
}

static void lex(struct lexer *L)
{
	const char *s = L->src;
	int line_start = 1;

	while (L->pos < L->len) {
		const char *p = s + L->pos, *tag = NULL;
		for (const char *q = p; (q = memchr(q, '{', (size_t)(s + L->len - q))); q++)
			if (q + 1 < s + L->len && (q[1] == '{' || q[1] == '%' || q[1] == '#')) {
				tag = q;
				break;
			}
		size_t tn = tag ? (size_t)(tag - p) : L->len - L->pos;
		int text_line = L->line;
		if (!tag) {
			push_text(L, p, tn, text_line);
			L->line += count_nl(p, tn);
			L->pos = L->len;
			break;
		}
		char kind = tag[1], mod = tag + 2 < s + L->len ? tag[2] : 0;
		size_t keep = tn;
		if (mod == '-') {
			while (keep && is_ws((unsigned char)p[keep - 1]))
				keep--;
		} else if (kind != '{' && mod != '+') {
			/* lstrip_blocks */
			size_t l = keep;
			while (l && p[l - 1] != '\n')
				l--;
			int all_ws = l < keep;
			for (size_t k = l; k < keep && all_ws; k++)
				all_ws = p[k] == ' ' || p[k] == '\t' || is_ws((unsigned char)p[k]);
			if ((l > 0 || line_start) && all_ws)
				keep = l;
		}
		push_text(L, p, keep, text_line);
		L->line += count_nl(p, tn);
		L->pos += tn + 2 + (mod == '-' || mod == '+');
		if (kind == '#') {
			const char *e = NULL;
			for (size_t k = L->pos; k + 1 < L->len; k++)
				if (s[k] == '#' && s[k + 1] == '}') {
					e = s + k;
					break;
				}
			if (!e)
				fail(L->f, TK_E_FORMAT, L->line, "unclosed comment");
			char m = e > s + L->pos && (e[-1] == '-' || e[-1] == '+') ? e[-1] : 0;
			L->line += count_nl(s + L->pos, (size_t)(e - s) - L->pos);
			L->pos = (size_t)(e - s) + 2;
			line_start = 0;
			if (m == '-')
				line_start = skip_ws(L);
			else if (m != '+' && L->pos < L->len && s[L->pos] == '\n')
				L->pos++, L->line++, line_start = 1;
			continue;
		}
		int tmod;
		size_t first = L->n;
		push_tok(L, (struct tok){ .t = kind == '{' ? T_VBEGIN : T_BBEGIN, .line = L->line });
		lex_tag(L, kind == '%', &tmod);
		push_tok(L, (struct tok){ .t = kind == '{' ? T_VEND : T_BEND, .line = L->line });
		line_start = 0;
		if (tmod == '-')
			line_start = skip_ws(L);
		else if (kind == '%' && tmod != '+' && L->pos < L->len && s[L->pos] == '\n')
			L->pos++, L->line++, line_start = 1;
		if (kind == '%' && is_raw(L, first + 1)) {
			/* {% raw %}: text up to {% endraw %}, verbatim */
			L->n = first;
			const char *q = s + L->pos;
			for (;;) {
				q = strstr(q, "{%");
				if (!q)
					fail(L->f, TK_E_FORMAT, L->line, "{%% raw %%} without {%% endraw %%}");
				const char *r = q + 2 + (q[2] == '-' || q[2] == '+');
				while (is_ws((unsigned char)*r))
					r++;
				if (!strncmp(r, "endraw", 6)) {
					const char *e = r + 6;
					while (is_ws((unsigned char)*e))
						e++;
					char em = *e == '-' || *e == '+' ? *e++ : 0;
					if (e[0] == '%' && e[1] == '}') {
						size_t k = (size_t)(q - (s + L->pos));
						if (q[2] == '-')
							while (k && is_ws((unsigned char)s[L->pos + k - 1]))
								k--;
						push_text(L, s + L->pos, k, L->line);
						L->line += count_nl(s + L->pos, (size_t)(e + 2 - (s + L->pos)));
						L->pos = (size_t)(e + 2 - s);
						line_start = 0;
						if (em == '-')
							line_start = skip_ws(L);
						else if (em != '+' && L->pos < L->len && s[L->pos] == '\n')
							L->pos++, L->line++, line_start = 1;
						break;
					}
				}
				q += 2;
			}
		}
	}
	push_tok(L, (struct tok){ .t = T_EOF, .line = L->line });
}

/* ---------------------------------------------------------------- parser */

enum node_type {
	/* expressions */
	E_STR, E_INT, E_FLOAT, E_TRUE, E_FALSE, E_NONE, E_NAME, E_LIST, E_TUPLE, E_DICT,
	E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST, E_NOT, E_NEG, E_POS, E_BIN,
	E_AND, E_OR, E_COND,
	/* statements */
	S_BODY, S_TEXT, S_OUT, S_IF, S_FOR, S_SET, S_MACRO, S_CALL, S_GEN, S_BREAK, S_CONTINUE,
	S_FILTER
};

/* Binary operators of E_BIN. */
enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CAT, OP_EQ, OP_NE,
       OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN };

struct node {
	int t, line;
	struct node *a, *b, *c, *d;
	struct node **v; /* items, arguments, statements */
	int nv;
	struct node **w; /* dict values, keyword argument values, defaults */
	const char **kn; /* keyword argument names, targets, parameters */
	int nk;
	const char *s;   /* name, text, string */
	size_t sn;
	long long i;     /* integer, operator, negated test */
	double f;
};

struct parser {
	struct arena *a;
	struct fail *f;
	struct tok *t;
	size_t k;
	int has_generation;
};

static struct node *mknode(struct parser *P, int t, int line)
{
	struct node *n = xalloc(P->a, P->f, sizeof(*n));
	n->t = t;
	n->line = line;
	return n;
}

/* A growable list of node pointers in the arena. */
struct nlist {
	struct node **v;
	int n, cap;
};

static void nl_push(struct parser *P, struct nlist *l, struct node *n)
{
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 8;
		struct node **v = xalloc(P->a, P->f, (size_t)cap * sizeof(*v));
		if (l->n)
			memcpy(v, l->v, (size_t)l->n * sizeof(*v));
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = n;
}

static struct tok *peek(struct parser *P)
{
	return &P->t[P->k];
}

static int is_op(const struct tok *t, const char *op)
{
	return t->t == T_OP && !strcmp(t->s, op);
}

static int is_name(const struct tok *t, const char *nm)
{
	return t->t == T_NAME && !strcmp(t->s, nm);
}

static const char *tok_desc(const struct tok *t)
{
	switch (t->t) {
	case T_TEXT: return "template text";
	case T_VEND: return "end of {{ ... }}";
	case T_BEND: return "end of {% ... %}";
	case T_EOF: return "end of template";
	case T_NAME: case T_OP: return t->s;
	case T_STR: return "a string";
	default: return "a number";
	}
}

static void expect_op(struct parser *P, const char *op)
{
	struct tok *t = peek(P);
	if (!is_op(t, op))
		fail(P->f, TK_E_FORMAT, t->line, "expected '%s', got '%s'", op, tok_desc(t));
	P->k++;
}

static const char *expect_name(struct parser *P)
{
	struct tok *t = peek(P);
	if (t->t != T_NAME)
		fail(P->f, TK_E_FORMAT, t->line, "expected a name, got '%s'", tok_desc(t));
	P->k++;
	return t->s;
}

static struct node *parse_expr(struct parser *P);
static struct node *parse_or(struct parser *P);
static struct node *parse_unary(struct parser *P, int with_filter);

/* Arguments of a call, filter or test after "(": positional into v,
 * keyword ones into kn and w. */
static void parse_args(struct parser *P, struct node *n)
{
	struct nlist pos = { 0 }, kw = { 0 };
	struct nlist names = { 0 };

	while (!is_op(peek(P), ")")) {
		if (pos.n + kw.n)
			expect_op(P, ",");
		if (is_op(peek(P), ")"))
			break;
		if (peek(P)->t == T_NAME && is_op(&P->t[P->k + 1], "=")) {
			struct node *nm = mknode(P, E_STR, peek(P)->line);
			nm->s = peek(P)->s;
			P->k += 2;
			nl_push(P, &names, nm);
			nl_push(P, &kw, parse_expr(P));
		} else {
			if (is_op(peek(P), "*"))
				fail(P->f, TK_E_UNSUPPORTED, peek(P)->line, "*args in a call");
			if (kw.n)
				fail(P->f, TK_E_FORMAT, peek(P)->line,
				     "positional argument after a keyword argument");
			nl_push(P, &pos, parse_expr(P));
		}
	}
	P->k++;
	n->v = pos.v;
	n->nv = pos.n;
	n->w = kw.v;
	n->nk = kw.n;
	n->kn = kw.n ? xalloc(P->a, P->f, (size_t)kw.n * sizeof(char *)) : NULL;
	for (int i = 0; i < kw.n; i++)
		n->kn[i] = names.v[i]->s;
}

static struct node *parse_primary(struct parser *P)
{
	struct tok *t = peek(P);
	struct node *n;

	P->k++;
	switch (t->t) {
	case T_NAME:
		if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
			return mknode(P, E_TRUE, t->line);
		if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
			return mknode(P, E_FALSE, t->line);
		if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
			return mknode(P, E_NONE, t->line);
		n = mknode(P, E_NAME, t->line);
		n->s = t->s;
		return n;
	case T_STR:
		n = mknode(P, E_STR, t->line);
		n->s = t->s;
		n->sn = t->n;
		/* adjacent literals concatenate */
		while (peek(P)->t == T_STR) {
			struct tok *u = peek(P);
			char *s = xalloc(P->a, P->f, n->sn + u->n + 1);
			memcpy(s, n->s, n->sn);
			memcpy(s + n->sn, u->s, u->n);
			n->s = s;
			n->sn += u->n;
			P->k++;
		}
		return n;
	case T_INT:
		n = mknode(P, E_INT, t->line);
		n->i = t->i;
		return n;
	case T_FLOAT:
		n = mknode(P, E_FLOAT, t->line);
		n->f = t->f;
		return n;
	case T_OP:
		if (!strcmp(t->s, "(")) {
			/* a parenthesised expression or a tuple */
			struct nlist l = { 0 };
			int tuple = 0;
			while (!is_op(peek(P), ")")) {
				if (l.n) {
					expect_op(P, ",");
					tuple = 1;
					if (is_op(peek(P), ")"))
						break;
				}
				nl_push(P, &l, parse_expr(P));
			}
			P->k++;
			if (l.n == 1 && !tuple)
				return l.v[0];
			n = mknode(P, E_TUPLE, t->line);
			n->v = l.v;
			n->nv = l.n;
			return n;
		}
		if (!strcmp(t->s, "[")) {
			struct nlist l = { 0 };
			while (!is_op(peek(P), "]")) {
				if (l.n) {
					expect_op(P, ",");
					if (is_op(peek(P), "]"))
						break;
				}
				nl_push(P, &l, parse_expr(P));
			}
			P->k++;
			n = mknode(P, E_LIST, t->line);
			n->v = l.v;
			n->nv = l.n;
			return n;
		}
		if (!strcmp(t->s, "{")) {
			struct nlist ks = { 0 }, vs = { 0 };
			while (!is_op(peek(P), "}")) {
				if (ks.n) {
					expect_op(P, ",");
					if (is_op(peek(P), "}"))
						break;
				}
				nl_push(P, &ks, parse_expr(P));
				expect_op(P, ":");
				nl_push(P, &vs, parse_expr(P));
			}
			P->k++;
			n = mknode(P, E_DICT, t->line);
			n->v = ks.v;
			n->w = vs.v;
			n->nv = ks.n;
			return n;
		}
		break;
	default:
		break;
	}
	fail(P->f, TK_E_FORMAT, t->line, "unexpected '%s'", tok_desc(t));
}

/* x.name, x[i], x[a:b:c], x(args) */
static struct node *parse_postfix(struct parser *P, struct node *n)
{
	for (;;) {
		struct tok *t = peek(P);
		if (is_op(t, ".")) {
			P->k++;
			struct tok *u = peek(P);
			struct node *m;
			if (u->t == T_INT) {
				m = mknode(P, E_ITEM, t->line);
				m->b = mknode(P, E_INT, t->line);
				m->b->i = u->i;
				P->k++;
			} else {
				m = mknode(P, E_ATTR, t->line);
				m->s = expect_name(P);
			}
			m->a = n;
			n = m;
		} else if (is_op(t, "[")) {
			P->k++;
			struct node *idx[3] = { NULL, NULL, NULL };
			int colons = 0;
			for (;;) {
				if (is_op(peek(P), "]"))
					break;
				if (is_op(peek(P), ":")) {
					if (++colons > 2)
						fail(P->f, TK_E_FORMAT, t->line, "bad slice");
					P->k++;
					continue;
				}
				if (idx[colons])
					fail(P->f, TK_E_FORMAT, t->line, "expected ']'");
				idx[colons] = parse_expr(P);
			}
			P->k++;
			struct node *m = mknode(P, colons ? E_SLICE : E_ITEM, t->line);
			m->a = n;
			m->b = idx[0];
			m->c = idx[1];
			m->d = idx[2];
			if (!colons && !idx[0])
				fail(P->f, TK_E_FORMAT, t->line, "empty subscript");
			n = m;
		} else if (is_op(t, "(")) {
			P->k++;
			struct node *m = mknode(P, E_CALL, t->line);
			m->a = n;
			parse_args(P, m);
			n = m;
		} else {
			return n;
		}
	}
}

/* x | filter(args) and x is [not] test [arg] */
static struct node *parse_filter_expr(struct parser *P, struct node *n)
{
	for (;;) {
		struct tok *t = peek(P);
		if (is_op(t, "|")) {
			P->k++;
			struct node *m = mknode(P, E_FILTER, t->line);
			const char *nm = expect_name(P);
			while (is_op(peek(P), ".")) { /* dotted filter names */
				P->k++;
				const char *r = expect_name(P);
				char *j = xalloc(P->a, P->f, strlen(nm) + strlen(r) + 2);
				sprintf(j, "%s.%s", nm, r);
				nm = j;
			}
			m->s = nm;
			m->a = n;
			if (is_op(peek(P), "(")) {
				P->k++;
				parse_args(P, m);
			}
			n = parse_postfix(P, m);
		} else if (is_name(t, "is")) {
			P->k++;
			struct node *m = mknode(P, E_TEST, t->line);
			if (is_name(peek(P), "not")) {
				m->i = 1;
				P->k++;
			}
			struct tok *u = peek(P);
			if (u->t == T_NAME) {
				m->s = u->s;
				P->k++;
			} else if (is_op(u, "==") || is_op(u, "!=") || is_op(u, "<") || is_op(u, ">") ||
				   is_op(u, "<=") || is_op(u, ">=")) {
				m->s = u->s;
				P->k++;
			} else {
				fail(P->f, TK_E_FORMAT, u->line, "expected a test name after 'is'");
			}
			m->a = n;
			struct tok *v = peek(P);
			if (is_op(v, "(")) {
				P->k++;
				parse_args(P, m);
			} else if (v->t == T_STR || v->t == T_INT || v->t == T_FLOAT ||
				   (v->t == T_NAME && strcmp(v->s, "and") && strcmp(v->s, "or") &&
				    strcmp(v->s, "else") && strcmp(v->s, "if") && strcmp(v->s, "in") &&
				    strcmp(v->s, "is") && strcmp(v->s, "not")) ||
				   is_op(v, "[") || is_op(v, "{") || is_op(v, "-")) {
				/* one argument without parentheses: x is divisibleby 3 */
				struct node *arg = parse_unary(P, 0);
				m->v = xalloc(P->a, P->f, sizeof(*m->v));
				m->v[0] = arg;
				m->nv = 1;
			}
			n = m;
		} else {
			return n;
		}
	}
}

static struct node *parse_unary(struct parser *P, int with_filter)
{
	struct tok *t = peek(P);
	struct node *n;

	if (is_op(t, "-") || is_op(t, "+")) {
		P->k++;
		n = mknode(P, is_op(t, "-") ? E_NEG : E_POS, t->line);
		n->a = parse_unary(P, 0);
	} else {
		n = parse_postfix(P, parse_primary(P));
	}
	return with_filter ? parse_filter_expr(P, n) : n;
}

static struct node *binop(struct parser *P, int op, struct node *a, struct node *b, int line)
{
	struct node *n = mknode(P, E_BIN, line);
	n->i = op;
	n->a = a;
	n->b = b;
	return n;
}

static struct node *parse_pow(struct parser *P)
{
	struct node *n = parse_unary(P, 1);
	while (is_op(peek(P), "**")) {
		int line = peek(P)->line;
		P->k++;
		n = binop(P, OP_POW, n, parse_unary(P, 1), line);
	}
	return n;
}

static struct node *parse_math2(struct parser *P)
{
	struct node *n = parse_pow(P);
	for (;;) {
		struct tok *t = peek(P);
		int op = is_op(t, "*") ? OP_MUL : is_op(t, "/") ? OP_DIV : is_op(t, "//") ? OP_FLOORDIV
		       : is_op(t, "%") ? OP_MOD : -1;
		if (op < 0)
			return n;
		P->k++;
		n = binop(P, op, n, parse_pow(P), t->line);
	}
}

static struct node *parse_concat(struct parser *P)
{
	struct node *n = parse_math2(P);
	while (is_op(peek(P), "~")) {
		int line = peek(P)->line;
		P->k++;
		n = binop(P, OP_CAT, n, parse_math2(P), line);
	}
	return n;
}

static struct node *parse_math1(struct parser *P)
{
	struct node *n = parse_concat(P);
	for (;;) {
		struct tok *t = peek(P);
		int op = is_op(t, "+") ? OP_ADD : is_op(t, "-") ? OP_SUB : -1;
		if (op < 0)
			return n;
		P->k++;
		n = binop(P, op, n, parse_concat(P), t->line);
	}
}

static struct node *parse_compare(struct parser *P)
{
	struct node *n = parse_math1(P), *res = NULL;
	for (;;) {
		struct tok *t = peek(P);
		int op = is_op(t, "==") ? OP_EQ : is_op(t, "!=") ? OP_NE : is_op(t, "<") ? OP_LT
		       : is_op(t, "<=") ? OP_LE : is_op(t, ">") ? OP_GT : is_op(t, ">=") ? OP_GE
		       : is_name(t, "in") ? OP_IN : -1;
		if (op < 0 && is_name(t, "not") && is_name(&P->t[P->k + 1], "in")) {
			op = OP_NOTIN;
			P->k++;
		}
		if (op < 0)
			return res ? res : n;
		P->k++;
		struct node *r = parse_math1(P);
		struct node *c = binop(P, op, n, r, t->line);
		if (res) { /* a < b < c: (a < b) and (b < c) */
			struct node *a = mknode(P, E_AND, t->line);
			a->a = res;
			a->b = c;
			res = a;
		} else {
			res = c;
		}
		n = r;
	}
}

static struct node *parse_not(struct parser *P)
{
	if (is_name(peek(P), "not")) {
		struct node *n = mknode(P, E_NOT, peek(P)->line);
		P->k++;
		n->a = parse_not(P);
		return n;
	}
	return parse_compare(P);
}

static struct node *parse_and(struct parser *P)
{
	struct node *n = parse_not(P);
	while (is_name(peek(P), "and")) {
		struct node *m = mknode(P, E_AND, peek(P)->line);
		P->k++;
		m->a = n;
		m->b = parse_not(P);
		n = m;
	}
	return n;
}

static struct node *parse_or(struct parser *P)
{
	struct node *n = parse_and(P);
	while (is_name(peek(P), "or")) {
		struct node *m = mknode(P, E_OR, peek(P)->line);
		P->k++;
		m->a = n;
		m->b = parse_and(P);
		n = m;
	}
	return n;
}

/* x if cond else y (the else part optional: undefined) */
static struct node *parse_expr(struct parser *P)
{
	struct node *n = parse_or(P);
	while (is_name(peek(P), "if")) {
		struct node *m = mknode(P, E_COND, peek(P)->line);
		P->k++;
		m->a = n;
		m->b = parse_or(P);
		if (is_name(peek(P), "else")) {
			P->k++;
			m->c = parse_expr(P);
		}
		n = m;
	}
	return n;
}

/* An expression list without brackets is a tuple: {% set a, b = 1, 2 %}. */
static struct node *parse_tuple_expr(struct parser *P)
{
	struct node *n = parse_expr(P);
	if (!is_op(peek(P), ","))
		return n;
	struct nlist l = { 0 };
	nl_push(P, &l, n);
	while (is_op(peek(P), ",")) {
		P->k++;
		nl_push(P, &l, parse_expr(P));
	}
	struct node *t = mknode(P, E_TUPLE, n->line);
	t->v = l.v;
	t->nv = l.n;
	return t;
}

static void expect_bend(struct parser *P)
{
	struct tok *t = peek(P);
	if (t->t != T_BEND)
		fail(P->f, TK_E_FORMAT, t->line, "expected end of tag, got '%s'", tok_desc(t));
	P->k++;
}

static struct node *parse_body(struct parser *P, const char *const *ends, const char **found);

/* Names of a for or set target: a, b, c */
static void parse_targets(struct parser *P, struct node *n)
{
	struct nlist l = { 0 };
	int paren = is_op(peek(P), "(");
	if (paren)
		P->k++;
	do {
		if (l.n)
			P->k++;
		struct node *nm = mknode(P, E_NAME, peek(P)->line);
		nm->s = expect_name(P);
		nl_push(P, &l, nm);
	} while (is_op(peek(P), ","));
	if (paren)
		expect_op(P, ")");
	n->nk = l.n;
	n->kn = xalloc(P->a, P->f, (size_t)l.n * sizeof(char *));
	for (int i = 0; i < l.n; i++)
		n->kn[i] = l.v[i]->s;
}

static struct node *parse_if(struct parser *P, int line)
{
	static const char *const ends[] = { "elif", "else", "endif", NULL };
	const char *found;
	struct node *n = mknode(P, S_IF, line);

	n->a = parse_tuple_expr(P);
	expect_bend(P);
	n->b = parse_body(P, ends, &found);
	int eline = peek(P)->line;
	if (!strcmp(found, "elif")) {
		n->c = parse_if(P, eline);
		return n;
	}
	expect_bend(P);
	if (!strcmp(found, "else")) {
		static const char *const e2[] = { "endif", NULL };
		n->c = parse_body(P, e2, &found);
		expect_bend(P);
	}
	return n;
}

static struct node *parse_stmt(struct parser *P)
{
	struct tok *kw = peek(P);
	int line = kw->line;
	const char *found;
	struct node *n;

	if (kw->t != T_NAME)
		fail(P->f, TK_E_FORMAT, line, "expected a tag name, got '%s'", tok_desc(kw));
	P->k++;
	if (!strcmp(kw->s, "if"))
		return parse_if(P, line);
	if (!strcmp(kw->s, "for")) {
		static const char *const ends[] = { "else", "endfor", NULL };
		n = mknode(P, S_FOR, line);
		parse_targets(P, n);
		if (!is_name(peek(P), "in"))
			fail(P->f, TK_E_FORMAT, line, "expected 'in' in a for tag");
		P->k++;
		n->a = parse_or(P); /* an "if" after it filters the loop */
		if (is_name(peek(P), "if")) {
			P->k++;
			n->b = parse_expr(P);
		}
		if (is_name(peek(P), "recursive"))
			fail(P->f, TK_E_UNSUPPORTED, line, "recursive for loops");
		expect_bend(P);
		n->c = parse_body(P, ends, &found);
		expect_bend(P);
		if (!strcmp(found, "else")) {
			static const char *const e2[] = { "endfor", NULL };
			n->d = parse_body(P, e2, &found);
			expect_bend(P);
		}
		return n;
	}
	if (!strcmp(kw->s, "set")) {
		n = mknode(P, S_SET, line);
		if (peek(P)->t == T_NAME && is_op(&P->t[P->k + 1], ".")) {
			/* ns.attr = value */
			n->a = mknode(P, E_NAME, line);
			n->a->s = expect_name(P);
			P->k++;
			n->s = expect_name(P);
		} else {
			parse_targets(P, n);
		}
		if (is_op(peek(P), "=")) {
			P->k++;
			n->b = parse_tuple_expr(P);
			expect_bend(P);
		} else {
			static const char *const ends[] = { "endset", NULL };
			if (n->a || n->nk != 1)
				fail(P->f, TK_E_FORMAT, line, "a block set takes one name");
			if (is_op(peek(P), "|"))
				fail(P->f, TK_E_UNSUPPORTED, line, "filters on a block set");
			expect_bend(P);
			n->c = parse_body(P, ends, &found);
			expect_bend(P);
		}
		return n;
	}
	if (!strcmp(kw->s, "macro")) {
		static const char *const ends[] = { "endmacro", NULL };
		struct nlist names = { 0 }, defs = { 0 };
		n = mknode(P, S_MACRO, line);
		n->s = expect_name(P);
		expect_op(P, "(");
		while (!is_op(peek(P), ")")) {
			if (names.n)
				expect_op(P, ",");
			struct node *nm = mknode(P, E_NAME, peek(P)->line);
			nm->s = expect_name(P);
			nl_push(P, &names, nm);
			struct node *def = NULL;
			if (is_op(peek(P), "=")) {
				P->k++;
				def = parse_expr(P);
			}
			nl_push(P, &defs, def);
		}
		P->k++;
		expect_bend(P);
		n->nk = names.n;
		n->kn = xalloc(P->a, P->f, (size_t)(names.n + 1) * sizeof(char *));
		for (int i = 0; i < names.n; i++)
			n->kn[i] = names.v[i]->s;
		n->w = defs.v;
		n->c = parse_body(P, ends, &found);
		if (is_name(&P->t[P->k], n->s))
			P->k++;
		expect_bend(P);
		return n;
	}
	if (!strcmp(kw->s, "call")) {
		static const char *const ends[] = { "endcall", NULL };
		n = mknode(P, S_CALL, line);
		if (is_op(peek(P), "("))
			fail(P->f, TK_E_UNSUPPORTED, line, "call blocks with caller arguments");
		n->a = parse_expr(P);
		if (n->a->t != E_CALL)
			fail(P->f, TK_E_FORMAT, line, "a call block needs a call");
		expect_bend(P);
		n->c = parse_body(P, ends, &found);
		expect_bend(P);
		return n;
	}
	if (!strcmp(kw->s, "generation")) {
		static const char *const ends[] = { "endgeneration", NULL };
		n = mknode(P, S_GEN, line);
		expect_bend(P);
		n->c = parse_body(P, ends, &found);
		expect_bend(P);
		P->has_generation = 1;
		return n;
	}
	if (!strcmp(kw->s, "filter")) {
		static const char *const ends[] = { "endfilter", NULL };
		n = mknode(P, S_FILTER, line);
		/* the filter chain applies to a placeholder for the body */
		struct node *first = mknode(P, E_FILTER, line);
		first->a = mknode(P, E_NONE, line);
		first->s = expect_name(P);
		if (is_op(peek(P), "(")) {
			P->k++;
			parse_args(P, first);
		}
		n->a = parse_filter_expr(P, first);
		expect_bend(P);
		n->c = parse_body(P, ends, &found);
		expect_bend(P);
		return n;
	}
	if (!strcmp(kw->s, "break") || !strcmp(kw->s, "continue")) {
		n = mknode(P, !strcmp(kw->s, "break") ? S_BREAK : S_CONTINUE, line);
		expect_bend(P);
		return n;
	}
	fail(P->f, TK_E_UNSUPPORTED, line, "unsupported tag '%s'", kw->s);
}

/* Statements up to a block tag named in ends (NULL: the end of the
 * template), which *found names; the tag's name is consumed, not its end. */
static struct node *parse_body(struct parser *P, const char *const *ends, const char **found)
{
	struct nlist l = { 0 };
	struct node *body = mknode(P, S_BODY, peek(P)->line);
	int start = P->k ? P->t[P->k - 1].line : 1; /* the opening tag's */
	int last = 0;

	while (ends && ends[last + 1])
		last++;

	for (;;) {
		struct tok *t = peek(P);
		if (t->t == T_EOF) {
			if (ends)
				fail(P->f, TK_E_FORMAT, start, "missing {%% %s %%}", ends[last]);
			break;
		}
		if (t->t == T_TEXT) {
			struct node *n = mknode(P, S_TEXT, t->line);
			n->s = t->s;
			n->sn = t->n;
			nl_push(P, &l, n);
			P->k++;
		} else if (t->t == T_VBEGIN) {
			struct node *n = mknode(P, S_OUT, t->line);
			P->k++;
			n->a = parse_tuple_expr(P);
			if (peek(P)->t != T_VEND)
				fail(P->f, TK_E_FORMAT, peek(P)->line, "expected '}}', got '%s'",
				     tok_desc(peek(P)));
			P->k++;
			nl_push(P, &l, n);
		} else if (t->t == T_BBEGIN) {
			struct tok *kw = &P->t[P->k + 1];
			int i = 0;
			for (; ends && ends[i]; i++)
				if (is_name(kw, ends[i]))
					break;
			if (ends && ends[i]) {
				*found = ends[i];
				P->k += 2;
				break;
			}
			if (kw->t == T_NAME && (!strncmp(kw->s, "end", 3) || !strcmp(kw->s, "else") ||
						!strcmp(kw->s, "elif")))
				fail(P->f, TK_E_FORMAT, kw->line, "unexpected {%% %s %%}", kw->s);
			P->k++;
			nl_push(P, &l, parse_stmt(P));
		} else {
			fail(P->f, TK_E_FORMAT, t->line, "unexpected '%s'", tok_desc(t));
		}
	}
	body->v = l.v;
	body->nv = l.n;
	return body;
}

struct tk_jinja {
	struct arena a;
	struct node *root;
	int has_generation;
};

/* src[0..len) into s with newlines normalised to \n and one trailing
 * newline dropped (keep_trailing_newline=False); returns the length. */
static __attribute__((noinline)) size_t normalize(char *s, const char *src, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\r') {
			s[n++] = '\n';
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		} else {
			s[n++] = src[i];
		}
	}
	if (n && s[n - 1] == '\n')
		n--;
	s[n] = 0;
	return n;
}

int tk_jinja_parse(tk_jinja_t **out, const char *src, size_t len, struct tk_diag *d)
{
	tk_jinja_t *t = calloc(1, sizeof(*t));
	struct fail f = { .err = 0 };
	char *s;

	*out = NULL;
	if (!t || !(s = arena_alloc(&t->a, len + 1))) {
		free(t);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	size_t n = normalize(s, src, len);
	if (setjmp(f.jb)) {
		arena_free(&t->a);
		free(t);
		if (f.err == TK_E_NOMEM)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		return tk_diag_set(d, f.err, NULL, -1, "chat template line %d: %s", f.line, f.msg);
	}
	struct lexer L = { .a = &t->a, .f = &f, .src = s, .len = n, .line = 1 };
	lex(&L);
	struct parser P = { .a = &t->a, .f = &f, .t = L.toks };
	t->root = parse_body(&P, NULL, NULL);
	t->has_generation = P.has_generation;
	*out = t;
	return 0;
}

void tk_jinja_free(tk_jinja_t *t)
{
	if (!t)
		return;
	arena_free(&t->a);
	free(t);
}

int tk_jinja_has_generation(const tk_jinja_t *t)
{
	return t->has_generation;
}

/* ---------------------------------------------------------------- values */

enum val_kind { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS, V_MACRO,
		V_LOOP, V_FUNC };

struct str {
	size_t n;
	char s[]; /* NUL-terminated */
};

struct list;
struct dict;
struct macro;
struct loop;

struct val {
	int k;
	int safe; /* V_STR: markupsafe's Markup (the safe filter): + escapes the
		     other string and stays Markup */
	union {
		long long i;      /* V_BOOL, V_INT, V_FUNC */
		double f;
		const struct str *s;
		struct list *l;
		struct dict *d;   /* V_DICT, V_NS */
		struct macro *m;
		struct loop *lp;
		const char *name; /* V_UNDEF: jinja2's message for it (may be NULL) */
	};
};

struct list {
	int n, cap, tuple;
	int lazy; /* what jinja2 gives as a generator or iterator (map, select,
		     reverse, ...): always true, no len, no index, no text */
	struct val *v;
};

struct dict {
	int n, cap;
	struct val *k, *v;
};

struct frame {
	struct frame *up;
	int n, cap;
	const char **names;
	struct val *vals;
};

struct macro {
	const struct node *def; /* S_MACRO, or S_CALL for caller() */
	struct frame *env;
	struct val caller;      /* the caller a call block passes (V_UNDEF: none) */
};

struct loop {
	struct list *items;
	int i;
};

/* Global functions. */
enum { F_RANGE, F_NAMESPACE, F_RAISE, F_STRFTIME, F_DICT };

struct ctx {
	struct arena a;
	struct fail f;
	struct tk_buf *top;   /* the caller's buffer */
	size_t top_base;      /* where this render starts in it */
	struct tk_buf *out;   /* where output goes now (top or a capture) */
	struct tk_buf caps[32];
	int ncap;
	size_t *spans;
	int nspans, capspans;
	int brk;              /* 1: break, 2: continue pending */
	int depth;
	long long steps;      /* statements run, against MAX_STEPS */
	int line;             /* of the node being run, for errors without one */
	const struct tk_jinja_opts *o;
};

/* What a render may cost: no chat template comes near (one over a
 * thousand messages runs some 10^5 statements), a template from the Hub
 * that loops without end stops. */
#define MAX_STEPS 20000000LL
#define MAX_TEXT ((size_t)1 << 28)

#define UNDEF ((struct val){ .k = V_UNDEF })
#define NONE ((struct val){ .k = V_NONE })

static struct val vbool(int b)
{
	return (struct val){ .k = V_BOOL, .i = !!b };
}

static struct val vint(long long i)
{
	return (struct val){ .k = V_INT, .i = i };
}

static struct val vfloat(double f)
{
	return (struct val){ .k = V_FLOAT, .f = f };
}

static _Noreturn __attribute__((format(printf, 4, 5))) void
err(struct ctx *c, int e, const struct node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->f.msg, sizeof(c->f.msg), fmt, ap);
	va_end(ap);
	c->f.err = e;
	c->f.line = n ? n->line : c->line;
	longjmp(c->f.jb, 1);
}

static void *calloc_c(struct ctx *c, size_t n)
{
	return xalloc(&c->a, &c->f, n);
}

static struct val vstr(struct ctx *c, const char *s, size_t n)
{
	struct str *p = calloc_c(c, sizeof(*p) + n + 1);
	memcpy(p->s, s, n);
	p->s[n] = 0;
	p->n = n;
	return (struct val){ .k = V_STR, .s = p };
}

static struct val vcstr(struct ctx *c, const char *s)
{
	return vstr(c, s, strlen(s));
}

static struct list *mklist(struct ctx *c, int cap)
{
	struct list *l = calloc_c(c, sizeof(*l));
	l->cap = cap > 4 ? cap : 4;
	l->v = calloc_c(c, (size_t)l->cap * sizeof(*l->v));
	return l;
}

static void list_push(struct ctx *c, struct list *l, struct val v)
{
	if (l->n == l->cap) {
		struct val *nv = calloc_c(c, 2 * (size_t)l->cap * sizeof(*nv));
		memcpy(nv, l->v, (size_t)l->n * sizeof(*nv));
		l->v = nv;
		l->cap *= 2;
	}
	l->v[l->n++] = v;
}

static struct val vlist(struct list *l)
{
	return (struct val){ .k = V_LIST, .l = l };
}

static struct dict *mkdict(struct ctx *c)
{
	struct dict *d = calloc_c(c, sizeof(*d));
	return d;
}

static int val_eq(const struct val *a, const struct val *b);

static struct val *dict_find(const struct dict *d, const struct val *k)
{
	for (int i = 0; i < d->n; i++)
		if (val_eq(&d->k[i], k))
			return &d->v[i];
	return NULL;
}

static void dict_set(struct ctx *c, struct dict *d, struct val k, struct val v)
{
	struct val *p = dict_find(d, &k);
	if (p) {
		*p = v;
		return;
	}
	if (d->n == d->cap) {
		int cap = d->cap ? 2 * d->cap : 8;
		struct val *nk = calloc_c(c, (size_t)cap * sizeof(*nk));
		struct val *nv = calloc_c(c, (size_t)cap * sizeof(*nv));
		if (d->n) {
			memcpy(nk, d->k, (size_t)d->n * sizeof(*nk));
			memcpy(nv, d->v, (size_t)d->n * sizeof(*nv));
		}
		d->k = nk;
		d->v = nv;
		d->cap = cap;
	}
	d->k[d->n] = k;
	d->v[d->n++] = v;
}

/* cJSON to values: whole numbers become ints (cJSON keeps no text). */
static struct val from_json(struct ctx *c, const cJSON *j)
{
	if (cJSON_IsNull(j))
		return NONE;
	if (cJSON_IsBool(j))
		return vbool(cJSON_IsTrue(j));
	if (cJSON_IsNumber(j)) {
		double x = j->valuedouble;
		if (x == floor(x) && fabs(x) < 9007199254740992.0)
			return vint((long long)x);
		return vfloat(x);
	}
	if (cJSON_IsString(j))
		return vcstr(c, j->valuestring);
	if (cJSON_IsArray(j)) {
		struct list *l = mklist(c, cJSON_GetArraySize(j));
		for (const cJSON *e = j->child; e; e = e->next)
			list_push(c, l, from_json(c, e));
		return vlist(l);
	}
	if (cJSON_IsObject(j)) {
		struct dict *d = mkdict(c);
		for (const cJSON *e = j->child; e; e = e->next)
			dict_set(c, d, vcstr(c, e->string), from_json(c, e));
		return (struct val){ .k = V_DICT, .d = d };
	}
	return UNDEF;
}

static int truthy(const struct val *v)
{
	switch (v->k) {
	case V_UNDEF: case V_NONE: return 0;
	case V_BOOL: case V_INT: return v->i != 0;
	case V_FLOAT: return v->f != 0;
	case V_STR: return v->s->n != 0;
	case V_LIST: return v->l->lazy || v->l->n != 0;
	case V_DICT: return v->d->n != 0;
	default: return 1;
	}
}

/* The result of a filter that jinja2 gives as a generator. */
static struct val vlazy(struct list *l)
{
	l->lazy = 1;
	return (struct val){ .k = V_LIST, .l = l };
}

static int is_num(const struct val *v)
{
	return v->k == V_BOOL || v->k == V_INT || v->k == V_FLOAT;
}

static double num(const struct val *v)
{
	return v->k == V_FLOAT ? v->f : (double)v->i;
}

static int val_eq(const struct val *a, const struct val *b)
{
	if (is_num(a) && is_num(b)) {
		if (a->k != V_FLOAT && b->k != V_FLOAT)
			return a->i == b->i;
		return num(a) == num(b);
	}
	if (a->k != b->k)
		return 0;
	switch (a->k) {
	case V_UNDEF: case V_NONE: return 1;
	case V_STR: return a->s->n == b->s->n && !memcmp(a->s->s, b->s->s, a->s->n);
	case V_LIST:
		if (a->l->lazy || b->l->lazy)
			return a->l == b->l;
		if (a->l->n != b->l->n)
			return 0;
		for (int i = 0; i < a->l->n; i++)
			if (!val_eq(&a->l->v[i], &b->l->v[i]))
				return 0;
		return 1;
	case V_DICT:
		if (a->d->n != b->d->n)
			return 0;
		for (int i = 0; i < a->d->n; i++) {
			const struct val *o = dict_find(b->d, &a->d->k[i]);
			if (!o || !val_eq(&a->d->v[i], o))
				return 0;
		}
		return 1;
	case V_NS: return a->d == b->d;
	case V_MACRO: return a->m == b->m;
	case V_LOOP: return a->lp == b->lp;
	case V_FUNC: return a->i == b->i;
	}
	return 0;
}

static const char *type_name(const struct val *v)
{
	static const char *const names[] = { "Undefined", "NoneType", "bool", "int", "float",
					     "str", "list", "dict", "Namespace", "Macro",
					     "LoopContext", "function" };
	return v->k == V_LIST && v->l->tuple ? "tuple"
	     : v->k == V_LIST && v->l->lazy ? "generator" : names[v->k];
}

/* ---------------------------------------------------------------- text */

/* Python's repr of a float: the shortest digits that read back the same,
 * in exponent form below 1e-4 and from 1e16 on. */
static void py_float(double x, char *out, size_t cap)
{
	char b[40], digits[24];
	int p, nd = 0, e;

	if (isnan(x)) {
		snprintf(out, cap, "nan");
		return;
	}
	if (isinf(x)) {
		snprintf(out, cap, x < 0 ? "-inf" : "inf");
		return;
	}
	for (p = 1; p <= 17; p++) {
		snprintf(b, sizeof(b), "%.*e", p - 1, x);
		if (strtod(b, NULL) == x)
			break;
	}
	const char *q = b;
	int neg = *q == '-';
	q += neg;
	for (; *q && *q != 'e'; q++)
		if (*q >= '0' && *q <= '9')
			digits[nd++] = *q;
	e = atoi(q + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = 0;
	char *o = out;
	size_t left = cap;
#define PUT(...)                                                      \
	do {                                                          \
		int w_ = snprintf(o, left, __VA_ARGS__);              \
		if (w_ > 0 && (size_t)w_ < left)                      \
			o += w_, left -= (size_t)w_;                  \
	} while (0)
	if (neg)
		PUT("-");
	if (e < -4 || e >= 16) {
		PUT("%c", digits[0]);
		if (nd > 1)
			PUT(".%s", digits + 1);
		PUT("e%c%02d", e < 0 ? '-' : '+', abs(e));
	} else if (e < 0) {
		PUT("0.");
		for (int i = 0; i < -e - 1; i++)
			PUT("0");
		PUT("%s", digits);
	} else if (e + 1 >= nd) {
		PUT("%s", digits);
		for (int i = 0; i < e + 1 - nd; i++)
			PUT("0");
		PUT(".0");
	} else {
		PUT("%.*s.%s", e + 1, digits, digits + e + 1);
	}
#undef PUT
}

static void out_put(struct ctx *c, struct tk_buf *b, const char *s, size_t n)
{
	if (tk_buf_append(b, s, n))
		err(c, TK_E_NOMEM, NULL, "out of memory");
}

static void out_cstr(struct ctx *c, struct tk_buf *b, const char *s)
{
	out_put(c, b, s, strlen(s));
}

static void to_str(struct ctx *c, const struct val *v, struct tk_buf *b);

/* Python's repr of a string. */
static void repr_str(struct ctx *c, const struct str *s, struct tk_buf *b)
{
	char q = memchr(s->s, '\'', s->n) && !memchr(s->s, '"', s->n) ? '"' : '\'';
	out_put(c, b, &q, 1);
	for (size_t i = 0; i < s->n; i++) {
		unsigned char ch = (unsigned char)s->s[i];
		char e[8];
		if (ch == '\\' || ch == (unsigned char)q) {
			e[0] = '\\';
			e[1] = (char)ch;
			out_put(c, b, e, 2);
		} else if (ch == '\n') {
			out_cstr(c, b, "\\n");
		} else if (ch == '\r') {
			out_cstr(c, b, "\\r");
		} else if (ch == '\t') {
			out_cstr(c, b, "\\t");
		} else if (ch < 0x20 || ch == 0x7f) {
			snprintf(e, sizeof(e), "\\x%02x", ch);
			out_cstr(c, b, e);
		} else {
			out_put(c, b, (const char *)&ch, 1);
		}
	}
	out_put(c, b, &q, 1);
}

static void repr(struct ctx *c, const struct val *v, struct tk_buf *b)
{
	if (v->k == V_STR)
		repr_str(c, v->s, b);
	else
		to_str(c, v, b);
}

/* Python's str() of a value. */
static void to_str(struct ctx *c, const struct val *v, struct tk_buf *b)
{
	char num_buf[64];

	switch (v->k) {
	case V_UNDEF: return;
	case V_NONE: out_cstr(c, b, "None"); return;
	case V_BOOL: out_cstr(c, b, v->i ? "True" : "False"); return;
	case V_INT:
		snprintf(num_buf, sizeof(num_buf), "%lld", v->i);
		out_cstr(c, b, num_buf);
		return;
	case V_FLOAT:
		py_float(v->f, num_buf, sizeof(num_buf));
		out_cstr(c, b, num_buf);
		return;
	case V_STR: out_put(c, b, v->s->s, v->s->n); return;
	case V_LIST:
		if (v->l->lazy)
			err(c, TK_E_UNSUPPORTED, NULL, "a generator as text (jinja2 prints its address)");
		out_cstr(c, b, v->l->tuple ? "(" : "[");
		for (int i = 0; i < v->l->n; i++) {
			if (i)
				out_cstr(c, b, ", ");
			repr(c, &v->l->v[i], b);
		}
		out_cstr(c, b, v->l->tuple ? (v->l->n == 1 ? ",)" : ")") : "]");
		return;
	case V_DICT:
	case V_NS:
		out_cstr(c, b, v->k == V_NS ? "<Namespace {" : "{");
		for (int i = 0; i < v->d->n; i++) {
			if (i)
				out_cstr(c, b, ", ");
			repr(c, &v->d->k[i], b);
			out_cstr(c, b, ": ");
			repr(c, &v->d->v[i], b);
		}
		out_cstr(c, b, v->k == V_NS ? "}>" : "}");
		return;
	default:
		err(c, TK_E_UNSUPPORTED, NULL, "cannot render a %s as text", type_name(v));
	}
}

/* A temporary buffer from the capture stack (released with cap_pop). */
static struct tk_buf *cap_push(struct ctx *c)
{
	if (c->ncap == (int)(sizeof(c->caps) / sizeof(c->caps[0])))
		err(c, TK_E_UNSUPPORTED, NULL, "macros or captures nested too deep");
	struct tk_buf *b = &c->caps[c->ncap++];
	b->len = 0;
	return b;
}

static struct val cap_pop(struct ctx *c)
{
	struct tk_buf *b = &c->caps[--c->ncap];
	return vstr(c, b->data ? b->data : "", b->len);
}

static struct val str_of(struct ctx *c, const struct val *v)
{
	if (v->k == V_STR)
		return *v;
	struct tk_buf *b = cap_push(c);
	to_str(c, v, b);
	return cap_pop(c);
}

/* markupsafe.escape of a string: Markup with & < > ' " escaped (a
 * Markup stays as it is). */
static struct val escape_str(struct ctx *c, struct val s)
{
	struct tk_buf *b;
	struct val r;

	if (s.safe)
		return s;
	b = cap_push(c);
	for (size_t i = 0; i < s.s->n; i++) {
		char ch = s.s->s[i];
		const char *e = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;"
			      : ch == '\'' ? "&#39;" : ch == '"' ? "&#34;" : NULL;
		if (e)
			out_cstr(c, b, e);
		else
			out_put(c, b, &ch, 1);
	}
	r = cap_pop(c);
	r.safe = 1;
	return r;
}

/* json.dumps(v, ensure_ascii, indent, separators, sort_keys) */
struct json_opts {
	int ascii, indent, sort; /* indent < 0: none */
	const char *item_sep, *key_sep;
};

static void json_str(struct ctx *c, const struct str *s, int ascii, struct tk_buf *b)
{
	out_cstr(c, b, "\"");
	for (size_t i = 0; i < s->n; i++) {
		unsigned char ch = (unsigned char)s->s[i];
		char e[16];
		switch (ch) {
		case '"': out_cstr(c, b, "\\\""); continue;
		case '\\': out_cstr(c, b, "\\\\"); continue;
		case '\n': out_cstr(c, b, "\\n"); continue;
		case '\r': out_cstr(c, b, "\\r"); continue;
		case '\t': out_cstr(c, b, "\\t"); continue;
		case '\b': out_cstr(c, b, "\\b"); continue;
		case '\f': out_cstr(c, b, "\\f"); continue;
		}
		if (ch < 0x20 || (ascii && ch == 0x7f)) {
			snprintf(e, sizeof(e), "\\u%04x", ch);
			out_cstr(c, b, e);
		} else if (ascii && ch >= 0x80) {
			utf8proc_int32_t cp;
			utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s->s + i,
							      (utf8proc_ssize_t)(s->n - i), &cp);
			if (n <= 0)
				n = 1, cp = 0xfffd;
			if (cp >= 0x10000) {
				cp -= 0x10000;
				snprintf(e, sizeof(e), "\\u%04x\\u%04x", 0xd800 + (cp >> 10),
					 0xdc00 + (cp & 0x3ff));
			} else {
				snprintf(e, sizeof(e), "\\u%04x", cp);
			}
			out_cstr(c, b, e);
			i += (size_t)n - 1;
		} else {
			out_put(c, b, (const char *)&ch, 1);
		}
	}
	out_cstr(c, b, "\"");
}

static void json_nl(struct ctx *c, const struct json_opts *o, int level, struct tk_buf *b)
{
	out_cstr(c, b, "\n");
	for (int i = 0; i < o->indent * level; i++)
		out_cstr(c, b, " ");
}

static int cmp_keys(const void *x, const void *y)
{
	const struct val *a = *(const struct val *const *)x, *b = *(const struct val *const *)y;
	size_t n = a->s->n < b->s->n ? a->s->n : b->s->n;
	int r = memcmp(a->s->s, b->s->s, n);
	return r ? r : a->s->n < b->s->n ? -1 : a->s->n > b->s->n;
}

static void to_json(struct ctx *c, const struct node *at, const struct val *v,
		    const struct json_opts *o, int level, struct tk_buf *b)
{
	char num_buf[64];

	switch (v->k) {
	case V_NONE: out_cstr(c, b, "null"); return;
	case V_BOOL: out_cstr(c, b, v->i ? "true" : "false"); return;
	case V_INT: snprintf(num_buf, sizeof(num_buf), "%lld", v->i); out_cstr(c, b, num_buf); return;
	case V_FLOAT:
		if (isnan(v->f))
			out_cstr(c, b, "NaN");
		else if (isinf(v->f))
			out_cstr(c, b, v->f < 0 ? "-Infinity" : "Infinity");
		else {
			py_float(v->f, num_buf, sizeof(num_buf));
			out_cstr(c, b, num_buf);
		}
		return;
	case V_STR: json_str(c, v->s, o->ascii, b); return;
	case V_LIST:
		if (v->l->lazy)
			err(c, TK_E_FORMAT, at, "Object of type generator is not JSON serializable");
		if (!v->l->n) {
			out_cstr(c, b, "[]");
			return;
		}
		out_cstr(c, b, "[");
		for (int i = 0; i < v->l->n; i++) {
			if (i)
				out_cstr(c, b, o->item_sep);
			if (o->indent >= 0)
				json_nl(c, o, level + 1, b);
			to_json(c, at, &v->l->v[i], o, level + 1, b);
		}
		if (o->indent >= 0)
			json_nl(c, o, level, b);
		out_cstr(c, b, "]");
		return;
	case V_DICT: {
		int n = v->d->n;
		if (!n) {
			out_cstr(c, b, "{}");
			return;
		}
		const struct val **ks = calloc_c(c, (size_t)n * sizeof(*ks));
		for (int i = 0; i < n; i++) {
			ks[i] = &v->d->k[i];
			if (ks[i]->k != V_STR)
				err(c, TK_E_UNSUPPORTED, at, "tojson of a dict with %s keys",
				    type_name(ks[i]));
		}
		if (o->sort)
			qsort(ks, (size_t)n, sizeof(*ks), cmp_keys);
		out_cstr(c, b, "{");
		for (int i = 0; i < n; i++) {
			if (i)
				out_cstr(c, b, o->item_sep);
			if (o->indent >= 0)
				json_nl(c, o, level + 1, b);
			json_str(c, ks[i]->s, o->ascii, b);
			out_cstr(c, b, o->key_sep);
			to_json(c, at, dict_find(v->d, ks[i]), o, level + 1, b);
		}
		if (o->indent >= 0)
			json_nl(c, o, level, b);
		out_cstr(c, b, "}");
		return;
	}
	default:
		err(c, TK_E_FORMAT, at, "Object of type %s is not JSON serializable", type_name(v));
	}
}

/* ---------------------------------------------------------------- strings */

/* Code points in s[0..n). */
static size_t cp_count(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xc0) != 0x80;
	return k;
}

/* Byte offset of code point i of s[0..n) (n when i is past the end). */
static size_t cp_offset(const char *s, size_t n, size_t i)
{
	size_t k = 0;
	for (size_t b = 0; b < n; b++)
		if (((unsigned char)s[b] & 0xc0) != 0x80 && k++ == i)
			return b;
	return n;
}

enum { CASE_UPPER, CASE_LOWER, CASE_TITLE };

/* Python's upper() of the letters whose capital is two letters (the
 * German sharp s and the Latin ligatures; utf8proc maps one to one). */
static const char *special_upper(utf8proc_int32_t cp)
{
	switch (cp) {
	case 0xdf: return "SS";
	case 0xfb00: return "FF";
	case 0xfb01: return "FI";
	case 0xfb02: return "FL";
	case 0xfb03: return "FFI";
	case 0xfb04: return "FFL";
	case 0xfb05: case 0xfb06: return "ST";
	default: return NULL;
	}
}

/* s with its letters mapped: mode per code point from fn(state). */
static struct val map_case(struct ctx *c, const struct str *s, int mode_first, int mode_rest,
			   int words)
{
	struct tk_buf *b = cap_push(c);
	int at_start = 1;
	for (size_t i = 0; i < s->n;) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s->s + i,
						      (utf8proc_ssize_t)(s->n - i), &cp);
		if (n <= 0) {
			out_put(c, b, s->s + i, 1);
			i++;
			continue;
		}
		int mode = at_start ? mode_first : mode_rest;
		const char *full = mode != CASE_LOWER ? special_upper(cp) : NULL;
		if (full) {
			out_cstr(c, b, full);
		} else {
			utf8proc_int32_t m = mode == CASE_UPPER ? utf8proc_toupper(cp)
					   : mode == CASE_TITLE ? utf8proc_totitle(cp)
								: utf8proc_tolower(cp);
			char e[8];
			out_put(c, b, e, (size_t)put_utf8(e, (uint32_t)m));
		}
		if (words) {
			/* Python's str.title(): a word starts after a non-letter */
			const utf8proc_property_t *p = utf8proc_get_property(cp);
			int letter = p->category >= UTF8PROC_CATEGORY_LU &&
				     p->category <= UTF8PROC_CATEGORY_LO;
			at_start = !letter;
		} else {
			at_start = 0;
		}
		i += (size_t)n;
	}
	return cap_pop(c);
}

static int in_chars(const char *chars, size_t nc, const char *s, size_t len, size_t *w)
{
	/* whether the code point at s is one of chars (NULL: white space) */
	utf8proc_int32_t cp;
	utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &cp);
	if (n <= 0)
		n = 1, cp = (unsigned char)*s;
	*w = (size_t)n;
	if (!chars)
		return is_ws((int)cp) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
		       (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
		       cp == 0x202f || cp == 0x205f || cp == 0x3000;
	for (size_t i = 0; i < nc;) {
		utf8proc_int32_t d;
		utf8proc_ssize_t m = utf8proc_iterate((const utf8proc_uint8_t *)chars + i,
						      (utf8proc_ssize_t)(nc - i), &d);
		if (m <= 0)
			m = 1, d = (unsigned char)chars[i];
		if (d == cp)
			return 1;
		i += (size_t)m;
	}
	return 0;
}

/* str.strip/lstrip/rstrip(chars) */
static struct val strip(struct ctx *c, const struct str *s, const struct str *chars, int left,
			int right)
{
	size_t b = 0, e = s->n, w;
	const char *cs = chars ? chars->s : NULL;
	size_t nc = chars ? chars->n : 0;
	while (left && b < e && in_chars(cs, nc, s->s + b, e - b, &w))
		b += w;
	while (right && e > b) {
		size_t k = e - 1;
		while (k > b && ((unsigned char)s->s[k] & 0xc0) == 0x80)
			k--;
		if (!in_chars(cs, nc, s->s + k, e - k, &w))
			break;
		e = k;
	}
	return vstr(c, s->s + b, e - b);
}

static const char *memmem_s(const char *h, size_t hn, const char *n, size_t nn)
{
	if (!nn)
		return h;
	return memmem(h, hn, n, nn);
}

/* str.replace(old, new, count) */
static struct val replace(struct ctx *c, const struct str *s, const struct str *a,
			  const struct str *b, long long count)
{
	struct tk_buf *o = cap_push(c);
	size_t i = 0;
	long long done = 0;
	if (!a->n) {
		/* Python inserts new between the code points */
		for (size_t k = 0; k <= s->n; k++) {
			if ((k == s->n || ((unsigned char)s->s[k] & 0xc0) != 0x80) &&
			    (count < 0 || done < count)) {
				out_put(c, o, b->s, b->n);
				done++;
			}
			if (k < s->n)
				out_put(c, o, s->s + k, 1);
		}
		return cap_pop(c);
	}
	while (i <= s->n) {
		const char *p = count >= 0 && done >= count ? NULL
							    : memmem_s(s->s + i, s->n - i, a->s, a->n);
		if (!p) {
			out_put(c, o, s->s + i, s->n - i);
			break;
		}
		out_put(c, o, s->s + i, (size_t)(p - (s->s + i)));
		out_put(c, o, b->s, b->n);
		i = (size_t)(p - s->s) + a->n;
		done++;
	}
	return cap_pop(c);
}

/* str.split(sep, maxsplit) */
static struct val split(struct ctx *c, const struct str *s, const struct str *sep, long long max)
{
	struct list *l = mklist(c, 4);
	size_t i = 0, w;
	if (!sep) {
		for (;;) {
			while (i < s->n && in_chars(NULL, 0, s->s + i, s->n - i, &w))
				i += w;
			if (i >= s->n)
				break;
			size_t b = i;
			if (max >= 0 && l->n >= max) {
				size_t e = s->n;
				while (e > b && in_chars(NULL, 0, s->s + e - 1, 1, &w))
					e--;
				list_push(c, l, vstr(c, s->s + b, e - b));
				break;
			}
			while (i < s->n && !in_chars(NULL, 0, s->s + i, s->n - i, &w))
				i += w;
			list_push(c, l, vstr(c, s->s + b, i - b));
		}
		return vlist(l);
	}
	for (;;) {
		const char *p = max >= 0 && l->n >= max ? NULL
							: memmem(s->s + i, s->n - i, sep->s, sep->n);
		if (!p) {
			list_push(c, l, vstr(c, s->s + i, s->n - i));
			return vlist(l);
		}
		list_push(c, l, vstr(c, s->s + i, (size_t)(p - s->s) - i));
		i = (size_t)(p - s->s) + sep->n;
	}
}

static int starts_with(const struct str *s, const struct str *p)
{
	return p->n <= s->n && !memcmp(s->s, p->s, p->n);
}

static int ends_with(const struct str *s, const struct str *p)
{
	return p->n <= s->n && !memcmp(s->s + s->n - p->n, p->s, p->n);
}

/* ---------------------------------------------------------------- scopes */

static struct frame *frame_new(struct ctx *c, struct frame *up)
{
	struct frame *f = calloc_c(c, sizeof(*f));
	f->up = up;
	return f;
}

static struct val *frame_find(struct frame *f, const char *name)
{
	for (; f; f = f->up)
		for (int i = f->n - 1; i >= 0; i--)
			if (!strcmp(f->names[i], name))
				return &f->vals[i];
	return NULL;
}

static void frame_set(struct ctx *c, struct frame *f, const char *name, struct val v)
{
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->names[i], name)) {
			f->vals[i] = v;
			return;
		}
	if (f->n == f->cap) {
		int cap = f->cap ? 2 * f->cap : 8;
		const char **nn = calloc_c(c, (size_t)cap * sizeof(*nn));
		struct val *nv = calloc_c(c, (size_t)cap * sizeof(*nv));
		if (f->n) {
			memcpy(nn, f->names, (size_t)f->n * sizeof(*nn));
			memcpy(nv, f->vals, (size_t)f->n * sizeof(*nv));
		}
		f->names = nn;
		f->vals = nv;
		f->cap = cap;
	}
	f->names[f->n] = name;
	f->vals[f->n++] = v;
}

/* ---------------------------------------------------------------- eval */

struct args {
	int n, nk;
	struct val *v;
	const char **kn;
	struct val *kv;
	const struct node *at;
};

static struct val eval(struct ctx *c, const struct node *n, struct frame *f);
static void exec(struct ctx *c, const struct node *n, struct frame *f);

/* Argument pos (or keyword name); NULL when not given. */
static struct val *arg(struct args *a, int pos, const char *name)
{
	if (pos >= 0 && pos < a->n)
		return &a->v[pos];
	for (int i = 0; name && i < a->nk; i++)
		if (!strcmp(a->kn[i], name))
			return &a->kv[i];
	return NULL;
}

static void eval_args(struct ctx *c, const struct node *n, struct frame *f, const struct val *first,
		      struct args *a)
{
	int off = first ? 1 : 0;
	a->at = n;
	a->n = n->nv + off;
	a->v = calloc_c(c, (size_t)(a->n + 1) * sizeof(*a->v));
	if (first)
		a->v[0] = *first;
	for (int i = 0; i < n->nv; i++)
		a->v[i + off] = eval(c, n->v[i], f);
	a->nk = n->nk;
	a->kn = n->kn;
	a->kv = calloc_c(c, (size_t)(a->nk + 1) * sizeof(*a->kv));
	for (int i = 0; i < n->nk; i++)
		a->kv[i] = eval(c, n->w[i], f);
}

static _Noreturn void undefined_error(struct ctx *c, const struct node *at, const struct val *u)
{
	if (u->name)
		err(c, TK_E_FORMAT, at, "%s", u->name);
	err(c, TK_E_FORMAT, at, "a value is undefined");
}

static const struct str *need_str(struct ctx *c, const struct node *at, const struct val *v,
				  const char *what)
{
	if (v->k != V_STR)
		err(c, TK_E_FORMAT, at, "%s must be a string, not %s", what, type_name(v));
	return v->s;
}

static long long need_int(struct ctx *c, const struct node *at, const struct val *v,
			  const char *what)
{
	if (v->k != V_INT && v->k != V_BOOL)
		err(c, TK_E_FORMAT, at, "%s must be an integer, not %s", what, type_name(v));
	return v->i;
}

/* The items of an iterable: a list's, a dict's keys, a string's
 * characters; undefined is empty. */
static struct list *iter_list(struct ctx *c, const struct node *at, const struct val *v)
{
	struct list *l;
	switch (v->k) {
	case V_LIST: return v->l;
	case V_UNDEF: return mklist(c, 0);
	case V_DICT:
		l = mklist(c, v->d->n);
		for (int i = 0; i < v->d->n; i++)
			list_push(c, l, v->d->k[i]);
		return l;
	case V_STR:
		l = mklist(c, (int)v->s->n);
		for (size_t i = 0; i < v->s->n;) {
			size_t k = i + 1;
			while (k < v->s->n && ((unsigned char)v->s->s[k] & 0xc0) == 0x80)
				k++;
			list_push(c, l, vstr(c, v->s->s + i, k - i));
			i = k;
		}
		return l;
	default:
		err(c, TK_E_FORMAT, at, "'%s' object is not iterable", type_name(v));
	}
}

static long long length(struct ctx *c, const struct node *at, const struct val *v)
{
	switch (v->k) {
	case V_UNDEF: return 0;
	case V_STR: return (long long)cp_count(v->s->s, v->s->n);
	case V_LIST:
		if (v->l->lazy)
			err(c, TK_E_FORMAT, at, "object of type 'generator' has no len()");
		return v->l->n;
	case V_DICT: case V_NS: return v->d->n;
	default: err(c, TK_E_FORMAT, at, "object of type '%s' has no len()", type_name(v));
	}
}

/* x[i] for an integer i (negative from the end), undefined when out of
 * range. */
static struct val index_val(struct ctx *c, const struct node *at, const struct val *x,
			    long long i)
{
	long long n = x->k == V_LIST ? x->l->n : (long long)cp_count(x->s->s, x->s->n);
	if (i < 0)
		i += n;
	if (i < 0 || i >= n)
		return UNDEF;
	if (x->k == V_LIST)
		return x->l->v[i];
	size_t b = cp_offset(x->s->s, x->s->n, (size_t)i);
	size_t e = b + 1;
	while (e < x->s->n && ((unsigned char)x->s->s[e] & 0xc0) == 0x80)
		e++;
	return vstr(c, x->s->s + b, e - b);
}

static struct val loop_attr(struct ctx *c, const struct loop *lp, const char *name)
{
	int n = lp->items->n, i = lp->i;
	if (!strcmp(name, "index")) return vint(i + 1);
	if (!strcmp(name, "index0")) return vint(i);
	if (!strcmp(name, "revindex")) return vint(n - i);
	if (!strcmp(name, "revindex0")) return vint(n - i - 1);
	if (!strcmp(name, "first")) return vbool(i == 0);
	if (!strcmp(name, "last")) return vbool(i == n - 1);
	if (!strcmp(name, "length")) return vint(n);
	if (!strcmp(name, "depth")) return vint(1);
	if (!strcmp(name, "depth0")) return vint(0);
	if (!strcmp(name, "previtem")) return i > 0 ? lp->items->v[i - 1] : UNDEF;
	if (!strcmp(name, "nextitem")) return i + 1 < n ? lp->items->v[i + 1] : UNDEF;
	(void)c;
	return UNDEF;
}

/* environment.getattr / getitem: a dict's key, a list's or string's
 * index; undefined when missing; an error on undefined. */
static struct val get_item(struct ctx *c, const struct node *at, const struct val *x,
			   const struct val *k)
{
	struct val *p;
	switch (x->k) {
	case V_UNDEF: undefined_error(c, at, x);
	case V_DICT: case V_NS:
		p = dict_find(x->d, k);
		if (p)
			return *p;
		if (k->k == V_STR) {
			/* jinja2's message for what is missing */
			char *nm = calloc_c(c, k->s->n + 64);
			sprintf(nm, "'%s' has no attribute '%s'",
				x->k == V_DICT ? "dict object" : "Namespace", k->s->s);
			return (struct val){ .k = V_UNDEF, .name = nm };
		}
		return UNDEF;
	case V_LIST: case V_STR:
		if (x->k == V_LIST && x->l->lazy) /* jinja2's getitem fails over to undefined */
			return (struct val){ .k = V_UNDEF,
					     .name = "'generator object' has no such attribute" };
		if (k->k == V_INT || k->k == V_BOOL)
			return index_val(c, at, x, k->i);
		return UNDEF;
	case V_LOOP:
		return k->k == V_STR ? loop_attr(c, x->lp, k->s->s) : UNDEF;
	default:
		return UNDEF;
	}
}

static struct val get_attr(struct ctx *c, const struct node *at, const struct val *x,
			   const char *name)
{
	struct val k = vcstr(c, name);
	struct val v = get_item(c, at, x, &k);
	if (v.k == V_UNDEF && !v.name) {
		char *nm = calloc_c(c, strlen(name) + 80);
		sprintf(nm, "'%s object' has no attribute '%s'", type_name(x), name);
		v.name = nm;
	}
	return v;
}

static long long slice_bound(const struct val *v, long long n, long long dflt)
{
	if (!v || v->k == V_NONE)
		return dflt;
	long long i = v->i;
	if (i < 0)
		i = i + n < 0 ? -1 : i + n;
	return i;
}

static struct val slice(struct ctx *c, const struct node *n, const struct val *x,
			const struct val *lo, const struct val *hi, const struct val *st)
{
	long long step = st && st->k != V_NONE ? need_int(c, n, st, "a slice step") : 1;
	if (lo && lo->k != V_NONE)
		need_int(c, n, lo, "a slice index");
	if (hi && hi->k != V_NONE)
		need_int(c, n, hi, "a slice index");
	if (!step)
		err(c, TK_E_FORMAT, n, "slice step cannot be zero");
	if (x->k == V_LIST && x->l->lazy)
		return (struct val){ .k = V_UNDEF, .name = "'generator object' has no such attribute" };
	if (x->k != V_LIST && x->k != V_STR) {
		if (x->k == V_UNDEF)
			undefined_error(c, n, x);
		err(c, TK_E_FORMAT, n, "'%s' object is not subscriptable", type_name(x));
	}
	long long len = x->k == V_LIST ? x->l->n : (long long)cp_count(x->s->s, x->s->n);
	long long b, e;
	if (step > 0) {
		b = slice_bound(lo, len, 0);
		e = slice_bound(hi, len, len);
		b = b < 0 ? 0 : b > len ? len : b;
		e = e < 0 ? 0 : e > len ? len : e;
	} else {
		b = slice_bound(lo, len, len - 1);
		e = slice_bound(hi, len, -1);
		b = b >= len ? len - 1 : b;
		e = e >= len ? len - 1 : e;
	}
	struct list *l = mklist(c, 4);
	for (long long i = b; step > 0 ? i < e : i > e; i += step)
		list_push(c, l, index_val(c, n, x, i));
	if (x->k == V_LIST)
		return vlist(l);
	struct tk_buf *o = cap_push(c);
	for (int i = 0; i < l->n; i++)
		out_put(c, o, l->v[i].s->s, l->v[i].s->n);
	return cap_pop(c);
}

static int cmp_vals(struct ctx *c, const struct node *at, const struct val *a, const struct val *b)
{
	if (is_num(a) && is_num(b)) {
		if (a->k != V_FLOAT && b->k != V_FLOAT)
			return a->i < b->i ? -1 : a->i > b->i;
		double x = num(a), y = num(b);
		return x < y ? -1 : x > y;
	}
	if (a->k == V_STR && b->k == V_STR) {
		size_t n = a->s->n < b->s->n ? a->s->n : b->s->n;
		int r = memcmp(a->s->s, b->s->s, n);
		return r ? (r < 0 ? -1 : 1) : a->s->n < b->s->n ? -1 : a->s->n > b->s->n;
	}
	if (a->k == V_LIST && b->k == V_LIST) {
		for (int i = 0; i < a->l->n && i < b->l->n; i++)
			if (!val_eq(&a->l->v[i], &b->l->v[i]))
				return cmp_vals(c, at, &a->l->v[i], &b->l->v[i]);
		return a->l->n < b->l->n ? -1 : a->l->n > b->l->n;
	}
	if (a->k == V_UNDEF)
		undefined_error(c, at, a);
	if (b->k == V_UNDEF)
		undefined_error(c, at, b);
	err(c, TK_E_FORMAT, at, "'<' not supported between instances of '%s' and '%s'",
	    type_name(a), type_name(b));
}

static int contains(struct ctx *c, const struct node *at, const struct val *hay,
		    const struct val *x)
{
	switch (hay->k) {
	case V_STR:
		if (x->k != V_STR)
			err(c, TK_E_FORMAT, at, "'in <string>' requires string as left operand, not %s",
			    type_name(x));
		return memmem_s(hay->s->s, hay->s->n, x->s->s, x->s->n) != NULL;
	case V_LIST:
		for (int i = 0; i < hay->l->n; i++)
			if (val_eq(&hay->l->v[i], x))
				return 1;
		return 0;
	case V_DICT: case V_NS: return dict_find(hay->d, x) != NULL;
	case V_UNDEF: return 0;
	default: err(c, TK_E_FORMAT, at, "argument of type '%s' is not iterable", type_name(hay));
	}
}

static struct val binary(struct ctx *c, const struct node *n, int op, struct val a, struct val b)
{
	if (op == OP_CAT) {
		struct tk_buf *o = cap_push(c);
		to_str(c, &a, o);
		to_str(c, &b, o);
		return cap_pop(c);
	}
	switch (op) {
	case OP_EQ: return vbool(val_eq(&a, &b));
	case OP_NE: return vbool(!val_eq(&a, &b));
	case OP_LT: return vbool(cmp_vals(c, n, &a, &b) < 0);
	case OP_LE: return vbool(cmp_vals(c, n, &a, &b) <= 0);
	case OP_GT: return vbool(cmp_vals(c, n, &a, &b) > 0);
	case OP_GE: return vbool(cmp_vals(c, n, &a, &b) >= 0);
	case OP_IN: return vbool(contains(c, n, &b, &a));
	case OP_NOTIN: return vbool(!contains(c, n, &b, &a));
	}
	if (a.k == V_UNDEF)
		undefined_error(c, n, &a);
	if (b.k == V_UNDEF)
		undefined_error(c, n, &b);
	if (op == OP_ADD && a.k == V_STR && b.k == V_STR) {
		int safe = a.safe || b.safe;
		if (safe) { /* Markup.__add__ and __radd__ escape the other */
			a = escape_str(c, a);
			b = escape_str(c, b);
		}
		struct tk_buf *o = cap_push(c);
		out_put(c, o, a.s->s, a.s->n);
		out_put(c, o, b.s->s, b.s->n);
		struct val r = cap_pop(c);
		r.safe = safe;
		return r;
	}
	if (op == OP_ADD && a.k == V_LIST && b.k == V_LIST && !a.l->lazy && !b.l->lazy) {
		struct list *l = mklist(c, a.l->n + b.l->n);
		for (int i = 0; i < a.l->n; i++)
			list_push(c, l, a.l->v[i]);
		for (int i = 0; i < b.l->n; i++)
			list_push(c, l, b.l->v[i]);
		l->tuple = a.l->tuple;
		return vlist(l);
	}
	if ((a.k == V_LIST && a.l->lazy) || (b.k == V_LIST && b.l->lazy))
		err(c, TK_E_FORMAT, n, "unsupported operand type: 'generator'");
	if (op == OP_MUL && (a.k == V_STR || a.k == V_LIST || b.k == V_STR || b.k == V_LIST)) {
		struct val s = a.k == V_STR || a.k == V_LIST ? a : b;
		struct val k = a.k == V_STR || a.k == V_LIST ? b : a;
		long long times = need_int(c, n, &k, "a repeat count");
		size_t unit = s.k == V_STR ? s.s->n : (size_t)s.l->n * sizeof(struct val);
		if (times > 0 && unit && (unsigned long long)times > MAX_TEXT / unit)
			err(c, TK_E_UNSUPPORTED, n, "the template writes too much");
		if (s.k == V_STR) {
			struct tk_buf *o = cap_push(c);
			for (long long i = 0; i < times; i++)
				out_put(c, o, s.s->s, s.s->n);
			return cap_pop(c);
		}
		struct list *l = mklist(c, 4);
		for (long long i = 0; i < times; i++)
			for (int j = 0; j < s.l->n; j++)
				list_push(c, l, s.l->v[j]);
		return vlist(l);
	}
	if (!is_num(&a) || !is_num(&b))
		err(c, TK_E_FORMAT, n, "unsupported operand types: '%s' and '%s'", type_name(&a),
		    type_name(&b));
	int ints = a.k != V_FLOAT && b.k != V_FLOAT;
	double x = num(&a), y = num(&b);
	long long r;
	switch (op) {
	case OP_ADD:
		if (!ints)
			return vfloat(x + y);
		if (__builtin_add_overflow(a.i, b.i, &r))
			goto too_big;
		return vint(r);
	case OP_SUB:
		if (!ints)
			return vfloat(x - y);
		if (__builtin_sub_overflow(a.i, b.i, &r))
			goto too_big;
		return vint(r);
	case OP_MUL:
		if (!ints)
			return vfloat(x * y);
		if (__builtin_mul_overflow(a.i, b.i, &r))
			goto too_big;
		return vint(r);
	case OP_DIV:
		if (y == 0)
			err(c, TK_E_FORMAT, n, "division by zero");
		return vfloat(x / y);
	case OP_FLOORDIV:
	case OP_MOD:
		if (y == 0)
			err(c, TK_E_FORMAT, n, "integer division or modulo by zero");
		if (ints) {
			if (a.i == LLONG_MIN && b.i == -1)
				goto too_big;
			long long q = a.i / b.i;
			r = a.i % b.i;
			if (r && ((r < 0) != (b.i < 0)))
				q--, r += b.i;
			return vint(op == OP_MOD ? r : q);
		} else {
			double q = floor(x / y), m = fmod(x, y);
			if (m && ((m < 0) != (y < 0)))
				m += y;
			return vfloat(op == OP_MOD ? m : q);
		}
	case OP_POW:
		if (ints && b.i >= 0) {
			long long base = a.i, e = b.i;
			r = 1;
			while (e) {
				if ((e & 1) && __builtin_mul_overflow(r, base, &r))
					goto too_big;
				e >>= 1;
				if (e && __builtin_mul_overflow(base, base, &base))
					goto too_big;
			}
			return vint(r);
		}
		return vfloat(pow(x, y));
	}
	err(c, TK_E_FORMAT, n, "bad operator");
too_big:
	/* Python's ints have no bound; tk's have 64 bits */
	err(c, TK_E_UNSUPPORTED, n, "an integer beyond 64 bits");
}

/* ---------------------------------------------------------------- tests */

static int run_test(struct ctx *c, const struct node *at, const char *name, struct args *a);

static int test_named(struct ctx *c, const struct node *at, const char *name, struct val x,
		      struct val *extra, int nextra)
{
	struct args a = { .n = 1 + nextra, .at = at };
	a.v = calloc_c(c, (size_t)(a.n) * sizeof(*a.v));
	a.v[0] = x;
	for (int i = 0; i < nextra; i++)
		a.v[1 + i] = extra[i];
	return run_test(c, at, name, &a);
}

static int run_test(struct ctx *c, const struct node *at, const char *name, struct args *a)
{
	struct val *x = &a->v[0], *y = arg(a, 1, NULL);
#define IS(nm) (!strcmp(name, nm))
	if (IS("defined")) return x->k != V_UNDEF;
	if (IS("undefined")) return x->k == V_UNDEF;
	if (IS("none")) return x->k == V_NONE;
	if (IS("string")) return x->k == V_STR;
	if (IS("mapping")) return x->k == V_DICT;
	if (IS("iterable")) return x->k == V_STR || x->k == V_LIST || x->k == V_DICT ||
				   x->k == V_UNDEF;
	if (IS("sequence")) return x->k == V_STR || (x->k == V_LIST && !x->l->lazy) ||
				   x->k == V_DICT || x->k == V_UNDEF;
	if (IS("number")) return is_num(x);
	if (IS("integer")) return x->k == V_INT;
	if (IS("float")) return x->k == V_FLOAT;
	if (IS("boolean")) return x->k == V_BOOL;
	if (IS("true")) return x->k == V_BOOL && x->i;
	if (IS("false")) return x->k == V_BOOL && !x->i;
	if (IS("callable")) /* jinja2's Undefined has __call__ too */
		return x->k == V_MACRO || x->k == V_FUNC || x->k == V_UNDEF;
	if (IS("lower") || IS("upper")) {
		if (x->k != V_STR)
			return 0;
		struct val m = map_case(c, x->s, IS("lower") ? CASE_LOWER : CASE_UPPER,
					IS("lower") ? CASE_LOWER : CASE_UPPER, 0);
		return val_eq(&m, x);
	}
	if (IS("odd") || IS("even")) {
		long long i = need_int(c, at, x, "the value of an odd/even test");
		return (i % 2 != 0) == IS("odd");
	}
	if (!y)
		err(c, TK_E_UNSUPPORTED, at, "unknown test '%s' (or it needs an argument)", name);
	if (IS("in")) return contains(c, at, y, x);
	if (IS("equalto") || IS("eq") || IS("==")) return val_eq(x, y);
	if (IS("ne") || IS("!=")) return !val_eq(x, y);
	if (IS("sameas")) return val_eq(x, y) && x->k == y->k;
	if (IS("lt") || IS("lessthan") || IS("<")) return cmp_vals(c, at, x, y) < 0;
	if (IS("le") || IS("<=")) return cmp_vals(c, at, x, y) <= 0;
	if (IS("gt") || IS("greaterthan") || IS(">")) return cmp_vals(c, at, x, y) > 0;
	if (IS("ge") || IS(">=")) return cmp_vals(c, at, x, y) >= 0;
	if (IS("divisibleby")) {
		long long d = need_int(c, at, y, "divisibleby's argument");
		return d && need_int(c, at, x, "the value") % d == 0;
	}
#undef IS
	err(c, TK_E_UNSUPPORTED, at, "unknown test '%s'", name);
}

/* ---------------------------------------------------------------- filters */

static struct val call_filter(struct ctx *c, const struct node *at, const char *name,
			      struct args *a);

/* An item's attribute for selectattr/map/sort/join: "a.b" walks, "0" is
 * an index. */
static struct val attr_path(struct ctx *c, const struct node *at, struct val x, const char *path)
{
	char part[256];
	while (*path) {
		size_t n = strcspn(path, ".");
		snprintf(part, sizeof(part), "%.*s", (int)(n < 255 ? n : 255), path);
		char *end;
		long long i = strtoll(part, &end, 10);
		if (*part && !*end) {
			struct val k = vint(i);
			x = get_item(c, at, &x, &k);
		} else {
			if (x.k == V_UNDEF)
				undefined_error(c, at, &x);
			x = get_attr(c, at, &x, part);
		}
		path += n + (path[n] == '.');
	}
	return x;
}

static int sort_case_sensitive;
static struct ctx *sort_ctx;

/* A value for sorting: lower-cased strings unless case-sensitive. */
static struct val sort_key(struct ctx *c, struct val v)
{
	if (v.k == V_STR && !sort_case_sensitive)
		return map_case(c, v.s, CASE_LOWER, CASE_LOWER, 0);
	return v;
}

struct keyed {
	struct val key, item;
	int idx;
};

static int sort_reverse;

/* Python's sorted(key=..., reverse=...): stable both ways. */
static int keyed_cmp(const void *p, const void *q)
{
	const struct keyed *a = p, *b = q;
	int r = cmp_vals(sort_ctx, NULL, &a->key, &b->key);
	if (sort_reverse)
		r = -r;
	return r ? r : (a->idx > b->idx) - (a->idx < b->idx);
}

static struct list *sort_list(struct ctx *c, const struct node *at, struct list *l,
			      const char *attr, int by_value, int reverse, int cs)
{
	int n = l->n;
	struct keyed *k = calloc_c(c, (size_t)(n + 1) * sizeof(*k));
	sort_case_sensitive = cs;
	for (int i = 0; i < n; i++) {
		struct val key = l->v[i];
		if (attr)
			key = attr_path(c, at, key, attr);
		else if (by_value >= 0)
			key = key.l->v[by_value];
		k[i].key = sort_key(c, key);
		k[i].item = l->v[i];
		k[i].idx = i;
	}
	sort_ctx = c;
	sort_reverse = reverse;
	qsort(k, (size_t)n, sizeof(*k), keyed_cmp);
	struct list *r = mklist(c, n);
	for (int i = 0; i < n; i++)
		list_push(c, r, k[i].item);
	return r;
}

static struct val pair(struct ctx *c, struct val a, struct val b)
{
	struct list *l = mklist(c, 2);
	l->tuple = 1;
	list_push(c, l, a);
	list_push(c, l, b);
	return vlist(l);
}

/* jinja2's indent filter */
static struct val indent(struct ctx *c, const struct node *at, const struct val *s,
			 const struct val *width, int first, int blank)
{
	struct tk_buf *o = cap_push(c);
	struct val ind;
	if (width && width->k == V_STR) {
		ind = *width;
	} else {
		long long w = width ? need_int(c, at, width, "indent's width") : 4;
		if (w > 4096)
			err(c, TK_E_UNSUPPORTED, at, "indent wider than 4096");
		struct tk_buf *sp = cap_push(c);
		for (long long i = 0; i < w; i++)
			out_cstr(c, sp, " ");
		ind = cap_pop(c);
	}
	struct val src = str_of(c, s);
	struct tk_buf *t = cap_push(c);
	out_put(c, t, src.s->s, src.s->n);
	out_cstr(c, t, "\n");
	struct val text = cap_pop(c);
	/* splitlines */
	struct list *lines = mklist(c, 8);
	const char *p = text.s->s, *e = p + text.s->n;
	while (p < e) {
		const char *q = p;
		while (q < e && *q != '\n' && *q != '\r' && *q != '\v' && *q != '\f' &&
		       !(*q >= 0x1c && *q <= 0x1e))
			q++;
		list_push(c, lines, vstr(c, p, (size_t)(q - p)));
		if (q < e && *q == '\r' && q + 1 < e && q[1] == '\n')
			q++;
		p = q + 1;
	}
	if (first)
		out_put(c, o, ind.s->s, ind.s->n);
	for (int i = 0; i < lines->n; i++) {
		const struct str *ln = lines->v[i].s;
		if (i)
			out_cstr(c, o, "\n");
		if (i && (blank || ln->n))
			out_put(c, o, ind.s->s, ind.s->n);
		out_put(c, o, ln->s, ln->n);
	}
	return cap_pop(c);
}

static struct val tojson(struct ctx *c, const struct node *at, struct args *a)
{
	struct json_opts o = { .indent = -1, .item_sep = ", ", .key_sep = ": " };
	struct val *ea = arg(a, 1, "ensure_ascii"), *in = arg(a, 2, "indent");
	struct val *sep = arg(a, 3, "separators"), *sk = arg(a, 4, "sort_keys");
	o.ascii = ea && truthy(ea);
	o.sort = sk && truthy(sk);
	if (in && in->k != V_NONE) {
		if (in->k == V_STR)
			err(c, TK_E_UNSUPPORTED, at, "tojson with a string indent");
		o.indent = (int)need_int(c, at, in, "tojson's indent");
		o.item_sep = ",";
	}
	if (sep && sep->k != V_NONE) {
		if (sep->k != V_LIST || sep->l->n != 2)
			err(c, TK_E_FORMAT, at, "tojson's separators must be a pair of strings");
		o.item_sep = need_str(c, at, &sep->l->v[0], "a separator")->s;
		o.key_sep = need_str(c, at, &sep->l->v[1], "a separator")->s;
	}
	struct tk_buf *b = cap_push(c);
	to_json(c, at, &a->v[0], &o, 0, b);
	return cap_pop(c);
}

/* select/reject/selectattr/rejectattr */
static struct val select_items(struct ctx *c, const struct node *at, struct args *a, int attr,
			       int keep)
{
	if (!truthy(&a->v[0])) /* jinja2 iterates only a true value */
		return vlazy(mklist(c, 0));
	struct list *in = iter_list(c, at, &a->v[0]), *out = mklist(c, in->n);
	const char *path = NULL;
	int k = 1;
	if (attr) {
		struct val *p = arg(a, 1, NULL);
		if (!p)
			err(c, TK_E_FORMAT, at, "selectattr needs an attribute");
		path = need_str(c, at, p, "the attribute")->s;
		k = 2;
	}
	struct val *t = arg(a, k, NULL);
	const char *test = t ? need_str(c, at, t, "the test")->s : NULL;
	int nextra = a->n > k + 1 ? a->n - k - 1 : 0;
	for (int i = 0; i < in->n; i++) {
		struct val x = path ? attr_path(c, at, in->v[i], path) : in->v[i];
		int r = test ? test_named(c, at, test, x, a->v + k + 1, nextra) : truthy(&x);
		if (r == keep)
			list_push(c, out, in->v[i]);
	}
	return vlazy(out);
}

#define IS(nm) (!strcmp(name, nm))

/* The string filters (trim to replace, indent, wordcount, center) on
 * a->v[0]: their value, with *done = 1; *done = 0 when name is none of
 * them.  The other groups below answer the same way. */
static struct val filter_str(struct ctx *c, const struct node *at, const char *name,
			     struct args *a, int *done)
{
	struct val x = a->v[0], *a1 = arg(a, 1, NULL);
	*done = 1;
	if (IS("trim")) {
		struct val *ch = arg(a, 1, "chars");
		struct val s = str_of(c, &x);
		return strip(c, s.s, ch && ch->k != V_NONE ? need_str(c, at, ch, "trim's chars") : NULL,
			     1, 1);
	}
	if (IS("upper") || IS("lower")) {
		struct val s = str_of(c, &x);
		int m = IS("upper") ? CASE_UPPER : CASE_LOWER;
		return map_case(c, s.s, m, m, 0);
	}
	if (IS("capitalize")) {
		struct val s = str_of(c, &x);
		return map_case(c, s.s, CASE_TITLE, CASE_LOWER, 0);
	}
	if (IS("title")) {
		/* jinja2 splits words at white space and ([{<- */
		struct val s = str_of(c, &x);
		struct tk_buf *o = cap_push(c);
		int start = 1;
		for (size_t i = 0; i < s.s->n;) {
			size_t k = i + 1;
			while (k < s.s->n && ((unsigned char)s.s->s[k] & 0xc0) == 0x80)
				k++;
			char ch = s.s->s[i];
			int sep = is_ws((unsigned char)ch) || strchr("-([{<", ch) != NULL;
			struct str *one = calloc_c(c, sizeof(*one) + (k - i) + 1);
			memcpy(one->s, s.s->s + i, k - i);
			one->n = k - i;
			struct val m = sep ? vstr(c, one->s, one->n)
					   : map_case(c, one, start ? CASE_UPPER : CASE_LOWER,
						      CASE_LOWER, 0);
			out_put(c, o, m.s->s, m.s->n);
			start = sep;
			i = k;
		}
		return cap_pop(c);
	}
	if (IS("replace")) {
		struct val s = str_of(c, &x);
		struct val *b = arg(a, 2, "new"), *n = arg(a, 3, "count");
		if (!a1 || !b)
			err(c, TK_E_FORMAT, at, "replace needs two arguments");
		return replace(c, s.s, str_of(c, a1).s, str_of(c, b).s,
			       n && n->k != V_NONE ? need_int(c, at, n, "replace's count") : -1);
	}
	if (IS("indent")) {
		struct val *w = arg(a, 1, "width"), *fi = arg(a, 2, "first"), *bl = arg(a, 3, "blank");
		return indent(c, at, &x, w, fi && truthy(fi), bl && truthy(bl));
	}
	if (IS("wordcount")) {
		struct val s = str_of(c, &x);
		long long n = 0;
		int in = 0;
		for (size_t i = 0; i < s.s->n; i++) {
			unsigned char ch = (unsigned char)s.s->s[i];
			int w = ch >= 0x80 || ch == '_' || (ch >= '0' && ch <= '9') ||
				(ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
			n += w && !in;
			in = w;
		}
		return vint(n);
	}
	if (IS("center")) {
		struct val s = str_of(c, &x);
		long long w = a1 ? need_int(c, at, a1, "center's width") : 80;
		if (w > 4096)
			err(c, TK_E_UNSUPPORTED, at, "center wider than 4096");
		long long len = (long long)cp_count(s.s->s, s.s->n);
		if (len >= w)
			return s;
		long long pad = w - len, left = pad / 2 + (pad & w & 1);
		struct tk_buf *o = cap_push(c);
		for (long long i = 0; i < left; i++)
			out_cstr(c, o, " ");
		out_put(c, o, s.s->s, s.s->n);
		for (long long i = 0; i < pad - left; i++)
			out_cstr(c, o, " ");
		return cap_pop(c);
	}
	*done = 0;
	return x;
}

/* The filters over lists, dicts and strings as sequences (join to
 * selectattr). */
static struct val filter_seq(struct ctx *c, const struct node *at, const char *name,
			     struct args *a, int *done)
{
	struct val x = a->v[0], *a1 = arg(a, 1, NULL);
	*done = 1;
	if (IS("join")) {
		struct list *l = iter_list(c, at, &x);
		struct val *sep = arg(a, 1, "d"), *at_ = arg(a, 2, "attribute");
		struct tk_buf *o = cap_push(c);
		for (int i = 0; i < l->n; i++) {
			if (i && sep)
				to_str(c, sep, o);
			struct val it = at_ ? attr_path(c, at, l->v[i], str_of(c, at_).s->s) : l->v[i];
			to_str(c, &it, o);
		}
		return cap_pop(c);
	}
	if (IS("first") || IS("last")) {
		struct list *l = iter_list(c, at, &x);
		if (IS("last") && l->lazy)
			err(c, TK_E_FORMAT, at, "'generator' object is not reversible");
		return l->n ? l->v[IS("first") ? 0 : l->n - 1] : UNDEF;
	}
	if (IS("list")) {
		struct list *l = iter_list(c, at, &x), *r;
		if (!l->lazy)
			return vlist(l);
		r = mklist(c, l->n);
		for (int i = 0; i < l->n; i++)
			list_push(c, r, l->v[i]);
		return vlist(r);
	}
	if (IS("reverse")) {
		if (x.k == V_STR)
			return slice(c, at, &x, NULL, NULL, &(struct val){ .k = V_INT, .i = -1 });
		struct list *l = iter_list(c, at, &x), *r = mklist(c, l->n);
		for (int i = l->n - 1; i >= 0; i--)
			list_push(c, r, l->v[i]);
		/* reversed(list) is an iterator; a generator becomes a list */
		return l->lazy || x.k == V_DICT ? vlist(r) : vlazy(r);
	}
	if (IS("items") || IS("dictsort")) {
		if (x.k == V_UNDEF)
			return vlist(mklist(c, 0));
		if (x.k != V_DICT)
			err(c, TK_E_FORMAT, at, "%s needs a mapping, not %s", name, type_name(&x));
		struct list *l = mklist(c, x.d->n);
		for (int i = 0; i < x.d->n; i++)
			list_push(c, l, pair(c, x.d->k[i], x.d->v[i]));
		if (IS("items"))
			return vlazy(l);
		struct val *cs = arg(a, 1, "case_sensitive"), *by = arg(a, 2, "by");
		struct val *rev = arg(a, 3, "reverse");
		int byv = by && by->k == V_STR && !strcmp(by->s->s, "value");
		return vlist(sort_list(c, at, l, NULL, byv, rev && truthy(rev), cs && truthy(cs)));
	}
	if (IS("sort")) {
		struct val *rev = arg(a, 1, "reverse"), *cs = arg(a, 2, "case_sensitive");
		struct val *atr = arg(a, 3, "attribute");
		return vlist(sort_list(c, at, iter_list(c, at, &x),
				       atr && atr->k != V_NONE ? str_of(c, atr).s->s : NULL, -1,
				       rev && truthy(rev), cs && truthy(cs)));
	}
	if (IS("unique")) {
		/* jinja's do_unique: the first of each key, the key the item (or
		 * its attribute), lower-cased unless case_sensitive */
		struct val *cs = arg(a, 1, "case_sensitive"), *atr = arg(a, 2, "attribute");
		const char *path = atr && atr->k != V_NONE ? str_of(c, atr).s->s : NULL;
		struct list *l = iter_list(c, at, &x), *r = mklist(c, l->n), *keys = mklist(c, l->n);
		sort_case_sensitive = cs && truthy(cs);
		for (int i = 0; i < l->n; i++) {
			struct val key = sort_key(c, path ? attr_path(c, at, l->v[i], path) : l->v[i]);
			int seen = 0;
			for (int j = 0; j < keys->n && !seen; j++)
				seen = val_eq(&keys->v[j], &key);
			if (!seen) {
				list_push(c, keys, key);
				list_push(c, r, l->v[i]);
			}
		}
		return vlazy(r);
	}
	if (IS("min") || IS("max")) {
		struct list *l = iter_list(c, at, &x);
		if (!l->n)
			return UNDEF;
		struct val best = l->v[0];
		for (int i = 1; i < l->n; i++) {
			int r = cmp_vals(c, at, &l->v[i], &best);
			if (IS("min") ? r < 0 : r > 0)
				best = l->v[i];
		}
		return best;
	}
	if (IS("sum")) {
		struct list *l = iter_list(c, at, &x);
		struct val *atr = arg(a, 1, "attribute"), *st = arg(a, 2, "start");
		struct val s = st ? *st : vint(0);
		for (int i = 0; i < l->n; i++)
			s = binary(c, at, OP_ADD, s,
				   atr ? attr_path(c, at, l->v[i], str_of(c, atr).s->s) : l->v[i]);
		return s;
	}
	if (IS("map")) {
		if (!truthy(&x)) /* jinja2 iterates only a true value */
			return vlazy(mklist(c, 0));
		struct list *l = iter_list(c, at, &x), *r = mklist(c, l->n);
		struct val *atr = arg(a, -1, "attribute");
		if (atr) {
			struct val *dflt = arg(a, -1, "default");
			for (int i = 0; i < l->n; i++) {
				struct val v = attr_path(c, at, l->v[i], str_of(c, atr).s->s);
				list_push(c, r, v.k == V_UNDEF && dflt ? *dflt : v);
			}
			return vlazy(r);
		}
		if (!a1)
			err(c, TK_E_FORMAT, at, "map needs a filter name or attribute=");
		const char *f = need_str(c, at, a1, "map's filter")->s;
		for (int i = 0; i < l->n; i++) {
			struct args b = { .n = a->n - 1, .nk = a->nk, .kn = a->kn, .kv = a->kv, .at = at };
			b.v = calloc_c(c, (size_t)(b.n) * sizeof(*b.v));
			b.v[0] = l->v[i];
			for (int j = 2; j < a->n; j++)
				b.v[j - 1] = a->v[j];
			list_push(c, r, call_filter(c, at, f, &b));
		}
		return vlazy(r);
	}
	if (IS("select") || IS("reject"))
		return select_items(c, at, a, 0, IS("select"));
	if (IS("selectattr") || IS("rejectattr"))
		return select_items(c, at, a, 1, IS("selectattr"));
	*done = 0;
	return x;
}

/* The number filters: int, float, abs, round. */
static struct val filter_num(struct ctx *c, const struct node *at, const char *name,
			     struct args *a, int *done)
{
	struct val x = a->v[0];
	*done = 1;
	if (IS("int")) {
		struct val *dflt = arg(a, 1, "default");
		if (x.k == V_INT || x.k == V_BOOL)
			return vint(x.i);
		if (x.k == V_FLOAT)
			return vint((long long)x.f);
		if (x.k == V_STR) {
			char *end;
			errno = 0;
			long long i = strtoll(x.s->s, &end, 10);
			while (is_ws((unsigned char)*end))
				end++;
			if (!errno && end != x.s->s && !*end)
				return vint(i);
			double f = strtod(x.s->s, &end);
			while (is_ws((unsigned char)*end))
				end++;
			if (end != x.s->s && !*end && isfinite(f))
				return vint((long long)f);
		}
		return dflt ? *dflt : vint(0);
	}
	if (IS("float")) {
		struct val *dflt = arg(a, 1, "default");
		if (is_num(&x))
			return vfloat(num(&x));
		if (x.k == V_STR) {
			char *end;
			double f = strtod(x.s->s, &end);
			while (is_ws((unsigned char)*end))
				end++;
			if (end != x.s->s && !*end)
				return vfloat(f);
		}
		return dflt ? *dflt : vfloat(0);
	}
	if (IS("abs")) {
		if (x.k == V_INT || x.k == V_BOOL)
			return vint(x.i < 0 ? -x.i : x.i);
		if (x.k == V_FLOAT)
			return vfloat(fabs(x.f));
		err(c, TK_E_FORMAT, at, "bad operand type for abs(): '%s'", type_name(&x));
	}
	if (IS("round")) {
		struct val *pr = arg(a, 1, "precision"), *m = arg(a, 2, "method");
		long long p = pr ? need_int(c, at, pr, "round's precision") : 0;
		const char *meth = m ? need_str(c, at, m, "round's method")->s : "common";
		if (!is_num(&x))
			err(c, TK_E_FORMAT, at, "round needs a number");
		double f = num(&x), s = pow(10, (double)p), r;
		if (!strcmp(meth, "common") && p >= 0 && p <= 340 && isfinite(f)) {
			/* Python's round(f, p): the exact binary value rounded to p
			 * decimals (2.675 is 2.67499999..., so 2.67), ties to even,
			 * which is what printf's conversion does */
			char buf[720];
			snprintf(buf, sizeof(buf), "%.*f", (int)p, f);
			r = strtod(buf, NULL);
		} else if (!strcmp(meth, "common"))
			r = nearbyint(f * s) / s;
		else if (!strcmp(meth, "floor"))
			r = floor(f * s) / s;
		else if (!strcmp(meth, "ceil"))
			r = ceil(f * s) / s;
		else
			err(c, TK_E_FORMAT, at, "method must be common, ceil or floor");
		if (!strcmp(meth, "common") && x.k != V_FLOAT)
			return x.k == V_BOOL ? vint(x.i) : x;
		return vfloat(r);
	}
	*done = 0;
	return x;
}

/* The filter name applied to a->v[0], with the arguments a->v[1..]: the
 * filters of Markup values and the small ones here, the rest by group;
 * an unknown name is an error. */
static struct val call_filter(struct ctx *c, const struct node *at, const char *name,
			      struct args *a)
{
	struct val x = a->v[0], *a1 = arg(a, 1, NULL);
	if (IS("list") && x.k == V_LIST && !x.l->lazy)
		return x;
	if (IS("safe")) {
		struct val r = str_of(c, &x);
		r.safe = 1;
		return r;
	}
	if (IS("escape") || IS("e"))
		return escape_str(c, str_of(c, &x));
	/* the filters that keep a Markup one (soft_str, then a str method
	 * markupsafe wraps); the others give plain text, as jinja2 without
	 * autoescape does */
	int keep_safe = x.k == V_STR && x.safe &&
			(IS("trim") || IS("upper") || IS("lower") || IS("capitalize") || IS("string"));
	if (keep_safe) {
		struct val r = call_filter(c, at, name, &(struct args){
			.n = a->n, .nk = a->nk, .kn = a->kn, .kv = a->kv, .at = at,
			.v = (struct val[]){ vstr(c, x.s->s, x.s->n),
					     a->n > 1 ? a->v[1] : NONE } });
		r.safe = 1;
		return r;
	}
	if (IS("tojson"))
		return tojson(c, at, a);
	if (IS("string"))
		return str_of(c, &x);
	if (IS("length") || IS("count"))
		return vint(length(c, at, &x));
	if (IS("default") || IS("d")) {
		struct val *b = arg(a, 2, "boolean");
		int use = x.k == V_UNDEF || (b && truthy(b) && !truthy(&x));
		return use ? (a1 ? *a1 : vcstr(c, "")) : x;
	}
	static struct val (*const groups[])(struct ctx *, const struct node *, const char *,
					   struct args *, int *) = { filter_str, filter_seq, filter_num };
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
		int done;
		struct val r = groups[i](c, at, name, a, &done);
		if (done)
			return r;
	}
	err(c, TK_E_UNSUPPORTED, at, "unsupported filter '%s'", name);
}
#undef IS

/* ---------------------------------------------------------------- calls */

static struct val call_macro(struct ctx *c, const struct node *at, struct macro *m,
			     struct args *a)
{
	const struct node *def = m->def;
	struct frame *f = frame_new(c, m->env);
	if (++c->depth > 200)
		err(c, TK_E_FORMAT, at, "macros nested too deep");
	if (def->t == S_MACRO) {
		if (a->n > def->nk)
			err(c, TK_E_FORMAT, at, "macro '%s' takes not more than %d argument(s)", def->s,
			    def->nk);
		for (int i = 0; i < def->nk; i++) {
			struct val *v = arg(a, i, def->kn[i]);
			struct val u = { .k = V_UNDEF, .name = def->kn[i] };
			frame_set(c, f, def->kn[i], v ? *v : def->w[i] ? eval(c, def->w[i], f) : u);
		}
		for (int i = 0; i < a->nk; i++) {
			int ok = 0;
			for (int j = 0; j < def->nk && !ok; j++)
				ok = !strcmp(a->kn[i], def->kn[j]);
			if (!ok)
				err(c, TK_E_FORMAT, at, "macro '%s' takes no keyword argument '%s'",
				    def->s, a->kn[i]);
		}
		if (m->caller.k != V_UNDEF)
			frame_set(c, f, "caller", m->caller);
	}
	struct tk_buf *saved = c->out;
	c->out = cap_push(c);
	exec(c, def->t == S_MACRO ? def->c : def->c, f);
	c->out = saved;
	c->depth--;
	return cap_pop(c);
}

static struct val call_global(struct ctx *c, const struct node *at, int fn, struct args *a)
{
	switch (fn) {
	case F_RANGE: {
		long long b = 0, e, s = 1;
		if (a->n == 1)
			e = need_int(c, at, &a->v[0], "range's argument");
		else if (a->n == 2 || a->n == 3) {
			b = need_int(c, at, &a->v[0], "range's argument");
			e = need_int(c, at, &a->v[1], "range's argument");
			if (a->n == 3)
				s = need_int(c, at, &a->v[2], "range's argument");
		} else
			err(c, TK_E_FORMAT, at, "range takes 1 to 3 arguments");
		if (!s)
			err(c, TK_E_FORMAT, at, "range() arg 3 must not be zero");
		if ((e - b) / s > 100000)
			err(c, TK_E_FORMAT, at, "range too big");
		struct list *l = mklist(c, 4);
		for (long long i = b; s > 0 ? i < e : i > e; i += s)
			list_push(c, l, vint(i));
		return vlist(l);
	}
	case F_NAMESPACE:
	case F_DICT: {
		struct dict *d = mkdict(c);
		if (a->n > 1 || (a->n == 1 && a->v[0].k != V_DICT))
			err(c, TK_E_UNSUPPORTED, at, "%s() with positional arguments other than a dict",
			    fn == F_DICT ? "dict" : "namespace");
		if (a->n == 1)
			for (int i = 0; i < a->v[0].d->n; i++)
				dict_set(c, d, a->v[0].d->k[i], a->v[0].d->v[i]);
		for (int i = 0; i < a->nk; i++)
			dict_set(c, d, vcstr(c, a->kn[i]), a->kv[i]);
		return (struct val){ .k = fn == F_DICT ? V_DICT : V_NS, .d = d };
	}
	case F_RAISE: {
		struct val m = a->n ? str_of(c, &a->v[0]) : vcstr(c, "");
		err(c, TK_E_INVAL, at, "%s", m.s->s);
	}
	case F_STRFTIME: {
		if (a->n != 1)
			err(c, TK_E_FORMAT, at, "strftime_now takes one argument");
		const char *fmt = need_str(c, at, &a->v[0], "strftime_now's format")->s;
		struct tm tm;
		char buf[512];
		if (c->o && c->o->pin_now) {
			gmtime_r(&c->o->now, &tm);
		} else {
			time_t now = time(NULL);
			localtime_r(&now, &tm); /* datetime.now() */
		}
		size_t n = strftime(buf, sizeof(buf), fmt, &tm);
		if (!n && *fmt)
			err(c, TK_E_UNSUPPORTED, at, "strftime_now format too long or empty result");
		return vstr(c, buf, n);
	}
	}
	err(c, TK_E_FORMAT, at, "bad function");
}

/* str.format with plain fields ({}, {0}, {name}; "{{" and "}}"): each the
 * str() of its argument, as format(value, '') gives for the values a
 * template has.  A format spec, conversion or attribute is refused. */
static struct val str_format(struct ctx *c, const struct node *at, const struct str *s,
			     struct args *a)
{
	struct tk_buf *o = cap_push(c);
	int next = 0;

	for (size_t i = 0; i < s->n; i++) {
		char ch = s->s[i];
		if ((ch == '{' || ch == '}') && i + 1 < s->n && s->s[i + 1] == ch) {
			out_put(c, o, &ch, 1);
			i++;
			continue;
		}
		if (ch == '}')
			err(c, TK_E_FORMAT, at, "Single '}' encountered in format string");
		if (ch != '{') {
			out_put(c, o, &ch, 1);
			continue;
		}
		size_t e = i + 1;
		while (e < s->n && s->s[e] != '}')
			e++;
		if (e >= s->n)
			err(c, TK_E_FORMAT, at, "Single '{' encountered in format string");
		char field[128];
		size_t fn = e - i - 1;
		if (fn >= sizeof(field) || memchr(s->s + i + 1, ':', fn) || memchr(s->s + i + 1, '!', fn) ||
		    memchr(s->s + i + 1, '.', fn) || memchr(s->s + i + 1, '[', fn) ||
		    memchr(s->s + i + 1, '{', fn))
			err(c, TK_E_UNSUPPORTED, at, "str.format with a format spec or conversion");
		memcpy(field, s->s + i + 1, fn);
		field[fn] = 0;
		struct val *v;
		if (!fn) {
			v = arg(a, next++, NULL);
		} else if (field[0] >= '0' && field[0] <= '9') {
			char *end;
			long k = strtol(field, &end, 10);
			v = *end ? NULL : arg(a, (int)k, NULL);
		} else {
			v = arg(a, -1, field);
		}
		if (!v)
			err(c, TK_E_FORMAT, at, "str.format: no argument for {%s}", field);
		to_str(c, v, o);
		i = e;
	}
	return cap_pop(c);
}

/* Methods of strings, dicts and the loop: x.name(args). */
static int call_method(struct ctx *c, const struct node *at, struct val *x, const char *name,
		       struct args *a, struct val *res)
{
	struct val *a0 = arg(a, 0, NULL), *a1 = arg(a, 1, NULL);
#define IS(nm) (!strcmp(name, nm))
	if (x->k == V_STR && x->safe) {
		/* Markup: these stay Markup; the others escape their arguments
		 * or items, which tk does not */
		if (IS("strip") || IS("lstrip") || IS("rstrip") || IS("upper") || IS("lower") ||
		    IS("title") || IS("capitalize")) {
			struct val plain = vstr(c, x->s->s, x->s->n);
			if (!call_method(c, at, &plain, name, a, res))
				return 0;
			res->safe = 1;
			return 1;
		}
		if (IS("replace") || IS("split") || IS("join") || IS("format") || IS("rsplit"))
			err(c, TK_E_UNSUPPORTED, at, "str.%s() of a Markup string", name);
	}
	if (x->k == V_STR) {
		const struct str *s = x->s;
		if (IS("strip") || IS("lstrip") || IS("rstrip")) {
			const struct str *ch = a0 && a0->k != V_NONE ? need_str(c, at, a0, "chars") : NULL;
			*res = strip(c, s, ch, !IS("rstrip"), !IS("lstrip"));
		} else if (IS("split")) {
			struct val *sep = arg(a, 0, "sep"), *mx = arg(a, 1, "maxsplit");
			const struct str *sp = sep && sep->k != V_NONE ? need_str(c, at, sep, "sep") : NULL;
			if (sp && !sp->n)
				err(c, TK_E_FORMAT, at, "empty separator");
			*res = split(c, s, sp, mx ? need_int(c, at, mx, "maxsplit") : -1);
		} else if (IS("startswith") || IS("endswith")) {
			if (!a0)
				err(c, TK_E_FORMAT, at, "%s needs an argument", name);
			int r = 0;
			if (a0->k == V_LIST) {
				for (int i = 0; i < a0->l->n && !r; i++) {
					const struct str *p = need_str(c, at, &a0->l->v[i], "a prefix");
					r = IS("startswith") ? starts_with(s, p) : ends_with(s, p);
				}
			} else {
				const struct str *p = need_str(c, at, a0, "the prefix");
				r = IS("startswith") ? starts_with(s, p) : ends_with(s, p);
			}
			*res = vbool(r);
		} else if (IS("upper") || IS("lower")) {
			int m = IS("upper") ? CASE_UPPER : CASE_LOWER;
			*res = map_case(c, s, m, m, 0);
		} else if (IS("title")) {
			*res = map_case(c, s, CASE_TITLE, CASE_LOWER, 1);
		} else if (IS("capitalize")) {
			*res = map_case(c, s, CASE_TITLE, CASE_LOWER, 0);
		} else if (IS("replace")) {
			if (!a0 || !a1)
				err(c, TK_E_FORMAT, at, "replace needs two arguments");
			struct val *n = arg(a, 2, "count");
			*res = replace(c, s, need_str(c, at, a0, "old"), need_str(c, at, a1, "new"),
				       n ? need_int(c, at, n, "count") : -1);
		} else if (IS("find") || IS("rfind") || IS("count")) {
			const struct str *p = need_str(c, at, a0 ? a0 : &NONE, "the substring");
			if (a1)
				err(c, TK_E_UNSUPPORTED, at, "%s with a start", name);
			const char *hit = NULL;
			long long k = 0;
			for (const char *q = s->s; (q = memmem_s(q, s->n - (size_t)(q - s->s), p->s,
								  p->n)) &&
						   q <= s->s + s->n;) {
				if (!hit || IS("rfind"))
					hit = q;
				k++;
				if (IS("find") || (!p->n && q == s->s + s->n))
					break;
				q += p->n ? p->n : 1;
			}
			*res = IS("count") ? vint(k)
					   : vint(hit ? (long long)cp_count(s->s, (size_t)(hit - s->s))
						      : -1);
		} else if (IS("join")) {
			struct list *l = iter_list(c, at, a0 ? a0 : &UNDEF);
			struct tk_buf *o = cap_push(c);
			for (int i = 0; i < l->n; i++) {
				if (i)
					out_put(c, o, s->s, s->n);
				out_put(c, o, need_str(c, at, &l->v[i], "a joined item")->s,
					l->v[i].s->n);
			}
			*res = cap_pop(c);
		} else if (IS("format")) {
			*res = str_format(c, at, s, a);
		} else if (IS("isdigit") || IS("isspace") || IS("isalpha") || IS("isalnum")) {
			int r = s->n > 0;
			for (size_t i = 0; i < s->n && r; i++) {
				unsigned char ch = (unsigned char)s->s[i];
				r = IS("isdigit") ? ch >= '0' && ch <= '9'
				  : IS("isspace") ? is_ws(ch)
				  : IS("isalpha") ? (ch | 32) >= 'a' && (ch | 32) <= 'z'
				  : ((ch | 32) >= 'a' && (ch | 32) <= 'z') || (ch >= '0' && ch <= '9');
				if (ch >= 0x80)
					err(c, TK_E_UNSUPPORTED, at, "str.%s on non-ASCII text", name);
			}
			*res = vbool(r);
		} else {
			return 0;
		}
		return 1;
	}
	if (x->k == V_DICT) {
		if (IS("get")) {
			if (!a0)
				err(c, TK_E_FORMAT, at, "get needs a key");
			struct val *v = dict_find(x->d, a0);
			*res = v ? *v : a1 ? *a1 : NONE;
		} else if (IS("items") || IS("keys") || IS("values")) {
			struct list *l = mklist(c, x->d->n);
			for (int i = 0; i < x->d->n; i++)
				list_push(c, l, IS("items") ? pair(c, x->d->k[i], x->d->v[i])
					      : IS("keys") ? x->d->k[i] : x->d->v[i]);
			*res = vlist(l);
		} else {
			return 0;
		}
		return 1;
	}
	if (x->k == V_LOOP && IS("cycle")) {
		if (!a->n)
			err(c, TK_E_FORMAT, at, "no items for cycling given");
		*res = a->v[x->lp->i % a->n];
		return 1;
	}
#undef IS
	return 0;
}

static struct val call(struct ctx *c, const struct node *n, struct frame *f)
{
	struct args a;
	if (n->a->t == E_ATTR) {
		struct val x = eval(c, n->a->a, f);
		if (x.k == V_UNDEF)
			undefined_error(c, n, &x);
		if (x.k == V_STR || x.k == V_DICT || x.k == V_LOOP) {
			struct val r;
			eval_args(c, n, f, NULL, &a);
			if (call_method(c, n, &x, n->a->s, &a, &r))
				return r;
			if (x.k != V_DICT)
				err(c, TK_E_UNSUPPORTED, n, "unsupported method %s.%s()", type_name(&x),
				    n->a->s);
		}
		if (x.k == V_LIST)
			err(c, TK_E_UNSUPPORTED, n, "list.%s() (the sandbox allows no list methods "
			    "that change a list, and tk has none of the others)", n->a->s);
	}
	struct val fn = eval(c, n->a, f);
	eval_args(c, n, f, NULL, &a);
	if (fn.k == V_MACRO)
		return call_macro(c, n, fn.m, &a);
	if (fn.k == V_FUNC)
		return call_global(c, n, (int)fn.i, &a);
	if (fn.k == V_UNDEF)
		undefined_error(c, n, &fn);
	err(c, TK_E_FORMAT, n, "'%s' object is not callable", type_name(&fn));
}

static int is_dict_method(const char *name)
{
	static const char *const m[] = { "items", "keys", "values", "get", "pop", "popitem",
					 "update", "copy", "clear", "setdefault", "fromkeys", NULL };
	for (int i = 0; m[i]; i++)
		if (!strcmp(m[i], name))
			return 1;
	return 0;
}

static struct val eval(struct ctx *c, const struct node *n, struct frame *f)
{
	struct val a, b, *p;
	c->line = n->line;
	switch (n->t) {
	case E_STR: return vstr(c, n->s, n->sn);
	case E_INT: return vint(n->i);
	case E_FLOAT: return vfloat(n->f);
	case E_TRUE: return vbool(1);
	case E_FALSE: return vbool(0);
	case E_NONE: return NONE;
	case E_NAME:
		p = frame_find(f, n->s);
		if (p)
			return *p;
		{
			char *nm = calloc_c(c, strlen(n->s) + 20);
			sprintf(nm, "'%s' is undefined", n->s);
			return (struct val){ .k = V_UNDEF, .name = nm };
		}
	case E_LIST:
	case E_TUPLE: {
		struct list *l = mklist(c, n->nv);
		for (int i = 0; i < n->nv; i++)
			list_push(c, l, eval(c, n->v[i], f));
		l->tuple = n->t == E_TUPLE;
		return vlist(l);
	}
	case E_DICT: {
		struct dict *d = mkdict(c);
		for (int i = 0; i < n->nv; i++) {
			struct val k = eval(c, n->v[i], f);
			dict_set(c, d, k, eval(c, n->w[i], f));
		}
		return (struct val){ .k = V_DICT, .d = d };
	}
	case E_ATTR:
		a = eval(c, n->a, f);
		if (a.k == V_UNDEF)
			undefined_error(c, n, &a);
		if (a.k == V_DICT && is_dict_method(n->s))
			/* jinja2 gives the bound method, whatever the keys */
			err(c, TK_E_UNSUPPORTED, n, "%s.%s without a call",
			    n->a->t == E_NAME ? n->a->s : "dict", n->s);
		return get_attr(c, n, &a, n->s);
	case E_ITEM:
		a = eval(c, n->a, f);
		b = eval(c, n->b, f);
		return get_item(c, n, &a, &b);
	case E_SLICE: {
		struct val lo, hi, st;
		a = eval(c, n->a, f);
		lo = n->b ? eval(c, n->b, f) : NONE;
		hi = n->c ? eval(c, n->c, f) : NONE;
		st = n->d ? eval(c, n->d, f) : NONE;
		return slice(c, n, &a, &lo, &hi, &st);
	}
	case E_CALL: return call(c, n, f);
	case E_FILTER: {
		struct args args;
		a = eval(c, n->a, f);
		eval_args(c, n, f, &a, &args);
		return call_filter(c, n, n->s, &args);
	}
	case E_TEST: {
		struct args args;
		a = eval(c, n->a, f);
		eval_args(c, n, f, &a, &args);
		int r = run_test(c, n, n->s, &args);
		return vbool(n->i ? !r : r);
	}
	case E_NOT: a = eval(c, n->a, f); return vbool(!truthy(&a));
	case E_NEG:
	case E_POS:
		a = eval(c, n->a, f);
		if ((a.k == V_INT || a.k == V_BOOL) && a.i == LLONG_MIN && n->t == E_NEG)
			err(c, TK_E_UNSUPPORTED, n, "an integer beyond 64 bits");
		if (a.k == V_INT || a.k == V_BOOL)
			return vint(n->t == E_NEG ? -a.i : a.i);
		if (a.k == V_FLOAT)
			return vfloat(n->t == E_NEG ? -a.f : a.f);
		if (a.k == V_UNDEF)
			undefined_error(c, n, &a);
		err(c, TK_E_FORMAT, n, "bad operand type for unary -: '%s'", type_name(&a));
	case E_BIN:
		a = eval(c, n->a, f);
		b = eval(c, n->b, f);
		return binary(c, n, (int)n->i, a, b);
	case E_AND:
		a = eval(c, n->a, f);
		return truthy(&a) ? eval(c, n->b, f) : a;
	case E_OR:
		a = eval(c, n->a, f);
		return truthy(&a) ? a : eval(c, n->b, f);
	case E_COND:
		a = eval(c, n->b, f);
		if (truthy(&a))
			return eval(c, n->a, f);
		return n->c ? eval(c, n->c, f) : UNDEF;
	}
	err(c, TK_E_FORMAT, n, "not an expression");
}

/* ---------------------------------------------------------------- statements */

static void assign(struct ctx *c, const struct node *n, struct frame *f, struct val v)
{
	if (n->nk == 1) {
		frame_set(c, f, n->kn[0], v);
		return;
	}
	struct list *l = iter_list(c, n, &v);
	if (l->n != n->nk)
		err(c, TK_E_FORMAT, n, "cannot unpack %d values into %d names", l->n, n->nk);
	for (int i = 0; i < n->nk; i++)
		frame_set(c, f, n->kn[i], l->v[i]);
}

static void exec_for(struct ctx *c, const struct node *n, struct frame *f)
{
	struct val it = eval(c, n->a, f);
	struct list *all = iter_list(c, n, &it), *items = all;
	if (n->b) {
		items = mklist(c, all->n);
		for (int i = 0; i < all->n; i++) {
			struct frame *g = frame_new(c, f);
			assign(c, n, g, all->v[i]);
			struct val cond = eval(c, n->b, g);
			if (truthy(&cond))
				list_push(c, items, all->v[i]);
		}
	}
	struct loop *lp = calloc_c(c, sizeof(*lp));
	lp->items = items;
	for (int i = 0; i < items->n; i++) {
		struct frame *g = frame_new(c, f);
		lp->i = i;
		frame_set(c, g, "loop", (struct val){ .k = V_LOOP, .lp = lp });
		assign(c, n, g, items->v[i]);
		exec(c, n->c, g);
		if (c->brk == 1) {
			c->brk = 0;
			break;
		}
		c->brk = 0;
	}
	if (!items->n && n->d)
		exec(c, n->d, f);
}

static void exec(struct ctx *c, const struct node *n, struct frame *f)
{
	struct val v;
	c->line = n->line;
	if (++c->steps > MAX_STEPS || c->out->len > MAX_TEXT)
		err(c, TK_E_UNSUPPORTED, n, "the template runs too long or writes too much");
	switch (n->t) {
	case S_BODY:
		for (int i = 0; i < n->nv && !c->brk; i++)
			exec(c, n->v[i], f);
		return;
	case S_TEXT: out_put(c, c->out, n->s, n->sn); return;
	case S_OUT:
		v = eval(c, n->a, f);
		to_str(c, &v, c->out);
		return;
	case S_IF:
		v = eval(c, n->a, f);
		if (truthy(&v))
			exec(c, n->b, f);
		else if (n->c)
			exec(c, n->c, f);
		return;
	case S_FOR: exec_for(c, n, f); return;
	case S_SET:
		if (n->a) {
			struct val ns = eval(c, n->a, f);
			if (ns.k != V_NS)
				err(c, TK_E_FORMAT, n, "cannot assign attribute on non-namespace object");
			dict_set(c, ns.d, vcstr(c, n->s), eval(c, n->b, f));
			return;
		}
		if (n->c) {
			struct tk_buf *saved = c->out;
			c->out = cap_push(c);
			exec(c, n->c, f);
			c->out = saved;
			v = cap_pop(c);
		} else {
			v = eval(c, n->b, f);
		}
		assign(c, n, f, v);
		return;
	case S_MACRO: {
		struct macro *m = calloc_c(c, sizeof(*m));
		m->def = n;
		m->env = f;
		frame_set(c, f, n->s, (struct val){ .k = V_MACRO, .m = m });
		return;
	}
	case S_CALL: {
		struct val fn = eval(c, n->a->a, f);
		struct args a;
		if (fn.k != V_MACRO || fn.m->def->t != S_MACRO)
			err(c, TK_E_FORMAT, n, "a call block needs a macro");
		struct macro *caller = calloc_c(c, sizeof(*caller));
		caller->def = n;
		caller->env = f;
		struct macro *m = calloc_c(c, sizeof(*m));
		*m = *fn.m;
		m->caller = (struct val){ .k = V_MACRO, .m = caller };
		eval_args(c, n->a, f, NULL, &a);
		v = call_macro(c, n, m, &a);
		out_put(c, c->out, v.s->s, v.s->n);
		return;
	}
	case S_GEN: {
		struct tk_buf *saved = c->out;
		c->out = cap_push(c);
		exec(c, n->c, f);
		c->out = saved;
		v = cap_pop(c);
		if (c->capspans == c->nspans) {
			int cap = c->capspans ? 2 * c->capspans : 16;
			size_t *s = realloc(c->spans, 2 * (size_t)cap * sizeof(*s));
			if (!s)
				err(c, TK_E_NOMEM, n, "out of memory");
			c->spans = s;
			c->capspans = cap;
		}
		/* as AssistantTracker: the output so far, plus the block's */
		size_t start = c->top->len - c->top_base;
		c->spans[2 * c->nspans] = start;
		c->spans[2 * c->nspans + 1] = start + v.s->n;
		c->nspans++;
		out_put(c, c->out, v.s->s, v.s->n);
		return;
	}
	case S_BREAK: c->brk = 1; return;
	case S_CONTINUE: c->brk = 2; return;
	case S_FILTER: {
		struct tk_buf *saved = c->out;
		c->out = cap_push(c);
		exec(c, n->c, f);
		c->out = saved;
		v = cap_pop(c);
		/* replace the placeholder at the bottom of the filter chain */
		const struct node *chain[16];
		int k = 0;
		for (const struct node *p = n->a; p->t == E_FILTER; p = p->a) {
			if (k == 16)
				err(c, TK_E_UNSUPPORTED, n, "too many filters on a filter block");
			chain[k++] = p;
		}
		while (k--) {
			struct args a;
			eval_args(c, chain[k], f, &v, &a);
			v = call_filter(c, chain[k], chain[k]->s, &a);
		}
		to_str(c, &v, c->out);
		return;
	}
	}
	err(c, TK_E_FORMAT, n, "not a statement");
}

int tk_jinja_render(const tk_jinja_t *t, const cJSON *vars, const struct tk_jinja_opts *o,
		    struct tk_buf *out, size_t **spans, int *n_spans, struct tk_diag *d)
{
	struct ctx *c = calloc(1, sizeof(*c));
	int rc = 0;

	if (spans)
		*spans = NULL;
	if (n_spans)
		*n_spans = 0;
	if (!c)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	c->top = c->out = out;
	c->top_base = out->len;
	c->o = o;
	if (setjmp(c->f.jb)) {
		if (c->f.err == TK_E_NOMEM)
			rc = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		else if (c->f.err == TK_E_INVAL)
			rc = tk_diag_set(d, TK_E_INVAL, NULL, -1, "%s", c->f.msg);
		else
			rc = tk_diag_set(d, c->f.err, NULL, -1, "chat template line %d: %s",
					 c->f.line, c->f.msg);
		if (c->f.err == TK_E_INVAL)
			d->line = c->f.line;
		goto done;
	}
	struct frame *g = frame_new(c, NULL);
	static const struct { const char *name; int fn; } globals[] = {
		{ "range", F_RANGE }, { "namespace", F_NAMESPACE },
		{ "raise_exception", F_RAISE }, { "strftime_now", F_STRFTIME },
		{ "dict", F_DICT },
	};
	for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++)
		frame_set(c, g, globals[i].name, (struct val){ .k = V_FUNC, .i = globals[i].fn });
	struct frame *top = frame_new(c, g);
	for (const cJSON *e = vars ? vars->child : NULL; e; e = e->next)
		frame_set(c, top, e->string, from_json(c, e));
	exec(c, t->root, top);
	if (tk_buf_append(out, "", 1))
		err(c, TK_E_NOMEM, NULL, "out of memory");
	out->len--;
	if (spans) {
		*spans = c->spans;
		c->spans = NULL;
	}
	if (n_spans)
		*n_spans = spans ? c->nspans : 0;
done:
	for (size_t i = 0; i < sizeof(c->caps) / sizeof(c->caps[0]); i++)
		tk_buf_free(&c->caps[i]);
	free(c->spans);
	arena_free(&c->a);
	free(c);
	return rc;
}

/* jinja.h - the Jinja2 subset that chat templates use (jinja.c), rendered
 * as transformers' apply_chat_template renders it.
 *
 * transformers compiles a chat template in an ImmutableSandboxedEnvironment
 * with trim_blocks and lstrip_blocks set, the loopcontrols extension
 * (break, continue), its {% generation %} tag, and the globals
 * raise_exception(msg), strftime_now(fmt), namespace() and a tojson filter
 * that is json.dumps(x, ensure_ascii=False).  tk does the same: the values
 * the template sees are Python's (None renders "None", True "True", 2.0
 * "2.0"), undefined names render empty as jinja2's default Undefined does,
 * and an attribute of an undefined value is an error.  A construct outside
 * the subset (see man/tk-chat-template.7) is an error naming the template
 * line, never a silently different text.
 */
#ifndef TK_JINJA_H
#define TK_JINJA_H

#include <stddef.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/tk.h"

typedef struct tk_jinja tk_jinja_t;

/* Compiles template src[0..len) into *t.  0, TK_E_FORMAT (a syntax
 * error: d says the line and what), TK_E_UNSUPPORTED (a tag or construct
 * outside the subset: d names it and its line) or TK_E_NOMEM.  Free with
 * tk_jinja_free. */
int tk_jinja_parse(tk_jinja_t **t, const char *src, size_t len, struct tk_diag *d);
void tk_jinja_free(tk_jinja_t *t);

/* Whether the template has a {% generation %} tag. */
int tk_jinja_has_generation(const tk_jinja_t *t);

struct tk_jinja_opts {
	int pin_now;  /* strftime_now formats `now` (as UTC) instead of the
			 clock (local time, as Python's datetime.now()) */
	time_t now;
};

/* Renders t with the members of object vars as its variables (JSON
 * numbers that are whole become Python ints, others floats) and appends
 * the text to out (NUL-terminated; out->len excludes the NUL).  When spans
 * is not NULL, *spans gets a malloc'd array of 2 *n_spans byte offsets
 * (from where the text starts in out): [start, end) of each
 * {% generation %} block's output, as transformers' AssistantTracker
 * records them (in bytes, where Python counts characters).  o may be NULL.
 * Returns 0, TK_E_INVAL when the template raised an error
 * (raise_exception: d's message is the template's), TK_E_FORMAT for an
 * error jinja2 raises too (an undefined value's attribute, a type error),
 * TK_E_UNSUPPORTED for a filter, test, method or global outside the
 * subset, or TK_E_NOMEM; d names the template line.  On error out keeps
 * what was rendered so far. */
int tk_jinja_render(const tk_jinja_t *t, const cJSON *vars, const struct tk_jinja_opts *o,
		    struct tk_buf *out, size_t **spans, int *n_spans, struct tk_diag *d);

#endif

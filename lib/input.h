/* input.h - training text from CSV, JSONL and plain-text files.
 *
 * Turns an input file into a sequence of examples, each a UTF-8 text with
 * an optional prompt prefix (for completion-only training the prompt's
 * tokens are left out of the loss).  CSV follows RFC 4180 (libcsv): a
 * header row names the columns; fields may be quoted and contain commas
 * and newlines.  JSONL is one JSON object per line (cJSON).  Plain text is
 * one document per file, or one per line with split_lines.
 */
#ifndef TK_INPUT_H
#define TK_INPUT_H

#include <stdio.h>

#include "tk.h"

enum tk_input_format { TK_INPUT_AUTO = 0, TK_INPUT_CSV, TK_INPUT_JSONL, TK_INPUT_TEXT };

struct tk_input_opts {
	enum tk_input_format format; /* AUTO: from the extension (.csv, .jsonl/.json, else text) */
	const char *column;     /* CSV: the text column */
	const char *field;      /* JSONL: the text field */
	const char *tmpl;       /* "Quote: {quote}\nAuthor: {author}" over columns/fields */
	const char *prompt;     /* column/field holding the prompt (with response) */
	const char *response;   /* column/field holding the response */
	int split_lines;        /* text: one document per non-empty line */
	int invalid_utf8_replace; /* replace invalid UTF-8 with U+FFFD instead of failing */
};

/* One example.  text is NUL-terminated UTF-8; prompt_len is the number of
 * leading bytes of text that form the prompt (0 when there is none).  line
 * is where the example starts in its file (1-based).  Pointers are valid
 * until the next tk_input_next call. */
struct tk_example {
	const char *text;
	size_t len;
	size_t prompt_len;
	long long line;
};

typedef struct tk_input tk_input_t;

/* Opens path ("-" is stdin, named "<stdin>" in messages).  For CSV, reads
 * the header and checks that the named columns exist: a missing one is
 * TK_E_INVAL with a message listing the columns that do exist. */
int tk_input_open(tk_input_t **in, const char *path, const struct tk_input_opts *o,
		  struct tk_diag *d);

/* Reads the next example: 1 when one was read, 0 at the end, or a negative
 * error naming the file and line (unterminated quote, bad JSON, missing
 * field, invalid UTF-8...). */
int tk_input_next(tk_input_t *in, struct tk_example *ex, struct tk_diag *d);

void tk_input_free(tk_input_t *in);

#endif

/* input.h - training text from CSV, JSONL and plain-text files.
 *
 * Turns an input file into a sequence of examples, each a UTF-8 text with
 * an optional prompt prefix (for completion-only training the prompt's
 * tokens are left out of the loss).  CSV follows RFC 4180 (libcsv): a
 * header row names the columns; fields may be quoted and contain commas
 * and newlines; the delimiter is a comma unless set (a tab for .tsv), and a
 * missing column whose header holds another usual delimiter gets the advice
 * to use it.  JSONL is one JSON object per line (cJSON), or, as datasets'
 * json loader also reads, a file holding one array of objects (what
 * Alpaca's data.json is): each record is read as a line would be, numbered
 * by the line where it starts, and its messages name it ("record 3: ...",
 * counting from 1).  A number or a boolean becomes the text Python's str()
 * makes of what json.loads reads (integers as written, floats as repr,
 * True).  Plain text is one document per file, or one per line with
 * split_lines.
 */
#ifndef TK_INPUT_H
#define TK_INPUT_H

#include <stdio.h>

#include "base/tk.h"

struct tk_chat;

enum tk_input_format { TK_INPUT_AUTO = 0, TK_INPUT_CSV, TK_INPUT_JSONL, TK_INPUT_TEXT };

struct tk_input_opts {
	enum tk_input_format format; /* AUTO: from the extension (.csv, .jsonl/.json, else text) */
	const char *column;     /* CSV: the text column */
	const char *field;      /* JSONL: the text field */
	const char *tmpl;       /* "Quote: {quote}\nAuthor: {author}" over columns/fields,
				   with the escapes of tk_tmpl_parse */
	const char *prompt;     /* column/field holding the prompt (with response) */
	const char *response;   /* column/field holding the response */
	const char *prompt_tmpl; /* instead of prompt: a template (as tmpl) whose
				    text is the prompt */
	const char *response_tmpl; /* instead of response: the same for the response */
	char delimiter;         /* CSV: the field separator; 0: ',' (a tab for .tsv) */
	const char *messages;   /* JSONL: the field holding a conversation, a list
				   of {"role", "content"}; with no text field named,
				   "messages" is taken when a line has it and no "text" */
	const struct tk_chat *chat; /* renders conversations (chat.h) */
	const char *no_chat_why; /* chat NULL: why, for the error a conversation gets */
	int chat_spans;         /* conversations get their assistant spans */
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
	int chat;               /* a conversation rendered with the chat template
				   (tk_chat_apply, no generation prompt) */
	const size_t *spans;    /* chat with chat_spans: n_spans [start, end) byte
				   ranges of text, the assistant turns' trained part */
	int n_spans;
};

typedef struct tk_input tk_input_t;

/* Opens path ("-" is stdin, named "<stdin>" in messages).  For CSV, reads
 * the header and checks that the named columns exist: a missing one is
 * TK_E_INVAL with a message listing the columns that do exist.  column and
 * field are synonyms (either works for both formats); each half of a
 * prompt/response pair is a column or a template (prompt_tmpl,
 * response_tmpl: the text is the prompt's rendering then the response's,
 * nothing between, and the prompt's bytes are prompt_len); giving more
 * than one of a column, a template and a prompt/response pair is TK_E_INVAL, and so
 * are columns or fields for plain text.  With none given, the text is the
 * column/field "text", else a "messages" conversation (JSONL), else
 * "prompt" + "completion" as a pair (TRL's names; in JSONL a pair of lists
 * of messages is one conversation, the prompt being what its own messages
 * render to with the generation prompt), else the only column;
 * otherwise TK_E_INVAL listing them.  A UTF-8
 * byte order mark at the start of a file is skipped in every format. */
int tk_input_open(tk_input_t **in, const char *path, const struct tk_input_opts *o,
		  struct tk_diag *d);

/* Reads the next example: 1 when one was read, 0 at the end, or a negative
 * error naming the file and line (unterminated quote, bad JSON, missing
 * field, invalid UTF-8...). */
int tk_input_next(tk_input_t *in, struct tk_example *ex, struct tk_diag *d);

void tk_input_free(tk_input_t *in);

/* Which format a path is read as under TK_INPUT_AUTO: .csv and .tsv are CSV,
 * .jsonl, .json and .ndjson are JSONL (case-insensitive), anything else,
 * "-" included, is text. */
enum tk_input_format tk_input_format_of(const char *path);

/* A parsed template: literal text and {NAME} references, in order.  The
 * source may write \n (newline), \t (tab), \\ (backslash), {{ and }}
 * (literal braces); {NAME} takes the value of column or field NAME. */
struct tk_tmpl_part {
	int name;               /* index into names, or -1 for literal text */
	size_t off, len;        /* literal: bytes of lit */
};

struct tk_tmpl {
	char *lit;              /* the literal text, escapes resolved */
	struct tk_tmpl_part *parts;
	size_t n_parts;
	char **names;           /* distinct names, in order of first use */
	size_t n_names;
};

/* Parses src into t (caller frees with tk_tmpl_free).  Unknown escapes, a
 * lone } or {, and {} are TK_E_INVAL with d->msg saying which and where
 * (byte offset in d->offset). */
int tk_tmpl_parse(struct tk_tmpl *t, const char *src, struct tk_diag *d);

/* Appends the template filled with vals[i]/lens[i] for names[i] to out. */
int tk_tmpl_render(const struct tk_tmpl *t, const char *const *vals,
		   const size_t *lens, struct tk_buf *out);

void tk_tmpl_free(struct tk_tmpl *t);

#endif

/* fuzz-input.c - CSV, JSONL and text readers on arbitrary bytes.  The first
 * byte picks the format and options (bits 0-1 the format, 2 invalid UTF-8
 * replaced, 3 split lines, 4-5 the text's choice, 6 a prompt template, 7
 * the delimiter ';'); the rest is the file.  Every example
 * must be valid UTF-8 with its prompt inside its text. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "text/input.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	char path[64];
	int fd = fuzz_memfile(data + 1, size - 1, "fuzz-input", path, sizeof(path));
	if (fd < 0)
		return 0;
	struct tk_input_opts o = { 0 };
	static const enum tk_input_format fmt[] = { TK_INPUT_CSV, TK_INPUT_JSONL, TK_INPUT_TEXT,
						    TK_INPUT_CSV };
	o.format = fmt[sel & 3];
	o.invalid_utf8_replace = (sel >> 2) & 1;
	o.split_lines = (sel >> 3) & 1;
	switch ((sel >> 4) & 3) {
	case 0: o.column = o.field = "text"; break;
	case 1: o.tmpl = "Q: {quote}\\nA: {author}"; break;
	case 2: o.prompt = "prompt"; o.response = "completion"; break;
	default: break; /* the defaults */
	}
	if ((sel >> 6) & 1) { /* the prompt from a template, with a pair or alone */
		o.prompt = NULL;
		o.prompt_tmpl = "Q: {prompt}\\n{{ok}}";
	}
	if ((sel >> 7) & 1)
		o.delimiter = ';';
	tk_input_t *in;
	struct tk_diag d;
	if (tk_input_open(&in, path, &o, &d) == 0) {
		struct tk_example ex;
		while (tk_input_next(in, &ex, &d) == 1) {
			if (ex.prompt_len > ex.len || ex.text[ex.len] != '\0')
				abort();
			if (tk_utf8_valid(ex.text, ex.len) != ex.len)
				abort();
		}
		tk_input_free(in);
	}
	close(fd);
	return 0;
}

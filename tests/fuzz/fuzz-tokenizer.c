/* fuzz-tokenizer.c - encoding arbitrary text with the GPT-2 tokenizer.
 * Byte-level BPE loses nothing, so decode(encode(text)) must give the text
 * back exactly, whatever it is (after invalid UTF-8 is repaired). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tk_tokenizer_t *tok;
static tk_encoder_t *enc;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tk_diag d;
	if (!tok) {
		const char *root = getenv("TK_ROOT");
		char path[4096];
		snprintf(path, sizeof(path), "%s/tests/fixtures/gpt2/tokenizer.json", root ? root : ".");
		if (tk_tokenizer_load(&tok, path, &d) || tk_encoder_new(tok, &enc)) {
			fprintf(stderr, "fuzz-tokenizer: %s: %s\n", path, d.msg);
			abort();
		}
	}
	struct tk_buf text = { 0 }, back = { 0 };
	struct tk_ids ids = { 0 };
	if (tk_utf8_repair((const char *)data, size, &text))
		abort();
	for (unsigned flags = 0; flags <= TK_ENCODE_ADD_SPECIAL; flags++) {
		ids.n = 0;
		back.len = 0;
		if (tk_encode(enc, text.data ? text.data : "", text.len, flags, &ids))
			abort();
		if (tk_decode(tok, ids.v, ids.n, 0, &back))
			abort();
		if (back.len != text.len || (text.len && memcmp(back.data, text.data, text.len)))
			abort(); /* byte-level BPE must round-trip */
	}
	tk_buf_free(&text);
	tk_buf_free(&back);
	tk_ids_free(&ids);
	return 0;
}

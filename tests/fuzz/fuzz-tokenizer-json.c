/* fuzz-tokenizer-json.c - loading arbitrary tokenizer.json files: either a
 * clean error or a tokenizer that encodes and decodes without crashing. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = fuzz_memfile(data, size, "tokenizer.json", path, sizeof(path));
	if (fd < 0)
		return 0;
	tk_tokenizer_t *t;
	struct tk_diag d;
	if (tk_tokenizer_load(&t, path, &d) == 0) {
		static const char text[] = "Hello  world\n\t<s> it's 1234 \xc3\xa9t\xc3\xa9 "
					   "\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\xa6\x99!";
		tk_encoder_t *e;
		if (tk_encoder_new(t, &e) == 0) {
			struct tk_ids ids = { 0 };
			struct tk_buf out = { 0 };
			if (tk_encode(e, text, sizeof(text) - 1, TK_ENCODE_ADD_SPECIAL, &ids) == 0) {
				for (size_t i = 0; i < ids.n; i++)
					if (ids.v[i] >= tk_tokenizer_vocab_size(t))
						abort();
				tk_decode(t, ids.v, ids.n, 1, &out);
			}
			tk_ids_free(&ids);
			tk_buf_free(&out);
			tk_encoder_free(e);
		}
		tk_tokenizer_free(t);
	}
	close(fd);
	return 0;
}

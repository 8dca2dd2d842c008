/* fuzz-gguf.c - opening arbitrary bytes as a GGUF file: either a clean
 * error or metadata and tensors that lie inside the file, agree with their
 * type and shape, and dequantize without a fault; a vocabulary in it either
 * fails cleanly or becomes a tokenizer that encodes a few strings. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "formats/gguf.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void tokenizer(const char *path)
{
	struct tk_diag d;
	tk_tokenizer_t *t;
	tk_encoder_t *e;
	if (tk_tokenizer_load(&t, path, &d))
		return;
	if (tk_encoder_new(t, &e) == 0) {
		static const char *const s[] = { "Hello world", " a  b\n\nc 123 ", "\xC3\xA9t\xC3\xA9!" };
		struct tk_ids ids = { 0 };
		for (size_t i = 0; i < 3; i++) {
			ids.n = 0;
			tk_encode(e, s[i], strlen(s[i]), TK_ENCODE_ADD_SPECIAL, &ids);
			for (size_t k = 0; k < ids.n; k++)
				if (ids.v[k] >= tk_tokenizer_vocab_size(t))
					abort();
		}
		tk_ids_free(&ids);
		tk_encoder_free(e);
	}
	tk_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = fuzz_memfile(data, size, "fuzz.gguf", path, sizeof(path));
	if (fd < 0)
		return 0;
	tk_gguf_t *g;
	struct tk_diag d;
	if (tk_gguf_open(&g, path, &d) == 0) {
		for (size_t i = 0; i < tk_gguf_kv_count(g); i++) {
			const struct tk_gguf_kv *kv = tk_gguf_kv_at(g, i);
			if (tk_gguf_find(g, kv->key) != kv)
				abort();
			if (kv->type == TK_GGUF_ARRAY && kv->arr_type == TK_GGUF_STRING)
				for (uint64_t k = 0; k < kv->n; k++)
					if (kv->strs[k].n > size)
						abort();
		}
		uint64_t total = 0;
		for (size_t i = 0; i < tk_gguf_tensor_count(g); i++) {
			const struct tk_gguf_tensor *t = tk_gguf_tensor_at(g, i);
			int bs = tk_ggml_block_size(t->type);
			if (!bs || t->nbytes != t->nelem / (uint64_t)bs * (uint64_t)tk_ggml_type_size(t->type) ||
			    tk_gguf_tensor_find(g, t->name) != t)
				abort();
			total += t->nbytes;
			if (total > size)
				abort(); /* tensors cannot hold more bytes than the file */
			float *f = malloc(t->nelem * sizeof(float) + 1);
			if (f) {
				tk_gguf_to_f32(g, t, f, &d);
				free(f);
			}
		}
		tk_gguf_close(g);
		tokenizer(path);
	}
	close(fd);
	return 0;
}

/* fuzz-safetensors.c - opening arbitrary bytes as a .safetensors file:
 * either a clean error or tensors that lie inside the file, agree with
 * their dtype and shape, and convert to fp32 without a fault.  Inputs that
 * start with '{' are also parsed as config.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "formats/config.h"
#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void config(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return;
	memcpy(s, data, size);
	s[size] = 0;
	struct tk_model_config c;
	struct tk_diag d;
	if (tk_config_parse(&c, s, "fuzz", &d) == 0) {
		if (c.hidden <= 0 || c.n_head <= 0 || c.n_kv_head <= 0 || c.head_dim <= 0 ||
		    c.n_head % c.n_kv_head || c.vocab_size <= 0 || c.n_layer <= 0)
			abort(); /* the parser must have refused this */
		(void)tk_config_n_params(&c);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size && data[0] == '{')
		config(data, size);
	char path[64];
	int fd = fuzz_memfile(data, size, "fuzz.safetensors", path, sizeof(path));
	if (fd < 0)
		return 0;
	tk_safetensors_t *st;
	struct tk_diag d;
	if (tk_safetensors_open(&st, path, &d) == 0) {
		uint64_t total = 0;
		for (size_t i = 0; i < tk_safetensors_count(st); i++) {
			const struct tk_tensor_info *t = tk_safetensors_at(st, i);
			if (t->nbytes != t->nelem * tk_dtype_size(t->dtype) || tk_safetensors_find(st, t->name) != t)
				abort();
			total += t->nbytes;
			if (total > size)
				abort(); /* tensors cannot hold more bytes than the file */
			float *f = malloc(t->nelem * sizeof(float) + 1);
			if (f) {
				tk_safetensors_to_f32(t, f, &d);
				free(f);
			}
		}
		tk_safetensors_close(st);
	}
	close(fd);
	return 0;
}

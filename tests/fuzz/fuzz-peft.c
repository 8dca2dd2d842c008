/* fuzz-peft.c - reading arbitrary bytes as a PEFT adapter_config.json:
 * either a clean error or a configuration whose values lie in the ranges
 * tk_peft_read_config promises (r > 0, alpha > 0, dropout in [0, 1),
 * counts within their arrays, names terminated). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];

static int terminated(const char *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[320];
	if (!dir[0]) {
		const char *base = getenv("TMPDIR");
		snprintf(dir, sizeof(dir), "%s/fuzz-peft-XXXXXX", base ? base : "/tmp");
		if (!mkdtemp(dir))
			abort();
	}
	snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
	FILE *f = fopen(path, "wb");
	if (!f)
		return 0;
	if (size && fwrite(data, 1, size, f) != size) {
		fclose(f);
		return 0;
	}
	fclose(f);
	struct tk_lora_config c;
	struct tk_diag d;
	if (tk_peft_read_config(dir, &c, &d) == 0) {
		if (c.r <= 0 || !(c.alpha > 0) || !(c.dropout >= 0 && c.dropout < 1) ||
		    c.n_targets < 0 || c.n_targets > TK_LORA_MAX_TARGETS ||
		    c.n_modules_to_save < 0 || c.n_modules_to_save > TK_LORA_MAX_TARGETS ||
		    !terminated(c.base_model, sizeof(c.base_model)))
			abort(); /* the reader must have refused this */
		for (int i = 0; i < c.n_targets; i++)
			if (!terminated(c.targets[i], sizeof(c.targets[i])))
				abort();
		for (int i = 0; i < c.n_modules_to_save; i++)
			if (!terminated(c.modules_to_save[i], sizeof(c.modules_to_save[i])))
				abort();
	} else if (!d.msg[0]) {
		abort(); /* an error without a message */
	}
	unlink(path);
	return 0;
}

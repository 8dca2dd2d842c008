/* hf-dir.c - see hf-dir.h. */
#include "formats/hf-dir.h"

#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "base/afile.h"
#include "base/path.h"

/* transformers' save_pretrained writes these next to the weights: the
 * tokenizer (fast and slow), the generation config, and the chat template,
 * which transformers >= 4.43 saves as chat_template.jinja (older versions
 * inside tokenizer_config.json, processors as chat_template.json). */
const char *const tk_hf_side_files[] = {
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
	"merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja",
	"generation_config.json", "chat_template.json", NULL,
};

int tk_hf_side_index(const char *name)
{
	for (int i = 0; tk_hf_side_files[i]; i++)
		if (!strcmp(tk_hf_side_files[i], name))
			return i;
	return -1;
}

unsigned tk_hf_side_present(const char *dir)
{
	char p[PATH_MAX];
	struct stat st;
	unsigned m = 0;
	for (int i = 0; tk_hf_side_files[i]; i++)
		if (!tk_path_join(p, sizeof(p), dir, tk_hf_side_files[i]) && !stat(p, &st) &&
		    S_ISREG(st.st_mode))
			m |= 1u << i;
	return m;
}

int tk_hf_copy_side_files(const char *src, const char *dst, unsigned want, struct tk_diag *d)
{
	char from[PATH_MAX], to[PATH_MAX];
	unsigned have = tk_hf_side_present(src) & want;
	for (int i = 0; tk_hf_side_files[i]; i++) {
		if (!(have & 1u << i))
			continue;
		if (tk_path_join(from, sizeof(from), src, tk_hf_side_files[i]) ||
		    tk_path_join(to, sizeof(to), dst, tk_hf_side_files[i]))
			return tk_diag_set(d, TK_E_INVAL, dst, -1, "path too long");
		int rc = tk_afile_copy(from, to, d);
		if (rc)
			return rc;
	}
	return 0;
}

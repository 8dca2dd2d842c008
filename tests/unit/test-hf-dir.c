/* test-hf-dir.c - the side files of a model directory (hf-dir.c): the
 * list, which a directory holds, and copying them. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/afile.h"
#include "formats/hf-dir.h"
#include "tt.h"

static char root[512];

static const char *at(const char *name)
{
	static char p[4][700];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", root, name);
	return p[k];
}

static void put(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
}

static unsigned bit(const char *name)
{
	int i = tk_hf_side_index(name);
	return i < 0 ? 0 : 1u << i;
}

static void test_list(void)
{
	static const char *const want[] = {
		"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
		"generation_config.json", "chat_template.jinja", "chat_template.json",
		"vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
	};
	int n = 0;
	while (tk_hf_side_files[n])
		n++;
	TT_CHECK(n == (int)(sizeof(want) / sizeof(want[0])), "%d side files", n);
	TT_CHECK(n < 32, "masks are 32 bits");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		TT_CHECK(tk_hf_side_index(want[i]) >= 0, "%s is a side file", want[i]);
	for (int i = 0; i < n; i++)
		TT_CHECK(tk_hf_side_index(tk_hf_side_files[i]) == i, "%s once",
			 tk_hf_side_files[i]);
	TT_CHECK(tk_hf_side_index("config.json") == -1, "config.json is not");
	TT_CHECK(tk_hf_side_index("model.safetensors") == -1, "weights are not");
}

static void test_present_and_copy(void)
{
	struct tk_diag d;
	struct tk_buf b = { 0 };
	mkdir(at("src"), 0755);
	mkdir(at("dst"), 0755);
	put(at("src/tokenizer.json"), "{\"tok\": 1}");
	put(at("src/chat_template.jinja"), "{{ messages }}");
	put(at("src/chat_template.json"), "{\"chat_template\": \"x\"}");
	put(at("src/config.json"), "{}");
	mkdir(at("src/vocab.json"), 0755); /* not a regular file: not there */
	TT_REQUIRE(symlink(at("src/tokenizer.json"), at("src/merges.txt")) == 0, "symlink");
	unsigned have = tk_hf_side_present(at("src"));
	TT_CHECK(have == (bit("tokenizer.json") | bit("chat_template.jinja") |
			  bit("chat_template.json") | bit("merges.txt")),
		 "present: %#x", have);
	TT_CHECK(tk_hf_side_present(at("missing")) == 0, "missing directory");

	put(at("dst/tokenizer.json"), "old"); /* replaced */
	TT_CHECK(tk_hf_copy_side_files(at("src"), at("dst"), TK_HF_SIDE_ALL & ~bit("merges.txt"),
				       &d) == 0, "copy: %s", d.msg);
	TT_CHECK(tk_hf_side_present(at("dst")) == (have & ~bit("merges.txt")), "copied: %#x",
		 tk_hf_side_present(at("dst")));
	TT_REQUIRE(tk_read_file(at("dst/tokenizer.json"), &b, &d) == 0, "read back");
	TT_CHECK(!strcmp(b.data, "{\"tok\": 1}"), "contents: %s", b.data);
	tk_buf_free(&b);
	struct stat st;
	TT_CHECK(stat(at("dst/config.json"), &st) != 0, "config.json is not copied");
	TT_CHECK(stat(at("dst/vocab.json"), &st) != 0, "a directory is not copied");
	TT_CHECK(tk_hf_copy_side_files(at("src"), at("dst/none"), bit("tokenizer.json"), &d) ==
		 TK_E_IO, "no destination directory");
	TT_CHECK(tk_hf_copy_side_files(at("src"), at("dst/none"), bit("vocab.json"), &d) == 0,
		 "nothing to copy");
}

int main(void)
{
	snprintf(root, sizeof(root), "%s", tt_tmpdir());
	TT_RUN(test_list);
	TT_RUN(test_present_and_copy);
	tk_afile_rmtree(root);
	return tt_done();
}

/* test-data.c - loading blocks for training, labels, epoch order. */
#include "train/data.h"
#include <sys/stat.h>

#include "base/afile.h"
#include "tt.h"

#define T 8
static const char fp_a[] = "0123456789abcdef";

/* Writes a blocks shard of n blocks whose ids are base + position, block b
 * masked at positions < b when masked is set. */
static void write_blocks(const char *path, const char *fp, int kind, int n, uint32_t base,
			 int masked)
{
	struct tk_shard_info info;
	tk_shard_info_init(&info, kind, fp, 1000);
	info.seq_len = kind == TK_SHARD_BLOCKS ? T : 0;
	FILE *f = fopen(path, "wb");
	tk_shard_writer_t *w;
	struct tk_diag d;
	if (tk_shard_writer_open(&w, f, path, &info, &d)) {
		fprintf(stderr, "%s\n", d.msg);
		exit(2);
	}
	for (int b = 0; b < n; b++) {
		uint32_t ids[T];
		uint8_t mask[T];
		for (int t = 0; t < T; t++) {
			ids[t] = base + (uint32_t)(b * T + t);
			mask[t] = t >= b;
		}
		struct tk_record r = { .ids = ids, .n = T, .mask = masked ? mask : NULL };
		tk_shard_write(w, &r, &d);
	}
	tk_shard_writer_close(w, &d);
	fclose(f);
}

static char dir[512];

static const char *path(const char *name)
{
	static char buf[4][600];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "%s/blocks", tt_tmpdir());
	mkdir(dir, 0755);
	write_blocks(path("train-00000.tks"), fp_a, TK_SHARD_BLOCKS, 3, 0, 0);
	write_blocks(path("train-00001.tks"), fp_a, TK_SHARD_BLOCKS, 4, 100, 1);
	write_blocks(path("eval-00000.tks"), fp_a, TK_SHARD_BLOCKS, 2, 500, 0);
}

static void test_load_and_labels(void)
{
	struct tk_data dt;
	struct tk_diag d;
	TT_REQUIRE(tk_data_load(&dt, dir, "train", 0, NULL, &d) == 0, "%s", d.msg);
	TT_CHECK(dt.n_blocks == 7 && dt.seq_len == T && dt.n_shards == 2, "%llu blocks",
		 (unsigned long long)dt.n_blocks);
	/* unmasked: 3*8; masked block b counts 8-b: 8+7+6+5 */
	TT_CHECK(dt.tokens_in_loss == 24 + 26, "in loss %llu", (unsigned long long)dt.tokens_in_loss);
	uint64_t *order;
	TT_REQUIRE(tk_data_order(&dt, 42, 0, 0, &order) == 0, "order");
	uint32_t ids[2 * T];
	int32_t labels[2 * T];
	tk_data_batch(&dt, order, 4, 2, ids, labels); /* blocks 4, 5 = second file's 1, 2 */
	TT_CHECK(ids[0] == 108 && labels[0] == -100 && labels[1] == 109, "block 4: %u %d %d",
		 ids[0], labels[0], labels[1]);
	TT_CHECK(labels[T] == -100 && labels[T + 1] == -100 && labels[T + 2] == 118, "block 5");
	tk_data_batch(&dt, order, 0, 1, ids, labels);
	TT_CHECK(labels[0] == 0 && labels[T - 1] == T - 1, "unmasked block");
	free(order);
	TT_CHECK(tk_data_check(&dt, dir, fp_a, 1000, &d) == 0, "%s", d.msg);
	int rc = tk_data_check(&dt, dir, "fedcba9876543210", 1000, &d);
	TT_CHECK(rc == TK_E_MISMATCH && strstr(d.msg, "fedcba9876543210") && strstr(d.msg, fp_a),
		 "%s", d.msg);
	rc = tk_data_check(&dt, dir, NULL, 50, &d);
	TT_CHECK(rc == TK_E_MISMATCH && strstr(d.msg, "beyond the model's vocabulary of 50"),
		 "%s", d.msg);
	tk_data_free(&dt);
	TT_REQUIRE(tk_data_load(&dt, dir, "eval", 1, NULL, &d) == 0, "%s", d.msg);
	TT_CHECK(dt.n_blocks == 2 && !dt.mask, "eval %llu", (unsigned long long)dt.n_blocks);
	tk_data_free(&dt);
}

static void test_order(void)
{
	struct tk_data dt;
	struct tk_diag d;
	TT_REQUIRE(tk_data_load(&dt, dir, "train", 0, NULL, &d) == 0, "%s", d.msg);
	uint64_t *a, *b, *c;
	tk_data_order(&dt, 42, 0, 1, &a);
	tk_data_order(&dt, 42, 0, 1, &b);
	tk_data_order(&dt, 42, 1, 1, &c);
	int seen[7] = { 0 }, same_ab = 1, same_ac = 1;
	for (int i = 0; i < 7; i++) {
		TT_CHECK(a[i] < 7 && !seen[a[i]]++, "not a permutation");
		same_ab &= a[i] == b[i];
		same_ac &= a[i] == c[i];
	}
	TT_CHECK(same_ab, "same seed and epoch, different order");
	TT_CHECK(!same_ac, "epochs 0 and 1 in the same order");
	free(a);
	free(b);
	free(c);
	tk_data_free(&dt);
}

static void test_errors(void)
{
	struct tk_data dt;
	struct tk_diag d;
	int rc = tk_data_load(&dt, dir, "test", 0, NULL, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "no test-*.tks"), "%d %s", rc, d.msg);
	write_blocks(path("docs.tks"), fp_a, TK_SHARD_DOCUMENTS, 2, 0, 0);
	rc = tk_data_load(&dt, path("docs.tks"), "train", 0, NULL, &d);
	TT_CHECK(rc == TK_E_MISMATCH && strstr(d.msg, "run tk-pack first"), "%d %s", rc, d.msg);
	write_blocks(path("train-00002.tks"), "1111111111111111", TK_SHARD_BLOCKS, 1, 0, 0);
	rc = tk_data_load(&dt, dir, "train", 0, NULL, &d);
	TT_CHECK(rc == TK_E_MISMATCH && strstr(d.path, "train-00002.tks") &&
			 strstr(d.msg, "do not go with"), "%d %s: %s", rc, d.path, d.msg);
	remove(path("train-00002.tks"));
	rc = tk_data_load(&dt, path("missing"), "train", 0, NULL, &d);
	TT_CHECK(rc == TK_E_IO, "%d", rc);
}

/* The split --eval-data reads: eval-*.tks when a directory has them, else
 * its train-*.tks; a file is read whatever its name. */
static void test_eval_split(void)
{
	char d1[512], d2[512], f[600];
	snprintf(d1, sizeof(d1), "%s/only-train", tt_tmpdir());
	snprintf(d2, sizeof(d2), "%s/with-eval", tt_tmpdir());
	mkdir(d1, 0777);
	mkdir(d2, 0777);
	snprintf(f, sizeof(f), "%s/train-00000.tks", d1);
	write_blocks(f, fp_a, TK_SHARD_BLOCKS, 2, 0, 0);
	snprintf(f, sizeof(f), "%s/eval-00000.tks", d2);
	write_blocks(f, fp_a, TK_SHARD_BLOCKS, 1, 0, 0);
	TT_CHECK(!strcmp(tk_data_eval_split(d1), "train"), "only train: %s", tk_data_eval_split(d1));
	TT_CHECK(!strcmp(tk_data_eval_split(d2), "eval"), "with eval: %s", tk_data_eval_split(d2));
	TT_CHECK(!strcmp(tk_data_eval_split(f), "train"), "a file");
	struct tk_data dt;
	struct tk_diag d;
	TT_CHECK(tk_data_load(&dt, d1, tk_data_eval_split(d1), 0, NULL, &d) == 0 && dt.n_blocks == 2,
		 "%s", d.msg);
	tk_data_free(&dt);
}

/* An --init config without vocab_size takes the tokenizer's length; one
 * with it keeps its own. */
static void test_init_vocab(void)
{
	char cfg[512];
	snprintf(cfg, sizeof(cfg), "%s/init.json", tt_tmpdir());
	FILE *fp = fopen(cfg, "w");
	TT_REQUIRE(fp, "fopen");
	fputs("{\"model_type\": \"llama\", \"hidden_size\": 16, \"num_hidden_layers\": 1, "
	      "\"num_attention_heads\": 2, \"intermediate_size\": 32}", fp);
	fclose(fp);
	struct tk_model_config c;
	struct tk_diag d;
	int taken = -1;
	TT_REQUIRE(tk_config_load(&c, cfg, &d) == 0, "%s", d.msg);
	TT_CHECK(c.vocab_size == 32000, "the family's default: %d", c.vocab_size);
	int rc = tk_data_init_vocab(&c, cfg, tt_fixture("gpt2"), &taken, &d);
	TT_CHECK(rc == 0 && taken == 1 && c.vocab_size == 50257, "rc %d taken %d vocab %d %s", rc,
		 taken, c.vocab_size, d.msg);
	c.vocab_size = 32000;
	rc = tk_data_init_vocab(&c, cfg, NULL, &taken, &d);
	TT_CHECK(rc == 0 && taken == 0 && c.vocab_size == 32000, "no tokenizer: %d", c.vocab_size);
	char model[4096];
	snprintf(model, sizeof(model), "%s", tt_fixture("train/model")); /* one static buffer */
	rc = tk_data_init_vocab(&c, model, tt_fixture("gpt2"), &taken, &d);
	TT_CHECK(rc == 0 && taken == 0 && c.vocab_size == 32000, "given: rc %d taken %d", rc, taken);
	rc = tk_data_init_vocab(&c, cfg, tt_fixture("input/notjson.jsonl"), &taken, &d);
	TT_CHECK(rc == TK_E_FORMAT, "a bad tokenizer: rc %d", rc);
}

int main(void)
{
	setup();
	TT_RUN(test_load_and_labels);
	TT_RUN(test_order);
	TT_RUN(test_errors);
	TT_RUN(test_eval_split);
	TT_RUN(test_init_vocab);
	tk_afile_rmtree(tt_tmpdir());
	return tt_done();
}

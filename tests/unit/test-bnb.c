/* test-bnb.c - bitsandbytes-quantized model directories (lib/formats/bnb.c) and
 * tk_qweight_rows (lib/base/quant.c) against transformers + bitsandbytes.
 *
 * Fixtures: tests/fixtures/bnb/, written by tests/parity/gen-bnb-fixtures.py
 * (directories saved by transformers' save_pretrained after quantizing the
 * tiny models of tests/fixtures/models/, a file of weights quantized at
 * other block sizes, and bitsandbytes' dequantizations in ref.safetensors).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/afile.h"
#include "formats/bnb.h"
#include "tt.h"

static char *fix(const char *rel)
{
	return strdup(tt_fixture(rel));
}

static void test_config_read(void)
{
	struct tk_bnb_config c;
	struct tk_diag d;
	char *p = fix("bnb/llama-nf4-dq");

	TT_REQUIRE(!tk_bnb_config_read(p, &c, &d), "%s", d.msg);
	TT_CHECK(c.bits == 4 && c.type == TK_Q4_NF4 && c.double_quant && c.blocksize == 64,
		 "bits %d type %d dq %d", c.bits, c.type, c.double_quant);
	TT_CHECK(!strcmp(c.compute_dtype, "bfloat16"), "%s", c.compute_dtype);
	free(p);
	p = fix("bnb/gpt2-fp4/config.json");
	TT_REQUIRE(!tk_bnb_config_read(p, &c, &d), "%s", d.msg);
	TT_CHECK(c.bits == 4 && c.type == TK_Q4_FP4 && !c.double_quant, "bits %d", c.bits);
	free(p);
	p = fix("bnb/llama-int8");
	TT_REQUIRE(!tk_bnb_config_read(p, &c, &d), "%s", d.msg);
	TT_CHECK(c.bits == 8, "bits %d", c.bits);
	free(p);
	p = fix("models/llama");
	TT_REQUIRE(!tk_bnb_config_read(p, &c, &d), "%s", d.msg);
	TT_CHECK(c.bits == 0, "bits %d", c.bits);
	free(p);

	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gptq-config.json", tt_tmpdir());
	f = fopen(path, "w");
	TT_REQUIRE(f, "cannot write %s", path);
	fputs("{\"model_type\": \"llama\", \"quantization_config\": {\"quant_method\": \"gptq\", "
	      "\"bits\": 4}}", f);
	fclose(f);
	TT_CHECK(tk_bnb_config_read(path, &c, &d) == TK_E_UNSUPPORTED && strstr(d.msg, "gptq"),
		 "%s", d.msg);
	TT_CHECK(tk_bnb_config_read("/nonexistent/dir", &c, &d) == TK_E_IO, "io");
}

/* Which file each reference dequantization comes from. */
static const struct {
	const char *file, *name;
} cases[] = {
	{ "bnb/llama-nf4-dq", "model.layers.0.self_attn.k_proj.weight" },
	{ "bnb/llama-nf4-dq", "model.layers.1.mlp.down_proj.weight" },
	{ "bnb/gpt2-fp4", "transformer.h.0.attn.c_attn.weight" },
	{ "bnb/llama-int8", "model.layers.0.self_attn.q_proj.weight" },
	{ "bnb/llama-int8", "model.layers.1.mlp.up_proj.weight" },
	{ "bnb/custom.safetensors", "a.weight" },
	{ "bnb/custom.safetensors", "b.weight" },
	{ "bnb/custom.safetensors", "c.weight" },
	{ "bnb/custom.safetensors", "d.weight" },
};

static void test_read_dequant(void)
{
	struct tk_diag d;
	tk_safetensors_t *ref = NULL;
	char *rp = fix("bnb/ref.safetensors");

	TT_REQUIRE(!tk_safetensors_open(&ref, rp, &d), "%s", d.msg);
	free(rp);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char key[256], *p = fix(cases[i].file);
		tk_safetensors_t *st = NULL;
		const struct tk_tensor_info *r;
		struct tk_qweight q;
		float *out;
		int64_t rows, cols;

		snprintf(key, sizeof(key), "deq.%s", cases[i].name);
		r = tk_safetensors_find(ref, key);
		TT_CHECK(r && r->ndim == 2 && r->dtype == TK_DT_F32, "%s missing", key);
		if (!r || tk_safetensors_open(&st, p, &d)) {
			TT_CHECK(0, "%s: %s", p, d.msg);
			free(p);
			continue;
		}
		free(p);
		rows = r->shape[0];
		cols = r->shape[1];
		if (tk_bnb_read_weight(st, cases[i].name, rows, cols, &q, &d)) {
			TT_CHECK(0, "%s: %s", cases[i].name, d.msg);
			tk_safetensors_close(st);
			continue;
		}
		tk_safetensors_close(st); /* q owns copies */
		out = malloc((size_t)rows * cols * sizeof(float));
		TT_CHECK(!tk_qweight_rows(&q, 0, rows, out, &d), "%s", d.msg);
		TT_CHECK(!memcmp(out, r->data, r->nbytes), "%s: whole matrix differs", cases[i].name);
		/* slices that start and end inside blocks and bytes */
		for (int64_t r0 = 0; r0 < rows; r0 += 1 + r0 % 5) {
			int64_t n = (r0 * 7) % (rows - r0) + 1;

			memset(out, 0xff, (size_t)n * cols * sizeof(float));
			TT_CHECK(!tk_qweight_rows(&q, r0, n, out, &d), "%s", d.msg);
			TT_CHECK(!memcmp(out, (const float *)r->data + r0 * cols,
					 (size_t)n * cols * sizeof(float)),
				 "%s: rows %lld+%lld differ", cases[i].name, (long long)r0,
				 (long long)n);
		}
		TT_CHECK(tk_qweight_rows(&q, rows - 1, 2, out, &d) == TK_E_INVAL, "range");
		TT_CHECK(tk_qweight_rows(&q, -1, 1, out, &d) == TK_E_INVAL, "range");
		TT_CHECK(tk_qweight_bytes(&q) > 0 &&
			 tk_qweight_bytes(&q) < (size_t)rows * cols * 2, "bytes %zu",
			 tk_qweight_bytes(&q));
		free(out);
		tk_qweight_free(&q);
		TT_CHECK(!q.data && !q.rows, "free zeroes");
	}
	tk_safetensors_close(ref);
}

/* Writes path with every tensor of src except `drop`. */
static int copy_without(const char *src, const char *path, const char *drop)
{
	tk_safetensors_t *st;
	tk_safetensors_writer_t *w;
	struct tk_diag d;

	if (tk_safetensors_open(&st, src, &d) || tk_safetensors_writer_new(&w))
		return -1;
	for (size_t i = 0; i < tk_safetensors_count(st); i++) {
		const struct tk_tensor_info *t = tk_safetensors_at(st, i);

		if (!strcmp(t->name, drop))
			continue;
		if (tk_safetensors_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &d))
			return -1;
	}
	int rc = tk_safetensors_writer_commit(w, path, 1, &d);

	tk_safetensors_close(st);
	return rc;
}

static void test_read_errors(void)
{
	static const char *const drops[] = {
		"a.weight.quant_state.bitsandbytes__nf4", "a.weight.absmax",
		"a.weight.nested_absmax", "a.weight.quant_map",
	};
	char *src = fix("bnb/custom.safetensors"), path[512];
	struct tk_diag d;
	struct tk_qweight q;
	tk_safetensors_t *st;

	snprintf(path, sizeof(path), "%s/broken.safetensors", tt_tmpdir());
	for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++) {
		TT_REQUIRE(!copy_without(src, path, drops[i]), "copy");
		TT_REQUIRE(!tk_safetensors_open(&st, path, &d), "%s", d.msg);
		TT_CHECK(tk_bnb_read_weight(st, "a.weight", 33, 31, &q, &d) == TK_E_FORMAT &&
			 strstr(d.msg, drops[i]) && strstr(d.msg, "missing"), "%s: %s", drops[i],
			 d.msg);
		TT_CHECK(!q.data, "nothing kept");
		tk_safetensors_close(st);
	}
	TT_REQUIRE(!tk_safetensors_open(&st, src, &d), "%s", d.msg);
	TT_CHECK(tk_bnb_read_weight(st, "a.weight", 31, 33, &q, &d) == TK_E_FORMAT &&
		 strstr(d.msg, "[31, 33]") && strstr(d.msg, "[33, 31]"), "%s", d.msg);
	TT_CHECK(tk_bnb_read_weight(st, "a.weight.quant_map", 4, 4, &q, &d) == TK_E_FORMAT &&
		 strstr(d.msg, "F32"), "%s", d.msg);
	TT_CHECK(tk_bnb_read_weight(st, "z.weight", 4, 4, &q, &d) == TK_E_FORMAT &&
		 strstr(d.msg, "z.weight"), "%s", d.msg);
	tk_safetensors_close(st);
	free(src);
	/* int8 without its SCB */
	src = fix("bnb/llama-int8");
	TT_REQUIRE(!copy_without(src, path, "model.layers.0.self_attn.q_proj.SCB"), "copy");
	TT_REQUIRE(!tk_safetensors_open(&st, path, &d), "%s", d.msg);
	TT_CHECK(tk_bnb_read_weight(st, "model.layers.0.self_attn.q_proj.weight", 48, 48, &q,
				    &d) == TK_E_FORMAT && strstr(d.msg, "q_proj.SCB"), "%s", d.msg);
	tk_safetensors_close(st);
	free(src);
}

static int same_file(const char *a, const char *b)
{
	struct tk_buf x = { 0 }, y = { 0 };
	int same = !tk_read_file(a, &x, NULL) && !tk_read_file(b, &y, NULL) && x.len == y.len &&
		   !memcmp(x.data, y.data, x.len);

	tk_buf_free(&x);
	tk_buf_free(&y);
	return same;
}

static void check_dir(const char *model, const char *want, const struct tk_bnb_opts *o)
{
	static const char *const files[] = { "model.safetensors", "config.json",
					     "generation_config.json" };
	char out[512], a[600], *in = fix(model), *ref = fix(want);
	struct tk_diag d;

	snprintf(out, sizeof(out), "%s/q-%s", tt_tmpdir(), strrchr(want, '/') + 1);
	TT_REQUIRE(!tk_bnb_quantize_dir(in, out, o, 0, &d), "%s: %s", model, d.msg);
	for (size_t i = 0; i < 3; i++) {
		char b[600];

		snprintf(a, sizeof(a), "%s/%s", out, files[i]);
		snprintf(b, sizeof(b), "%s/%s", ref, files[i]);
		TT_CHECK(same_file(a, b), "%s differs from %s", a, b);
	}
	TT_CHECK(tk_bnb_quantize_dir(in, out, o, 0, &d) == TK_E_EXISTS, "exists");
	TT_CHECK(!tk_bnb_quantize_dir(in, out, o, 1, &d), "force: %s", d.msg);
	/* quantizing the output again is refused */
	snprintf(a, sizeof(a), "%s-again", out);
	TT_CHECK(tk_bnb_quantize_dir(out, a, o, 0, &d) == TK_E_INVAL &&
		 strstr(d.msg, "already quantized"), "%s", d.msg);
	struct stat sb;

	TT_CHECK(stat(a, &sb) != 0, "%s exists after a failure", a);
	free(in);
	free(ref);
}

static void test_quantize_dir(void)
{
	struct tk_bnb_opts o = { .bits = 4, .type = TK_Q4_NF4, .double_quant = 1,
				 .blocksize = 64, .compute_dtype = "bfloat16",
				 .torch_threads = 1 };

	check_dir("models/llama", "bnb/llama-nf4-dq", &o);
	o = (struct tk_bnb_opts){ .bits = 4, .type = TK_Q4_FP4, .blocksize = 64,
				  .compute_dtype = "float32", .torch_threads = 1 };
	check_dir("models/gpt2", "bnb/gpt2-fp4", &o);
	o = (struct tk_bnb_opts){ .bits = 8, .type = TK_Q4_FP4, .blocksize = 64,
				  .torch_threads = 1 };
	check_dir("models/llama", "bnb/llama-int8", &o);
}

static void test_quantize_bad_opts(void)
{
	struct tk_bnb_opts o = { .bits = 4, .type = TK_Q4_NF4, .blocksize = 48 };
	struct tk_diag d;
	char out[512], *in = fix("models/llama");

	snprintf(out, sizeof(out), "%s/bad-opts", tt_tmpdir());
	TT_CHECK(tk_bnb_quantize_dir(in, out, &o, 0, &d) == TK_E_INVAL &&
		 strstr(d.msg, "blocksize 48"), "%s", d.msg);
	o.blocksize = 64;
	o.bits = 3;
	TT_CHECK(tk_bnb_quantize_dir(in, out, &o, 0, &d) == TK_E_INVAL, "bits");
	o.bits = 4;
	strcpy(o.compute_dtype, "float64");
	TT_CHECK(tk_bnb_quantize_dir(in, out, &o, 0, &d) == TK_E_INVAL &&
		 strstr(d.msg, "float64"), "%s", d.msg);
	struct stat sb;

	TT_CHECK(stat(out, &sb) != 0, "output written");
	free(in);
}

int main(void)
{
	TT_RUN(test_config_read);
	TT_RUN(test_read_dequant);
	TT_RUN(test_read_errors);
	TT_RUN(test_quantize_dir);
	TT_RUN(test_quantize_bad_opts);
	tk_afile_rmtree(tt_tmpdir());
	return tt_done();
}

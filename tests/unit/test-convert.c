/* test-convert.c - GGUF import (lib/convert.c).
 *
 * tests/fixtures/convert/{llama,gpt2}.gguf are the fixture models of
 * tests/fixtures/models/ written as llama.cpp's converter writes them
 * (tests/parity/gen-convert-fixtures.py: permuted q/k rows, transposed
 * Conv1D weights, BF16/F16 matrices).  Importing them must give back the
 * original models: the same config, the same weights bit for bit (BF16 and
 * F16 values are exact in fp32) and so the same logits, which are also
 * checked against what transformers computed (NAME.ref.safetensors).
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "afile.h"
#include "backend.h"
#include "convert.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "tt.h"

#define TOL_LOGITS 1e-5 /* converted vs original model (both fp32 on tk) */
#define TOL_REF 2e-5    /* vs transformers, as test-model.c */

static struct tk_backend be;
static char tmpdir[] = "/tmp/tk-test-convert-XXXXXX";

static const char *tmp(const char *name)
{
	static char buf[4][4096];
	static int k;
	char *p = buf[k++ & 3];
	snprintf(p, 4096, "%s/%s", tmpdir, name);
	return p;
}

static int convert(const char *gguf, const char *out, enum tk_dtype dt, int force,
		   struct tk_diag *d)
{
	char in[4096];
	snprintf(in, sizeof(in), "%s", tt_fixture(gguf));
	struct tk_convert_opts o = { .input = in, .output = out, .outtype = dt, .force = force };
	struct tk_convert_result r;
	return tk_convert_gguf(&o, &r, d);
}

/* Entries of tmpdir other than keep (NULL: none): a failed conversion
 * must leave no output and no temporary behind. */
static int stray_entries(const char *keep)
{
	DIR *dp = opendir(tmpdir);
	struct dirent *e;
	int n = 0;
	while (dp && (e = readdir(dp)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    (!keep || strcmp(e->d_name, keep)))
			n++;
	if (dp)
		closedir(dp);
	return n;
}

/* Loads the converted model and the original, compares config, weights
 * and logits on the reference inputs. */
static void same_model(const char *name, const char *dir, int exact)
{
	struct tk_diag d;
	struct tk_model a = { 0 }, b = { 0 };
	tk_st_t *ref = NULL;
	float *la = NULL, *lb = NULL, *lr = NULL;
	char orig[4096], refp[4096];
	snprintf(orig, sizeof(orig), "%s/%s", tt_fixture("models"), name);
	snprintf(refp, sizeof(refp), "%s/%s.ref.safetensors", tt_fixture("models"), name);
	int rc = tk_model_load(&a, dir, &be, &d);
	TT_REQUIRE(!rc, "%s: converted model does not load: %s", name, d.msg);
	TT_REQUIRE(!tk_model_load(&b, orig, &be, &d), "%s", d.msg);
	TT_REQUIRE(!tk_st_open(&ref, refp, &d), "%s", d.msg);

	const struct tk_model_config *x = &a.cfg, *y = &b.cfg;
	TT_CHECK(x->arch == y->arch && x->vocab_size == y->vocab_size && x->hidden == y->hidden &&
		 x->n_layer == y->n_layer && x->n_head == y->n_head &&
		 x->n_kv_head == y->n_kv_head && x->head_dim == y->head_dim &&
		 x->intermediate == y->intermediate && x->max_pos == y->max_pos &&
		 x->norm == y->norm && x->pos == y->pos && x->mlp == y->mlp &&
		 x->attn_bias == y->attn_bias && x->attn_out_bias == y->attn_out_bias &&
		 x->mlp_bias == y->mlp_bias && x->tie_embeddings == y->tie_embeddings &&
		 x->bos_id == y->bos_id && x->eos_id == y->eos_id && x->pad_id == y->pad_id,
		 "%s: configs differ", name);
	TT_CHECK(x->norm_eps == y->norm_eps && x->rope_theta == y->rope_theta,
		 "%s: eps %g/%g theta %g/%g", name, x->norm_eps, y->norm_eps, x->rope_theta,
		 y->rope_theta);
	TT_CHECK(a.n_tensors == b.n_tensors, "%s: %d tensors, original %d", name, a.n_tensors,
		 b.n_tensors);
	for (int i = 0; i < b.n_tensors; i++) {
		const struct tk_model_tensor *tb = &b.tensors[i];
		const struct tk_model_tensor *ta = tk_model_find(&a, tb->name);
		TT_REQUIRE(ta && ta->n == tb->n, "%s: tensor %s missing or resized", name,
			   tb->name);
		if (exact)
			TT_CHECK(!memcmp(a.params + ta->off, b.params + tb->off, ta->n * sizeof(float)),
				 "%s: %s differs", name, tb->name);
	}

	const struct tk_tensor_info *ti = tk_st_find(ref, "input_ids");
	TT_REQUIRE(ti && ti->dtype == TK_DT_I32 && ti->ndim == 2, "no input_ids");
	int B = (int)ti->shape[0], T = (int)ti->shape[1], V = y->vocab_size;
	size_t n = (size_t)B * T * V;
	uint32_t ids[256];
	TT_REQUIRE(ti->nelem <= 256, "input too long");
	for (size_t i = 0; i < ti->nelem; i++)
		ids[i] = (uint32_t)((const int32_t *)ti->data)[i];
	la = malloc(n * sizeof(float));
	lb = malloc(n * sizeof(float));
	lr = malloc(n * sizeof(float));
	TT_REQUIRE(la && lb && lr, "out of memory");
	TT_REQUIRE(!tk_model_forward(&a, ids, NULL, B, T, 0, 0, NULL, &d) &&
		   !tk_model_logits(&a, 0, B * T, la, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_forward(&b, ids, NULL, B, T, 0, 0, NULL, &d) &&
		   !tk_model_logits(&b, 0, B * T, lb, &d), "%s", d.msg);
	const struct tk_tensor_info *tr = tk_st_find(ref, "logits");
	TT_REQUIRE(tr && tr->nelem == n && !tk_st_to_f32(tr, lr, &d), "no reference logits");
	double worst = 0, worst_ref = 0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)la[i] - lb[i]), er = fabs((double)la[i] - lr[i]);
		worst = isnan(e) || e > worst ? (isnan(e) ? INFINITY : e) : worst;
		worst_ref = isnan(er) || er > worst_ref ? (isnan(er) ? INFINITY : er) : worst_ref;
	}
	TT_CHECK(worst <= TOL_LOGITS, "%s: logits differ from the original's by %g", name, worst);
	TT_CHECK(worst_ref <= TOL_REF, "%s: logits differ from transformers' by %g", name,
		 worst_ref);
	printf("info %s: converted vs original logits max abs err %.3g, vs transformers %.3g\n",
	       name, worst, worst_ref);
	free(la);
	free(lb);
	free(lr);
	tk_st_close(ref);
	tk_model_free(&a);
	tk_model_free(&b);
}

/* The dtype every tensor of DIR/model.safetensors has, -1 when mixed. */
static int file_dtype(const char *dir)
{
	tk_st_t *st;
	int dt = -2;
	if (tk_st_open(&st, dir, NULL))
		return -3;
	for (size_t i = 0; i < tk_st_count(st); i++) {
		int t = (int)tk_st_at(st, i)->dtype;
		dt = dt == -2 || dt == t ? t : -1;
	}
	tk_st_close(st);
	return dt;
}

static void test_llama(void)
{
	struct tk_diag d;
	const char *out = tmp("llama");
	int rc = convert("convert/llama.gguf", out, TK_DT_F32, 0, &d);
	TT_REQUIRE(!rc, "%s", d.msg);
	TT_CHECK(file_dtype(out) == TK_DT_F32, "dtype %d", file_dtype(out));
	same_model("llama", out, 1);
	tk_rmtree(out);
}

static void test_gpt2(void)
{
	struct tk_diag d;
	const char *out = tmp("gpt2");
	int rc = convert("convert/gpt2.gguf", out, TK_DT_F32, 0, &d);
	TT_REQUIRE(!rc, "%s", d.msg);
	tk_st_t *st;
	TT_REQUIRE(!tk_st_open(&st, out, &d), "%s", d.msg);
	const struct tk_tensor_info *t = tk_st_find(st, "transformer.h.0.attn.c_attn.weight");
	TT_CHECK(t && t->ndim == 2 && t->shape[0] == 48 && t->shape[1] == 144,
		 "c_attn not stored [in, out]");
	TT_CHECK(!tk_st_find(st, "lm_head.weight"), "the tied head's copy was written");
	tk_st_close(st);
	same_model("gpt2", out, 1);
	tk_rmtree(out);
}

/* --outtype: BF16 and F16 files; the fixtures' values survive exactly. */
static void test_outtype(void)
{
	struct tk_diag d;
	const char *out = tmp("bf16");
	TT_REQUIRE(!convert("convert/llama.gguf", out, TK_DT_BF16, 0, &d), "%s", d.msg);
	TT_CHECK(file_dtype(out) == TK_DT_BF16, "dtype %d", file_dtype(out));
	same_model("llama", out, 1);
	tk_rmtree(out);
	out = tmp("f16");
	TT_REQUIRE(!convert("convert/gpt2.gguf", out, TK_DT_F16, 0, &d), "%s", d.msg);
	TT_CHECK(file_dtype(out) == TK_DT_F16, "dtype %d", file_dtype(out));
	same_model("gpt2", out, 1);
	tk_rmtree(out);
	TT_CHECK(convert("convert/gpt2.gguf", out, TK_DT_I32, 0, &d) == TK_E_INVAL, "I32 outtype");
	TT_CHECK(!stray_entries(NULL), "output left behind");
}

/* convert_hf_to_gguf.py's permute, written out, and its inverse. */
static void test_unpermute(void)
{
	/* one head of 4: HF rows a0 a1 b0 b1 are stored a0 b0 a1 b1 */
	float g[4] = { 0, 1, 2, 3 }, h[4];
	tk_convert_unpermute(h, g, 1, 4, 1);
	TT_CHECK(h[0] == 0 && h[1] == 2 && h[2] == 1 && h[3] == 3, "%g %g %g %g", h[0], h[1],
		 h[2], h[3]);
	/* 3 heads of 6, 5 columns: permute(x).reshape(3, 2, 3, 5).swapaxes(1, 2) */
	enum { NH = 3, HD = 6, C = 5, R = NH * HD };
	float x[R * C], p[R * C], y[R * C];
	for (int i = 0; i < R * C; i++)
		x[i] = (float)i;
	for (int hh = 0; hh < NH; hh++)
		for (int j = 0; j < HD / 2; j++)
			for (int i = 0; i < 2; i++)
				for (int c = 0; c < C; c++)
					p[((hh * (HD / 2) + j) * 2 + i) * C + c] =
						x[((hh * 2 + i) * (HD / 2) + j) * C + c];
	tk_convert_unpermute(y, p, NH, HD, C);
	TT_CHECK(!memcmp(x, y, sizeof(x)), "unpermute(permute(x)) != x");
}

static void test_errors(void)
{
	struct tk_diag d;
	const char *out = tmp("out");
	int rc = convert("convert/mamba.gguf", out, TK_DT_F32, 0, &d);
	TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "'mamba'") &&
		 strstr(d.msg, "gpt2, llama, qwen2"), "mamba: %d %s", rc, d.msg);
	rc = convert("convert/bad-shape.gguf", out, TK_DT_F32, 0, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "'token_embd.weight'") &&
		 strstr(d.msg, "[48, 3]") && strstr(d.msg, "[64, 3]"), "bad shape: %d %s", rc,
		 d.msg);
	rc = convert("gguf/ggml-vocab-gpt-2.gguf", out, TK_DT_F32, 0, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "token_embd.weight"), "vocab only: %d %s",
		 rc, d.msg);
	rc = convert("gguf/quants.f32", out, TK_DT_F32, 0, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.msg, "not a GGUF file"), "not gguf: %d %s", rc,
		 d.msg);
	TT_CHECK(!stray_entries(NULL), "output left behind");

	/* an existing output stays as it is without force, is replaced with */
	TT_REQUIRE(!mkdir(out, 0755), "mkdir");
	FILE *fp = fopen(tmp("out/keep"), "w");
	TT_REQUIRE(fp, "fopen");
	fclose(fp);
	rc = convert("convert/llama.gguf", out, TK_DT_F32, 0, &d);
	TT_CHECK(rc == TK_E_EXISTS, "exists: %d %s", rc, d.msg);
	TT_CHECK(!access(tmp("out/keep"), F_OK) && access(tmp("out/config.json"), F_OK),
		 "existing output touched");
	TT_CHECK(stray_entries("out") == 0, "temporary left behind");
	rc = convert("convert/llama.gguf", out, TK_DT_F32, 1, &d);
	TT_CHECK(!rc && access(tmp("out/keep"), F_OK) && !access(tmp("out/config.json"), F_OK),
		 "force: %d %s", rc, d.msg);
	tk_rmtree(out);
}

/* The tokenizer.json written encodes as the GGUF vocabulary does. */
static void test_tokenizer(void)
{
	struct tk_diag d;
	const char *out = tmp("tok");
	TT_REQUIRE(!convert("convert/llama.gguf", out, TK_DT_F32, 0, &d), "%s", d.msg);
	tk_tokenizer_t *a, *b;
	TT_REQUIRE(!tk_tokenizer_load(&a, out, &d), "%s", d.msg);
	TT_REQUIRE(!tk_tokenizer_load(&b, tt_fixture("convert/llama.gguf"), &d), "%s", d.msg);
	TT_CHECK(tk_tokenizer_vocab_size(a) == 97, "vocab %d", (int)tk_tokenizer_vocab_size(a));
	TT_CHECK(!strcmp(tk_tokenizer_fingerprint(a), tk_tokenizer_fingerprint(b)),
		 "fingerprints %s and %s", tk_tokenizer_fingerprint(a), tk_tokenizer_fingerprint(b));
	TT_CHECK(tk_tokenizer_bos_id(a) == 1 && tk_tokenizer_eos_id(a) == 2, "bos/eos");
	static const char text[] = "the thin winter: in, an! ther";
	struct tk_ids ia = { 0 }, ib = { 0 };
	tk_encoder_t *ea = NULL, *eb = NULL;
	TT_CHECK(!tk_encoder_new(a, &ea) && !tk_encoder_new(b, &eb) &&
		 !tk_encode(ea, text, sizeof(text) - 1, 0, &ia) &&
		 !tk_encode(eb, text, sizeof(text) - 1, 0, &ib), "encode");
	TT_CHECK(ia.n == ib.n && ia.n > 0 && ia.n < sizeof(text) - 1 &&
		 !memcmp(ia.v, ib.v, ia.n * sizeof(*ia.v)), "ids differ (%zu vs %zu)", ia.n, ib.n);
	tk_ids_free(&ia);
	tk_ids_free(&ib);
	tk_encoder_free(ea);
	tk_encoder_free(eb);
	tk_tokenizer_free(a);
	tk_tokenizer_free(b);
	tk_rmtree(out);
}

int main(void)
{
	struct tk_diag d;
	if (!mkdtemp(tmpdir) || tk_backend_cpu_init(&be, 1, &d)) {
		printf("FAIL setup\n");
		return 1;
	}
	TT_RUN(test_unpermute);
	TT_RUN(test_llama);
	TT_RUN(test_gpt2);
	TT_RUN(test_outtype);
	TT_RUN(test_errors);
	TT_RUN(test_tokenizer);
	tk_backend_free(&be);
	tk_rmtree(tmpdir);
	return tt_done();
}

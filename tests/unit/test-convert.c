/* test-convert.c - GGUF import (lib/jobs/convert.c).
 *
 * tests/fixtures/convert/{llama,qwen2,gpt2}.gguf are the fixture models of
 * tests/fixtures/models/ written as llama.cpp's converter writes them
 * (tests/parity/gen-convert-fixtures.py: permuted q/k rows, transposed
 * Conv1D weights, BF16/F16 matrices).  Importing them must give back the
 * original models: the same config, the same weights bit for bit (BF16 and
 * F16 values are exact in fp32) and so the same logits, which are also
 * checked against what transformers computed (NAME.ref.safetensors).
 *
 * Export (tk_convert_export) is checked by the round trip: the fixture
 * models exported to GGUF and imported again must be the same models, bit
 * for bit in f32 (and in f16 or bf16 when the weights are of that type);
 * the vocabulary of an imported GGUF exported again must be the original
 * file's.  tests/parity/check-convert.py compares the exported bytes with
 * the gguf package's quantization and the logits transformers gets.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/afile.h"
#include "compute/backend.h"
#include "jobs/convert.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "formats/safetensors.h"
#include "text/tokenizer.h"
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
 * and logits on the reference inputs (the special ids only when same_ids). */
static void same_model(const char *name, const char *dir, int exact, int same_ids)
{
	struct tk_diag d;
	struct tk_model a = { 0 }, b = { 0 };
	tk_safetensors_t *ref = NULL;
	float *la = NULL, *lb = NULL, *lr = NULL;
	char orig[4096], refp[4096];
	snprintf(orig, sizeof(orig), "%s/%s", tt_fixture("models"), name);
	snprintf(refp, sizeof(refp), "%s/%s.ref.safetensors", tt_fixture("models"), name);
	int rc = tk_model_load(&a, dir, &be, &d);
	TT_REQUIRE(!rc, "%s: converted model does not load: %s", name, d.msg);
	TT_REQUIRE(!tk_model_load(&b, orig, &be, &d), "%s", d.msg);
	TT_REQUIRE(!tk_safetensors_open(&ref, refp, &d), "%s", d.msg);

	const struct tk_model_config *x = &a.cfg, *y = &b.cfg;
	TT_CHECK(x->arch == y->arch && x->vocab_size == y->vocab_size && x->hidden == y->hidden &&
		 x->n_layer == y->n_layer && x->n_head == y->n_head &&
		 x->n_kv_head == y->n_kv_head && x->head_dim == y->head_dim &&
		 x->intermediate == y->intermediate && x->max_pos == y->max_pos &&
		 x->norm == y->norm && x->pos == y->pos && x->mlp == y->mlp &&
		 x->attn_bias == y->attn_bias && x->attn_out_bias == y->attn_out_bias &&
		 x->mlp_bias == y->mlp_bias && x->tie_embeddings == y->tie_embeddings &&
		 (!same_ids || (x->bos_id == y->bos_id && x->eos_id == y->eos_id &&
			   x->pad_id == y->pad_id)), "%s: configs differ", name);
	TT_CHECK(x->rotary_dim == y->rotary_dim && x->rope.type == y->rope.type &&
		 x->rope.orig_max_pos == y->rope.orig_max_pos &&
		 x->rope.n_factors == y->rope.n_factors && x->sliding_window == y->sliding_window &&
		 !memcmp(x->rope.long_factor, y->rope.long_factor, sizeof(x->rope.long_factor)) &&
		 !memcmp(x->rope.short_factor, y->rope.short_factor, sizeof(x->rope.short_factor)),
		 "%s: rotary settings differ (rotary_dim %d/%d, rope_type %d/%d)", name,
		 x->rotary_dim, y->rotary_dim, x->rope.type, y->rope.type);
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

	const struct tk_tensor_info *ti = tk_safetensors_find(ref, "input_ids");
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
	const struct tk_tensor_info *tr = tk_safetensors_find(ref, "logits");
	TT_REQUIRE(tr && tr->nelem == n && !tk_safetensors_to_f32(tr, lr, &d), "no reference logits");
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
	tk_safetensors_close(ref);
	tk_model_free(&a);
	tk_model_free(&b);
}

/* The dtype every tensor of DIR/model.safetensors has, -1 when mixed. */
static int file_dtype(const char *dir)
{
	tk_safetensors_t *st;
	int dt = -2;
	if (tk_safetensors_open(&st, dir, NULL))
		return -3;
	for (size_t i = 0; i < tk_safetensors_count(st); i++) {
		int t = (int)tk_safetensors_at(st, i)->dtype;
		dt = dt == -2 || dt == t ? t : -1;
	}
	tk_safetensors_close(st);
	return dt;
}

static void test_llama(void)
{
	struct tk_diag d;
	const char *out = tmp("llama");
	int rc = convert("convert/llama.gguf", out, TK_DT_F32, 0, &d);
	TT_REQUIRE(!rc, "%s", d.msg);
	TT_CHECK(file_dtype(out) == TK_DT_F32, "dtype %d", file_dtype(out));
	same_model("llama", out, 1, 1);
	tk_afile_rmtree(out);
}

static void test_gpt2(void)
{
	struct tk_diag d;
	const char *out = tmp("gpt2");
	int rc = convert("convert/gpt2.gguf", out, TK_DT_F32, 0, &d);
	TT_REQUIRE(!rc, "%s", d.msg);
	tk_safetensors_t *st;
	TT_REQUIRE(!tk_safetensors_open(&st, out, &d), "%s", d.msg);
	const struct tk_tensor_info *t = tk_safetensors_find(st, "transformer.h.0.attn.c_attn.weight");
	TT_CHECK(t && t->ndim == 2 && t->shape[0] == 48 && t->shape[1] == 144,
		 "c_attn not stored [in, out]");
	TT_CHECK(!tk_safetensors_find(st, "lm_head.weight"), "the tied head's copy was written");
	tk_safetensors_close(st);
	same_model("gpt2", out, 1, 1);
	tk_afile_rmtree(out);
}

/* --outtype: BF16 and F16 files; the fixtures' values survive exactly. */
static void test_outtype(void)
{
	struct tk_diag d;
	const char *out = tmp("bf16");
	TT_REQUIRE(!convert("convert/llama.gguf", out, TK_DT_BF16, 0, &d), "%s", d.msg);
	TT_CHECK(file_dtype(out) == TK_DT_BF16, "dtype %d", file_dtype(out));
	same_model("llama", out, 1, 1);
	tk_afile_rmtree(out);
	out = tmp("f16");
	TT_REQUIRE(!convert("convert/gpt2.gguf", out, TK_DT_F16, 0, &d), "%s", d.msg);
	TT_CHECK(file_dtype(out) == TK_DT_F16, "dtype %d", file_dtype(out));
	same_model("gpt2", out, 1, 1);
	tk_afile_rmtree(out);
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
	char out[4096]; /* tmp() reuses its buffers */
	snprintf(out, sizeof(out), "%s", tmp("out"));
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
	tk_afile_rmtree(out);
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
	tk_afile_rmtree(out);
}

static int export(const char *dir, const char *out, int type, int force, struct tk_diag *d);

/* The text of DIR/NAME, "" when unreadable. */
static const char *file_text(const char *dir, const char *name)
{
	static char buf[8192];
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *fp = fopen(path, "r");
	size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
	if (fp)
		fclose(fp);
	buf[n] = '\0';
	return buf;
}

/* qwen2.gguf: models/qwen2 as the converter's Qwen2Model writes it (no
 * permutation, q/k/v biases, tied embeddings) with <|endoftext|> as bos,
 * eos and padding id, which the original's config does not name. */
static void test_qwen2(void)
{
	struct tk_diag d;
	char out[4096];
	snprintf(out, sizeof(out), "%s", tmp("qwen2"));
	TT_REQUIRE(!convert("convert/qwen2.gguf", out, TK_DT_F32, 0, &d), "%s", d.msg);
	same_model("qwen2", out, 1, 0);
	struct tk_model_config c;
	TT_REQUIRE(!tk_config_load(&c, out, &d), "%s", d.msg);
	TT_CHECK(c.arch == TK_ARCH_QWEN2 && c.attn_bias && !c.attn_out_bias && c.tie_embeddings &&
		 c.bos_id == 96 && c.eos_id == 96 && c.pad_id == 96, "config: arch %d bias %d "
		 "tied %d ids %lld %lld %lld", c.arch, c.attn_bias, c.tie_embeddings,
		 (long long)c.bos_id, (long long)c.eos_id, (long long)c.pad_id);
	/* the ids transformers' GGUF loader puts in its generation config */
	TT_CHECK(!strcmp(file_text(out, "generation_config.json"),
			 "{\n\t\"_from_model_config\":\ttrue,\n\t\"bos_token_id\":\t96,\n"
			 "\t\"eos_token_id\":\t96,\n\t\"pad_token_id\":\t96\n}\n"),
		 "generation_config.json: %s", file_text(out, "generation_config.json"));
	/* tokenizer.chat_template kept in tokenizer_config.json (exported back
	 * in test_export_vocab) */
	TT_CHECK(strstr(file_text(out, "tokenizer_config.json"),
			"\"chat_template\":\t\"{% for message in messages %}{{ '<|im_start|>' + "
			"message['role'] + '\\\\n' + "), "no chat_template in tokenizer_config.json: %s",
		 file_text(out, "tokenizer_config.json"));
	/* the tokenizer: Qwen2's pre-tokenizer, no BOS added, the GGUF's ids */
	tk_tokenizer_t *a, *b;
	TT_REQUIRE(!tk_tokenizer_load(&a, out, &d), "%s", d.msg);
	TT_REQUIRE(!tk_tokenizer_load(&b, tt_fixture("convert/qwen2.gguf"), &d), "%s", d.msg);
	TT_CHECK(!strcmp(tk_tokenizer_fingerprint(a), tk_tokenizer_fingerprint(b)),
		 "fingerprints %s and %s", tk_tokenizer_fingerprint(a), tk_tokenizer_fingerprint(b));
	static const char text[] = "the thin winter: in, an! ther 1234";
	struct tk_ids ia = { 0 }, ib = { 0 };
	tk_encoder_t *ea = NULL, *eb = NULL;
	TT_CHECK(!tk_encoder_new(a, &ea) && !tk_encoder_new(b, &eb) &&
		 !tk_encode(ea, text, sizeof(text) - 1, TK_ENCODE_ADD_SPECIAL, &ia) &&
		 !tk_encode(eb, text, sizeof(text) - 1, TK_ENCODE_ADD_SPECIAL, &ib), "encode");
	TT_CHECK(ia.n == ib.n && ia.n > 0 && ia.v[0] != 96 &&
		 !memcmp(ia.v, ib.v, ia.n * sizeof(*ia.v)), "ids differ (%zu vs %zu)", ia.n, ib.n);
	tk_ids_free(&ia);
	tk_ids_free(&ib);
	tk_encoder_free(ea);
	tk_encoder_free(eb);
	tk_tokenizer_free(a);
	tk_tokenizer_free(b);
	/* llama.gguf names bos and eos only; gpt2.gguf <|endoftext|> for both */
	const char *lo = tmp("llama-gc");
	TT_REQUIRE(!convert("convert/llama.gguf", lo, TK_DT_F32, 0, &d), "%s", d.msg);
	TT_CHECK(!strcmp(file_text(lo, "generation_config.json"),
			 "{\n\t\"_from_model_config\":\ttrue,\n\t\"bos_token_id\":\t1,\n"
			 "\t\"eos_token_id\":\t2\n}\n"),
		 "llama generation_config.json: %s", file_text(lo, "generation_config.json"));
	tk_afile_rmtree(lo);
	tk_afile_rmtree(out);
}

/* The chat template goes out from tokenizer_config.json or, without one
 * there, chat_template.jinja; a broken tokenizer_config.json is an error. */
static void test_export_chat_template(void)
{
	struct tk_diag d;
	char dir[4096], g[4096], p[4096];
	snprintf(dir, sizeof(dir), "%s", tmp("chat"));
	snprintf(g, sizeof(g), "%s", tmp("chat.gguf"));
	TT_REQUIRE(!convert("convert/qwen2.gguf", dir, TK_DT_F32, 0, &d), "%s", d.msg);
	snprintf(p, sizeof(p), "%s/tokenizer_config.json", dir);
	FILE *fp = fopen(p, "w");
	TT_REQUIRE(fp, "fopen");
	fputs("{\"chat_template\": ", fp);
	fclose(fp);
	int rc = export(dir, g, TK_GGML_F32, 0, &d);
	TT_CHECK(rc == TK_E_FORMAT && strstr(d.path, "tokenizer_config.json") &&
		 strstr(d.msg, "JSON"), "broken tokenizer_config.json: %d %s", rc, d.msg);
	TT_CHECK(access(g, F_OK), "output written");
	unlink(p);
	snprintf(p, sizeof(p), "%s/chat_template.jinja", dir);
	TT_REQUIRE((fp = fopen(p, "w")), "fopen");
	fputs("{{ messages[0]['content'] }}\n", fp);
	fclose(fp);
	struct tk_convert_export_opts o = { .input = dir, .output = g, .outtype = TK_GGML_F32 };
	TT_REQUIRE(!tk_convert_export(&o, NULL, &d), "%s", d.msg);
	tk_gguf_t *gg;
	TT_REQUIRE(!tk_gguf_open(&gg, g, &d), "%s", d.msg);
	const struct tk_gguf_kv *kv = tk_gguf_find(gg, "tokenizer.chat_template");
	TT_CHECK(kv && kv->type == TK_GGUF_STRING && kv->sn == 29 &&
		 !memcmp(kv->s, "{{ messages[0]['content'] }}\n", 29), "chat_template.jinja not exported");
	tk_gguf_close(gg);
	unlink(g);
	tk_afile_rmtree(dir);
}

/* A Mistral with a window: exported as llama plus
 * llama.attention.sliding_window, imported back as that Mistral. */
static void test_sliding_window(void)
{
	struct tk_diag d;
	char src[4096], dir[4096], g[4096], back[4096], a[4096], b[4096];
	snprintf(src, sizeof(src), "%s/llama", tt_fixture("models"));
	snprintf(dir, sizeof(dir), "%s", tmp("mistral"));
	snprintf(g, sizeof(g), "%s", tmp("mistral.gguf"));
	snprintf(back, sizeof(back), "%s", tmp("mistral-back"));
	struct tk_model_config c;
	TT_REQUIRE(!tk_config_load(&c, src, &d), "%s", d.msg);
	TT_REQUIRE(!c.attn_bias && !c.mlp_bias && c.max_pos > 16, "fixture changed");
	c.arch = TK_ARCH_MISTRAL;
	snprintf(c.model_type, sizeof(c.model_type), "mistral");
	c.sliding_window = 16;
	TT_REQUIRE(!mkdir(dir, 0755), "mkdir");
	snprintf(a, sizeof(a), "%s/model.safetensors", src);
	snprintf(b, sizeof(b), "%s/model.safetensors", dir);
	TT_REQUIRE(!symlink(a, b), "symlink");
	snprintf(b, sizeof(b), "%s/config.json", dir);
	TT_REQUIRE(!tk_config_save(&c, b, NULL, 0, &d), "%s", d.msg);
	TT_REQUIRE(!export(dir, g, TK_GGML_F32, 0, &d), "%s", d.msg);
	tk_gguf_t *gg;
	TT_REQUIRE(!tk_gguf_open(&gg, g, &d), "%s", d.msg);
	const struct tk_gguf_kv *kv = tk_gguf_find(gg, "llama.attention.sliding_window");
	const struct tk_gguf_kv *ar = tk_gguf_find(gg, "general.architecture");
	TT_CHECK(kv && kv->type == TK_GGUF_U32 && kv->u == 16, "no llama.attention.sliding_window");
	TT_CHECK(ar && !strcmp(ar->s, "llama"), "architecture");
	tk_gguf_close(gg);
	struct tk_convert_opts o = { .input = g, .output = back, .outtype = TK_DT_F32 };
	TT_REQUIRE(!tk_convert_gguf(&o, NULL, &d), "%s", d.msg);
	struct tk_model_config e;
	TT_REQUIRE(!tk_config_load(&e, back, &d), "%s", d.msg);
	TT_CHECK(e.arch == TK_ARCH_MISTRAL && e.sliding_window == 16 &&
		 !strcmp(e.model_type, "mistral"), "imported: arch %d window %d", e.arch,
		 e.sliding_window);
	struct tk_model m1 = { 0 }, m2 = { 0 };
	TT_REQUIRE(!tk_model_load(&m1, src, &be, &d) && !tk_model_load(&m2, back, &be, &d), "%s",
		   d.msg);
	TT_CHECK(m1.n_tensors == m2.n_tensors, "tensor count");
	for (int i = 0; i < m1.n_tensors; i++) {
		const struct tk_model_tensor *t = tk_model_find(&m2, m1.tensors[i].name);
		TT_CHECK(t && t->n == m1.tensors[i].n &&
			 !memcmp(m2.params + t->off, m1.params + m1.tensors[i].off,
				 t->n * sizeof(float)), "%s differs", m1.tensors[i].name);
	}
	tk_model_free(&m1);
	tk_model_free(&m2);
	tk_afile_rmtree(back);
	unlink(g);

	/* a window with biases is no Hugging Face model: refused, nothing written */
	tk_gguf_writer_t *w = tk_gguf_writer_new();
	TT_REQUIRE(w, "writer");
	static float z[8 * 4];
	tk_gguf_add_str(w, "general.architecture", "llama");
	tk_gguf_add_u32(w, "llama.embedding_length", 4);
	tk_gguf_add_u32(w, "llama.block_count", 1);
	tk_gguf_add_u32(w, "llama.attention.head_count", 2);
	tk_gguf_add_u32(w, "llama.feed_forward_length", 8);
	tk_gguf_add_u32(w, "llama.attention.sliding_window", 4);
	tk_gguf_add_tensor(w, "token_embd.weight", TK_GGML_F32, 2, (int64_t[]){ 4, 8 }, z,
			   sizeof(z), 0);
	tk_gguf_add_tensor(w, "blk.0.attn_q.bias", TK_GGML_F32, 1, (int64_t[]){ 4 }, z,
			   4 * sizeof(float), 0);
	TT_REQUIRE(!tk_gguf_writer_commit(w, g, 0, &d), "%s", d.msg);
	int rc = tk_convert_gguf(&o, NULL, &d);
	TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "sliding_window") &&
		 strstr(d.msg, "biases"), "window with biases: %d %s", rc, d.msg);
	TT_CHECK(access(back, F_OK), "output written");
	unlink(g);
	tk_afile_rmtree(dir);
}

static int export(const char *dir, const char *out, int type, int force, struct tk_diag *d)
{
	struct tk_convert_export_opts o = { .input = dir, .output = out, .outtype = type,
					    .force = force };
	struct tk_convert_result r;
	int rc = tk_convert_export(&o, &r, d);
	if (!rc && (r.tokenizer || r.n_tensors <= 0))
		return -100;
	return rc;
}

/* Fixture model -> GGUF -> model directory gives the same model. */
static void roundtrip(const char *name, int type, enum tk_dtype back)
{
	struct tk_diag d;
	char src[4096];
	const char *g = tmp("rt.gguf"), *out = tmp("rt");
	snprintf(src, sizeof(src), "%s/%s", tt_fixture("models"), name);
	int rc = export(src, g, type, 0, &d);
	TT_REQUIRE(!rc, "%s: export: %d %s", name, rc, d.msg);
	struct tk_convert_opts o = { .input = g, .output = out, .outtype = back };
	TT_REQUIRE(!tk_convert_gguf(&o, NULL, &d), "%s: import of the export: %s", name, d.msg);
	same_model(name, out, 1, 1);
	unlink(g);
	tk_afile_rmtree(out);
}

static void test_export_roundtrip(void)
{
	roundtrip("llama", TK_GGML_F32, TK_DT_F32);
	roundtrip("qwen2", TK_GGML_F32, TK_DT_F32);
	roundtrip("gpt2", TK_GGML_F32, TK_DT_F32);
	roundtrip("qwen3", TK_GGML_F32, TK_DT_F32);   /* attn_q_norm, attn_k_norm, head_dim */
	roundtrip("qwen3", TK_GGML_BF16, TK_DT_BF16);
	roundtrip("llama", TK_GGML_BF16, TK_DT_BF16); /* the fixture's weights are BF16 */
	roundtrip("gpt2", TK_GGML_F16, TK_DT_F16);    /* and F16 */
	/* phi3: fused attn_qkv and ffn_up, rope.dimension_count for the
	 * partial rotary, LongRoPE's rope_factors_long/short tensors */
	roundtrip("phi3", TK_GGML_BF16, TK_DT_BF16);
	roundtrip("phi3-partial", TK_GGML_F16, TK_DT_F16);
	roundtrip("phi3-longrope", TK_GGML_F32, TK_DT_F32);
	TT_CHECK(!stray_entries(NULL), "output left behind");
}

/* Gemma through GGUF and back: the fixture model made what llama.cpp
 * computes (query_pre_attn_scalar = head_dim; Gemma-3 with its sliding
 * layers every but 6th, no rope scaling), exported as F32 and imported.
 * The config comes back; the tensors bit for bit but the norms, which go
 * through 1 + w and back (a rounding of fp32 at 1 + |w|: 2^-24 (1 + |w|)
 * each way); the logits within 1e-5 (eleven tokens through 3 layers of
 * norms that differ by that much). */
static void gemma_roundtrip(const char *name)
{
	struct tk_diag d;
	struct tk_model m = { 0 }, a = { 0 };
	char src[4096];
	const char *dir = tmp("gm"), *g = tmp("gm.gguf"), *out = tmp("gm-back");
	snprintf(src, sizeof(src), "%s/%s", tt_fixture("models"), name);
	TT_REQUIRE(!tk_model_load(&m, src, &be, &d), "%s", d.msg);
	struct tk_model_config *c = &m.cfg;
	c->query_pre_attn_scalar = (float)c->head_dim;
	if (c->arch == TK_ARCH_GEMMA3) {
		for (int l = 0; l < c->n_layer; l++)
			c->layer_window[l] = (l + 1) % 6 ? c->sliding_window : 0;
		c->rope.type = TK_ROPE_DEFAULT;
		c->rope.factor = 0;
	}
	TT_REQUIRE(!tk_model_save(&m, dir, 1, &d), "%s", d.msg);
	TT_REQUIRE(!export(dir, g, TK_GGML_F32, 0, &d), "%s: export: %s", name, d.msg);
	struct tk_convert_opts o = { .input = g, .output = out, .outtype = TK_DT_F32 };
	TT_REQUIRE(!tk_convert_gguf(&o, NULL, &d), "%s: import: %s", name, d.msg);
	TT_REQUIRE(!tk_model_load(&a, out, &be, &d), "%s", d.msg);
	const struct tk_model_config *x = &a.cfg;
	int same = x->arch == c->arch && x->query_pre_attn_scalar == c->query_pre_attn_scalar &&
		   x->attn_softcap == c->attn_softcap && x->final_softcap == c->final_softcap &&
		   x->rope_local_theta == c->rope_local_theta && x->rope_theta == c->rope_theta &&
		   x->sliding_window == c->sliding_window && x->head_dim == c->head_dim &&
		   x->tie_embeddings == c->tie_embeddings && x->n_kv_head == c->n_kv_head &&
		   !memcmp(x->layer_window, c->layer_window, sizeof(x->layer_window));
	TT_CHECK(same, "%s: the config differs after GGUF", name);
	TT_CHECK(a.n_tensors == m.n_tensors, "%s: %d tensors, %d", name, a.n_tensors, m.n_tensors);
	for (int i = 0; i < m.n_tensors; i++) {
		const struct tk_model_tensor *t = &m.tensors[i], *u = tk_model_find(&a, t->name);
		TT_REQUIRE(u && u->n == t->n, "%s: %s", name, t->name);
		const float *p = m.params + t->off, *q = a.params + u->off;
		int norm = strstr(t->name, "norm.weight") != NULL;
		for (size_t k = 0; k < t->n; k++) {
			double tol = norm ? 0x1p-23 * (1 + fabs(p[k])) : 0;
			if (!(fabs((double)p[k] - q[k]) <= tol)) {
				TT_CHECK(0, "%s: %s[%zu] %.9g back as %.9g", name, t->name, k, p[k],
					 q[k]);
				break;
			}
		}
	}
	uint32_t ids[11] = { 3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46 };
	float *la = malloc(11 * 97 * sizeof(float)), *lm = malloc(11 * 97 * sizeof(float));
	TT_REQUIRE(la && lm, "out of memory");
	TT_REQUIRE(!tk_model_forward(&a, ids, NULL, 1, 11, 0, 0, NULL, &d) &&
		   !tk_model_logits(&a, 0, 11, la, &d), "%s", d.msg);
	TT_REQUIRE(!tk_model_forward(&m, ids, NULL, 1, 11, 0, 0, NULL, &d) &&
		   !tk_model_logits(&m, 0, 11, lm, &d), "%s", d.msg);
	double worst = 0;
	for (int i = 0; i < 11 * 97; i++)
		worst = fmax(worst, fabs((double)la[i] - lm[i]));
	TT_CHECK(worst <= 1e-5, "%s: logits differ by %g after GGUF", name, worst);
	free(la);
	free(lm);
	tk_model_free(&a);
	tk_model_free(&m);
	unlink(g);
	tk_afile_rmtree(dir);
	tk_afile_rmtree(out);
}

/* What llama.cpp's gemma2 / gemma3 cannot express is refused, naming it. */
static void test_export_gemma(void)
{
	struct tk_diag d;
	char src[4096];
	gemma_roundtrip("gemma2");
	gemma_roundtrip("gemma3");
	snprintf(src, sizeof(src), "%s/gemma2", tt_fixture("models"));
	int rc = export(src, tmp("no.gguf"), TK_GGML_F32, 0, &d);
	TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "query_pre_attn_scalar 24 (llama.cpp: 16)"),
		 "gemma2: %d %s", rc, d.msg);
	snprintf(src, sizeof(src), "%s/gemma3", tt_fixture("models"));
	rc = export(src, tmp("no.gguf"), TK_GGML_F32, 0, &d);
	TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "layer 1 full"), "gemma3: %d %s", rc,
		 d.msg);
	TT_CHECK(!stray_entries(NULL), "output left behind");
}

/* A GGUF vocabulary imported and exported again is the original's. */
static void test_export_vocab(void)
{
	static const char *const files[] = { "convert/llama.gguf", "convert/qwen2.gguf",
					     "convert/gpt2.gguf" };
	static const char *const keys[] = {
		"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
		"tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
		"tokenizer.ggml.eos_token_id", "tokenizer.chat_template",
	};
	struct tk_diag d;
	for (int f = 0; f < 3; f++) {
		const char *dir = tmp("v"), *g = tmp("v.gguf");
		TT_REQUIRE(!convert(files[f], dir, TK_DT_F32, 0, &d), "%s", d.msg);
		struct tk_convert_export_opts o = { .input = dir, .output = g,
						    .outtype = TK_GGML_F32 };
		struct tk_convert_result r;
		TT_REQUIRE(!tk_convert_export(&o, &r, &d), "%s: %s", files[f], d.msg);
		TT_CHECK(r.tokenizer, "%s: no vocabulary written", files[f]);
		tk_gguf_t *a, *b;
		TT_REQUIRE(!tk_gguf_open(&a, g, &d), "%s", d.msg);
		TT_REQUIRE(!tk_gguf_open(&b, tt_fixture(files[f]), &d), "%s", d.msg);
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			const struct tk_gguf_kv *x = tk_gguf_find(a, keys[k]);
			const struct tk_gguf_kv *y = tk_gguf_find(b, keys[k]);
			if (!y && !strcmp(keys[k], "tokenizer.chat_template")) {
				TT_CHECK(!x, "%s: a chat template from nowhere", files[f]);
				continue;
			}
			TT_REQUIRE(x && y, "%s: %s missing", files[f], keys[k]);
			int same = x->type == y->type && x->i == y->i && x->n == y->n &&
				   x->arr_type == y->arr_type;
			if (same && x->type == TK_GGUF_STRING)
				same = x->sn == y->sn && !memcmp(x->s, y->s, x->sn);
			for (uint64_t i = 0; same && x->strs && i < x->n; i++)
				same = x->strs[i].n == y->strs[i].n &&
				       !memcmp(x->strs[i].p, y->strs[i].p, x->strs[i].n);
			if (same && x->type == TK_GGUF_ARRAY && !x->strs)
				same = !memcmp(x->data, y->data, x->n * 4);
			TT_CHECK(same, "%s: %s differs from the original", files[f], keys[k]);
		}
		tk_gguf_close(a);
		tk_gguf_close(b);
		unlink(g);
		tk_afile_rmtree(dir);
	}
}

static void test_quantize(void)
{
	float x[64], y[64];
	unsigned char q[64 * 4];
	for (int i = 0; i < 64; i++)
		x[i] = (float)(i - 16) * (i < 32 ? 1.0f : -0.01f) + (i == 40 ? 0.3f : 0.0f);
	TT_CHECK(tk_ggml_quantize(TK_GGML_Q8_0, x, q, 33) == TK_E_UNSUPPORTED, "partial block");
	TT_CHECK(tk_ggml_quantize(TK_GGML_Q4_K, x, q, 64) == TK_E_UNSUPPORTED, "q4_k");
	static const int types[] = { TK_GGML_Q8_0, TK_GGML_Q4_0 };
	for (int t = 0; t < 2; t++) {
		TT_REQUIRE(!tk_ggml_quantize(types[t], x, q, 64) &&
			   !tk_ggml_dequantize(types[t], q, y, 64), "%s", tk_ggml_type_name(types[t]));
		for (int b = 0; b < 2; b++) {
			float amax = 0, worst = 0;
			for (int i = 32 * b; i < 32 * b + 32; i++) {
				amax = fmaxf(amax, fabsf(x[i]));
				worst = fmaxf(worst, fabsf(x[i] - y[i]));
			}
			/* half a step for q8_0 (d = amax/127) plus the scale's fp16
			 * rounding (2^-11 relative, times up to 127); q4_0 clips one end
			 * to a full step */
			float bound = t ? amax / 8 : amax / 127 * (0.5f + 127.0f / 2048);
			TT_CHECK(worst <= bound, "%s block %d: error %g > %g",
				 tk_ggml_type_name(types[t]), b, worst, bound);
		}
	}
	/* q8_0: the largest magnitude is code -127, and 0 stays 0 */
	TT_REQUIRE(!tk_ggml_quantize(TK_GGML_Q8_0, x, q, 32), "q8_0");
	TT_CHECK((int8_t)q[2] == -127 && q[2 + 16] == 0 && (int8_t)q[2 + 31] == 119,
		 "codes %d %d %d", (int8_t)q[2], (int8_t)q[18], (int8_t)q[33]);
	/* q4_0: the value of largest magnitude (-16) is code 0, d = 2 */
	TT_REQUIRE(!tk_ggml_quantize(TK_GGML_Q4_0, x, q, 32), "q4_0");
	TT_CHECK(q[0] == 0x00 && q[1] == 0x40 && (q[2] & 15) == 0 && q[2 + 8] >> 4 == 12,
		 "q4_0 bytes %02x %02x %02x %02x", q[0], q[1], q[2], q[10]);
}

static void test_export_errors(void)
{
	struct tk_diag d;
	char src[4096], g[4096], dir[4096];
	snprintf(g, sizeof(g), "%s", tmp("e.gguf"));
	snprintf(dir, sizeof(dir), "%s", tmp("e"));
	snprintf(src, sizeof(src), "%s/llama", tt_fixture("models"));
	char a[4096], b[4096];
	int rc = export(tmp("nonexistent"), g, TK_GGML_F32, 0, &d);
	TT_CHECK(rc == TK_E_IO && strstr(d.path, "nonexistent"), "no model: %d %s: %s", rc, d.path,
		 d.msg);
	rc = export(src, g, TK_GGML_Q4_K, 0, &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "Q8_0"), "q4_k: %d %s", rc, d.msg);
	/* a rotary scaling is refused, not exported as plain RoPE */
	snprintf(a, sizeof(a), "%s/rope-llama3", tt_fixture("models"));
	rc = export(a, g, TK_GGML_F32, 0, &d);
	TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "rope_type"), "llama3 rope: %d %s", rc,
		 d.msg);
	snprintf(a, sizeof(a), "%s/smollm3", tt_fixture("models"));
	rc = export(a, g, TK_GGML_F32, 0, &d);
	TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "smollm3"), "smollm3: %d %s", rc, d.msg);
	/* a tokenizer export does not handle */
	TT_REQUIRE(!mkdir(dir, 0755), "mkdir");
	for (int i = 0; i < 2; i++) {
		const char *f = i ? "model.safetensors" : "config.json";
		snprintf(a, sizeof(a), "%s/%s", src, f);
		snprintf(b, sizeof(b), "%s/%s", dir, f);
		TT_REQUIRE(!symlink(a, b), "symlink");
	}
	FILE *fp = fopen(tmp("e/tokenizer.json"), "w");
	TT_REQUIRE(fp, "fopen");
	fputs("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}\n", fp);
	fclose(fp);
	rc = export(dir, g, TK_GGML_F32, 0, &d);
	TT_CHECK(rc == TK_E_UNSUPPORTED && strstr(d.msg, "byte-level BPE") &&
		 strstr(d.path, "tokenizer.json"), "unigram: %d %s", rc, d.msg);
	TT_CHECK(stray_entries("e") == 0, "output left behind");
	tk_afile_rmtree(dir);
	/* an existing file stays without force, is replaced with it */
	fp = fopen(g, "w");
	TT_REQUIRE(fp, "fopen");
	fputs("keep", fp);
	fclose(fp);
	rc = export(src, g, TK_GGML_F32, 0, &d);
	struct stat st;
	TT_CHECK(rc == TK_E_EXISTS && !stat(g, &st) && st.st_size == 4, "exists: %d %s", rc,
		 d.msg);
	TT_CHECK(stray_entries("e.gguf") == 0, "temporary left behind");
	rc = export(src, g, TK_GGML_F32, 1, &d);
	TT_CHECK(!rc && !stat(g, &st) && st.st_size > 4, "force: %d %s", rc, d.msg);
	unlink(g);
}

/* The GGUF writer: what it writes the reader reads back; what it refuses
 * leaves no file. */
static void test_writer(void)
{
	struct tk_diag d;
	char path[4096];
	snprintf(path, sizeof(path), "%s", tmp("w.gguf"));
	tk_gguf_writer_t *w = tk_gguf_writer_new();
	TT_REQUIRE(w, "new");
	static const char *const strs[] = { "a", "", "b c\xc4\xa0" };
	static const int32_t ints[3] = { -1, 0, 70000 };
	float *t1 = malloc(3 * 32 * sizeof(float)), t0[5] = { 1, -2, 3.5f, 0, 1e-3f };
	TT_REQUIRE(t1, "malloc");
	for (int i = 0; i < 96; i++)
		t1[i] = (float)i / 7 - 3;
	unsigned char *q = malloc(3 * 34);
	TT_REQUIRE(q && !tk_ggml_quantize(TK_GGML_Q8_0, t1, q, 96), "quantize");
	tk_gguf_add_str(w, "general.architecture", "llama");
	tk_gguf_add_u32(w, "u", 4000000000u);
	tk_gguf_add_f32(w, "f", 0.25f);
	tk_gguf_add_bool(w, "b", 1);
	tk_gguf_add_strs(w, "s", 3, strs, NULL);
	tk_gguf_add_arr(w, "i", TK_GGUF_I32, 3, ints);
	tk_gguf_add_tensor(w, "t0", TK_GGML_F32, 1, (int64_t[]){ 5 }, t0, sizeof(t0), 0);
	tk_gguf_add_tensor(w, "t1", TK_GGML_Q8_0, 2, (int64_t[]){ 32, 3 }, q, 3 * 34, 1);
	TT_REQUIRE(!tk_gguf_writer_commit(w, path, 0, &d), "%s", d.msg);
	tk_gguf_t *g;
	TT_REQUIRE(!tk_gguf_open(&g, path, &d), "%s", d.msg);
	const struct tk_gguf_kv *kv;
	TT_CHECK(tk_gguf_version(g) == 3 && tk_gguf_kv_count(g) == 6 &&
		 tk_gguf_tensor_count(g) == 2, "counts");
	TT_CHECK((kv = tk_gguf_find(g, "general.architecture")) && !strcmp(kv->s, "llama"), "str");
	TT_CHECK((kv = tk_gguf_find(g, "u")) && kv->type == TK_GGUF_U32 && kv->u == 4000000000u,
		 "u32");
	TT_CHECK((kv = tk_gguf_find(g, "f")) && kv->type == TK_GGUF_F32 && kv->f == 0.25, "f32");
	TT_CHECK((kv = tk_gguf_find(g, "b")) && kv->type == TK_GGUF_BOOL && kv->i == 1, "bool");
	TT_CHECK((kv = tk_gguf_find(g, "s")) && kv->arr_type == TK_GGUF_STRING && kv->n == 3 &&
		 kv->strs[1].n == 0 && kv->strs[2].n == 5 && !memcmp(kv->strs[2].p, strs[2], 5),
		 "string array");
	TT_CHECK((kv = tk_gguf_find(g, "i")) && kv->arr_type == TK_GGUF_I32 && kv->n == 3 &&
		 !memcmp(kv->data, ints, sizeof(ints)), "i32 array");
	const struct tk_gguf_tensor *a = tk_gguf_tensor_find(g, "t0");
	const struct tk_gguf_tensor *b = tk_gguf_tensor_find(g, "t1");
	TT_REQUIRE(a && b, "tensors");
	TT_CHECK(a->ndim == 1 && a->ne[0] == 5 && !memcmp(a->data, t0, sizeof(t0)), "t0");
	TT_CHECK(b->type == TK_GGML_Q8_0 && b->ndim == 2 && b->ne[0] == 32 && b->ne[1] == 3 &&
		 b->offset == 32 && (uintptr_t)b->data % 32 == 0, "t1 at offset %llu",
		 (unsigned long long)b->offset);
	float back[96];
	TT_CHECK(!tk_gguf_to_f32(g, b, back, &d) && fabsf(back[95] - t1[95]) < 0.02f, "t1 values");
	tk_gguf_close(g);
	unlink(path);

	/* refused: a duplicate key, a tensor whose bytes do not fit */
	w = tk_gguf_writer_new();
	tk_gguf_add_u32(w, "k", 1);
	tk_gguf_add_u32(w, "k", 2);
	int rc = tk_gguf_writer_commit(w, path, 0, &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "duplicate key 'k'"), "dup: %d %s", rc, d.msg);
	w = tk_gguf_writer_new();
	tk_gguf_add_tensor(w, "t1", TK_GGML_Q8_0, 2, (int64_t[]){ 32, 3 }, t1, 3 * 33, 0);
	rc = tk_gguf_writer_commit(w, path, 0, &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "'t1'") && strstr(d.msg, "q8_0"),
		 "bad size: %d %s", rc, d.msg);
	w = tk_gguf_writer_new();
	tk_gguf_add_tensor(w, "t1", TK_GGML_Q8_0, 1, (int64_t[]){ 40 }, t1, 34, 0);
	rc = tk_gguf_writer_commit(w, path, 0, &d);
	TT_CHECK(rc == TK_E_INVAL, "partial block: %d %s", rc, d.msg);
	TT_CHECK(!stray_entries(NULL), "output left behind");
	free(t1);
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
	TT_RUN(test_qwen2);
	TT_RUN(test_quantize);
	TT_RUN(test_writer);
	TT_RUN(test_export_roundtrip);
	TT_RUN(test_export_gemma);
	TT_RUN(test_export_vocab);
	TT_RUN(test_export_errors);
	TT_RUN(test_sliding_window);
	TT_RUN(test_export_chat_template);
	tk_backend_free(&be);
	tk_afile_rmtree(tmpdir);
	return tt_done();
}

/* test-config.c - config.json parsing and writing against what transformers
 * makes of the files in tests/fixtures/configs/ (NAME.json with NAME.expect,
 * from tests/parity/gen-safetensors-fixtures.py).
 *
 * With TK_CONFIG_PARITY_DIR=DIR set, it runs no tests: it loads every
 * DIR/in/NAME.json, saves it to DIR/out/NAME.json and writes
 * DIR/out/NAME.n_params, for tests/parity/check-safetensors.py.
 */
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/config.h"
#include "tt.h"

static struct tk_diag d;

static const char *tmp(const char *name)
{
	static char buf[4][1024];
	static int k;
	char *b = buf[k++ % 4];
	snprintf(b, sizeof(buf[0]), "%s/%s", tt_tmpdir(), name);
	return b;
}

static const char *const norms[] = { "layer", "rms" }, *const poss[] = { "learned", "rope" },
			   *const mlps[] = { "gelu", "swiglu", "geglu" },
			   *const ropes[] = { "default", "linear", "dynamic", "yarn", "longrope", "llama3" };

/* "w0,w1,...": layer_window, comma-separated. */
static const char *windows(const struct tk_model_config *c)
{
	static char buf[8192];
	size_t n = 0;
	buf[0] = 0;
	for (int l = 0; l < c->n_layer && n + 16 < sizeof(buf); l++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%d", l ? "," : "",
				      c->layer_window[l]);
	return buf;
}

/* Compares c with NAME.expect; returns the number of mismatches. */
static int check_expect(const struct tk_model_config *c, const char *path, const char *what)
{
	FILE *f = fopen(path, "r");
	TT_CHECK(f != NULL, "%s", path);
	if (!f)
		return 1;
	char key[64], val[128];
	int bad = 0, n = 0, extra = 0;
	while (fscanf(f, "%63s %127s", key, val) == 2) {
		long long i = strtoll(val, NULL, 10);
		float x = (float)strtod(val, NULL);
		int ok = 1;
		n++;
#define INT(k, field) else if (!strcmp(key, k)) ok = (long long)(field) == i
#define FLT(k, field) else if (!strcmp(key, k)) ok = (field) == x
#define STR(k, s) else if (!strcmp(key, k)) ok = !strcmp((s), val)
		if (0)
			;
		STR("model_type", c->model_type);
		INT("vocab_size", c->vocab_size);
		INT("hidden", c->hidden);
		INT("n_layer", c->n_layer);
		INT("n_head", c->n_head);
		INT("n_kv_head", c->n_kv_head);
		INT("head_dim", c->head_dim);
		INT("intermediate", c->intermediate);
		INT("max_pos", c->max_pos);
		STR("norm", norms[c->norm]);
		FLT("norm_eps", c->norm_eps);
		STR("pos", poss[c->pos]);
		FLT("rope_theta", c->rope_theta);
		STR("rope_type", c->pos == TK_POS_ROPE ? ropes[c->rope.type] : "none");
		FLT("rope_factor", c->rope.factor);
		STR("mlp", mlps[c->mlp]);
		INT("attn_bias", c->attn_bias);
		INT("attn_out_bias", c->attn_out_bias);
		INT("mlp_bias", c->mlp_bias);
		INT("sliding_window", c->sliding_window);
		INT("tie_embeddings", c->tie_embeddings);
		FLT("initializer_range", c->initializer_range);
		INT("bos_id", c->bos_id);
		INT("eos_id", c->eos_id);
		INT("pad_id", c->pad_id);
		STR("torch_dtype", c->torch_dtype[0] ? c->torch_dtype : "-");
		INT("n_params", tk_config_n_params(c));
		/* Gemma's */
		FLT("norm_offset", c->norm_offset);
		FLT("embed_scale", c->embed_scale);
		INT("sandwich", c->sandwich_norm);
		INT("qk_norm", c->qk_norm);
		FLT("query_pre_attn_scalar", c->query_pre_attn_scalar);
		FLT("attn_softcap", c->attn_softcap);
		FLT("final_softcap", c->final_softcap);
		FLT("rope_local_theta", c->rope_local_theta);
		STR("windows", windows(c));
		else if (!strcmp(key, "rotary_dim")) /* Phi-3's files only */
			ok = c->rotary_dim == i, extra++;
		else ok = 0;
		if (!ok && !bad++)
			TT_CHECK(0, "%s (%s): %s should be %s", path, what, key, val);
	}
	fclose(f);
	TT_CHECK(n == 27 + extra || (n == 36 && c->sandwich_norm), "%s: %d keys", path, n);
	return bad;
}

static void test_fixtures_as_transformers_reads_them(void)
{
	const char *dir = tt_fixture("configs");
	char dirc[1024];
	snprintf(dirc, sizeof(dirc), "%s", dir);
	DIR *dp = opendir(dirc);
	TT_REQUIRE(dp, "%s", dirc);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(dp))) {
		size_t n = strlen(e->d_name);
		if (n < 6 || strcmp(e->d_name + n - 5, ".json"))
			continue;
		char path[2200], expect[2200], saved[2200];
		snprintf(path, sizeof(path), "%s/%s", dirc, e->d_name);
		snprintf(expect, sizeof(expect), "%s/%.*s.expect", dirc, (int)(n - 5), e->d_name);
		struct tk_model_config c, c2;
		int rc = tk_config_load(&c, path, &d);
		TT_CHECK(!rc, "%s: %s", d.path, d.msg);
		if (rc)
			continue;
		files++;
		check_expect(&c, expect, "read");
		/* saved by tk and read back: the same model */
		snprintf(saved, sizeof(saved), "%s/%s", tt_tmpdir(), e->d_name);
		rc = tk_config_save(&c, saved, NULL, 0, &d);
		TT_CHECK(!rc, "save %s: %s", e->d_name, d.msg);
		rc = rc ? rc : tk_config_load(&c2, saved, &d);
		TT_CHECK(!rc, "reload %s: %s", e->d_name, d.msg);
		if (!rc)
			check_expect(&c2, expect, "saved by tk");
	}
	closedir(dp);
	TT_CHECK(files >= 16, "%d configs", files);
}

static void test_directory_and_io(void)
{
	struct tk_model_config c;
	TT_CHECK(!tk_config_load(&c, tt_fixture("safetensors/sharded"), &d) &&
			 c.arch == TK_ARCH_GPT2 && c.hidden == 16,
		 "%s", d.msg);
	TT_CHECK(tk_config_load(&c, tmp("nope"), &d) == TK_E_IO && strstr(d.path, "nope/") == NULL &&
			 strstr(d.path, "nope"),
		 "%s %s", d.path, d.msg);
}

static void unsupported(const char *json, int want, const char *words)
{
	struct tk_model_config c;
	int rc = tk_config_parse(&c, json, "cfg.json", &d);
	TT_CHECK(rc == want, "%s: rc %d (%s)", json, rc, d.msg);
	TT_CHECK(!strcmp(d.path, "cfg.json"), "%s: path %s", json, d.path);
	TT_CHECK(strstr(d.msg, words) != NULL, "%s: '%s' lacks '%s'", json, d.msg, words);
}

static void test_unsupported_and_bad(void)
{
	const int U = TK_E_UNSUPPORTED, F = TK_E_FORMAT;
	unsupported("{\"model_type\": \"falcon\"}", U,
		    "model_type 'falcon' is not supported (tk reads gpt2, llama, mistral, qwen2, "
		    "qwen3, smollm3, phi3, gemma2, gemma3_text)");
	unsupported("{\"n_layer\": 2}", F,
		    "no model_type (tk reads gpt2, llama, mistral, qwen2, qwen3, smollm3, phi3, "
		    "gemma2, gemma3_text)");
	unsupported("{\"model_type\": \"gemma2\", \"use_bidirectional_attention\": true}", U,
		    "use_bidirectional_attention=true is not supported");
	unsupported("{\"model_type\": \"gemma2\", \"hidden_activation\": \"gelu\"}", U,
		    "hidden_activation 'gelu' (tk implements gelu_pytorch_tanh) is not supported");
	unsupported("{\"model_type\": \"gemma2\", \"num_hidden_layers\": 2, \"layer_types\": "
		    "[\"full_attention\", \"chunked_attention\"]}", U,
		    "layer_types entry 'chunked_attention'");
	unsupported("{\"model_type\": \"gemma2\", \"sliding_window\": null}", F,
		    "sliding_window is null but there are sliding_attention layers");
	unsupported("{\"model_type\": \"gemma2\", \"attn_logit_softcapping\": -1}", F,
		    "attn_logit_softcapping: expected a positive number");
	unsupported("{\"model_type\": \"gemma3_text\", \"rope_parameters\": {\"rope_type\": "
		    "\"default\"}}", F,
		    "rope_parameters: expected objects full_attention and sliding_attention");
	unsupported("{\"model_type\": \"gemma3_text\", \"rope_parameters\": {\"full_attention\": "
		    "{}, \"sliding_attention\": {\"rope_type\": \"linear\", \"factor\": 2}}}", U,
		    "rope_parameters.sliding_attention with a rope_type other than default");
	unsupported("{\"model_type\": \"gemma3\", \"text_config\": {}}", U,
		    "model_type 'gemma3' (Gemma-3 with its vision tower) is not supported: tk reads "
		    "the text model alone");
	unsupported("{\"model_type\": \"llama\", \"rope_scaling\": {\"rope_type\": \"su\", "
		    "\"factor\": 8.0}}",
		    U, "rope_scaling with rope_type 'su'");
	unsupported("{\"model_type\": \"qwen2\", \"rope_parameters\": {\"rope_type\": "
		    "\"proportional\", \"rope_theta\": 10000.0}}",
		    U, "rope_parameters with rope_type 'proportional'");
	/* the keys transformers reads for a scaling */
	unsupported("{\"model_type\": \"llama\", \"rope_scaling\": {\"rope_type\": \"llama3\", "
		    "\"factor\": 8.0}}",
		    F, "rope_scaling.low_freq_factor is missing (rope_type 'llama3' needs it)");
	unsupported("{\"model_type\": \"llama\", \"rope_scaling\": {\"type\": \"linear\"}}", F,
		    "rope_scaling.factor is missing (rope_type 'linear' needs it)");
	unsupported("{\"model_type\": \"llama\", \"rope_scaling\": {\"factor\": 2.0}}", F,
		    "rope_scaling: no rope_type");
	unsupported("{\"model_type\": \"llama\", \"rope_scaling\": {\"type\": \"dynamic\", "
		    "\"factor\": \"2\"}}",
		    F, "rope_scaling.factor: expected a positive number");
	unsupported("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, "
		    "\"rope_parameters\": {\"rope_type\": \"longrope\", \"long_factor\": [1, 2], "
		    "\"short_factor\": [1, 1]}}",
		    F, "rope long_factor and short_factor have 2 numbers, not head_dim / 2 = 8");
	unsupported("{\"model_type\": \"llama\", \"rope_parameters\": {\"rope_type\": "
		    "\"longrope\", \"long_factor\": [1, 2], \"short_factor\": [1]}}",
		    F, "long_factor and short_factor differ in length");
	unsupported("{\"model_type\": \"llama\", \"rope_parameters\": {\"rope_type\": \"yarn\", "
		    "\"factor\": 4, \"attention_factor\": 0}}",
		    F, "rope_parameters.attention_factor: expected a positive number");
	unsupported("{\"model_type\": \"qwen3\", \"num_hidden_layers\": 2, \"layer_types\": "
		    "[\"full_attention\", \"chunked_attention\"]}",
		    U, "layer_types entry 'chunked_attention' (tk implements");
	unsupported("{\"model_type\": \"smollm3\", \"num_hidden_layers\": 2, "
		    "\"no_rope_layers\": [1, 0, 1]}",
		    F, "no_rope_layers: expected a list of 2 zeros and ones (one per layer)");
	unsupported("{\"model_type\": \"smollm3\", \"num_hidden_layers\": 2, "
		    "\"no_rope_layers\": [1, 2]}",
		    F, "no_rope_layers: expected a list of 2 zeros and ones");
	unsupported("{\"model_type\": \"llama\", \"partial_rotary_factor\": 0.5}", U,
		    "partial_rotary_factor (tk implements it for phi3)");
	unsupported("{\"model_type\": \"qwen3\", \"rope_parameters\": {\"rope_type\": "
		    "\"default\", \"partial_rotary_factor\": 0.5}}", U,
		    "rope_parameters.partial_rotary_factor (tk implements it for phi3)");
	/* Phi-3: int(head_dim * factor) numbers of each head rotated, an even
	 * number; default and longrope only, as Phi3Config validates */
	unsupported("{\"model_type\": \"phi3\", \"hidden_size\": 48, \"num_attention_heads\": 4, "
		    "\"partial_rotary_factor\": 0.75}", U,
		    "partial_rotary_factor 0.75 rotates 9 of head_dim 12 (tk needs an even number");
	unsupported("{\"model_type\": \"phi3\", \"partial_rotary_factor\": 0}", F,
		    "partial_rotary_factor: expected a number above 0 and at most 1");
	unsupported("{\"model_type\": \"phi3\", \"partial_rotary_factor\": 1.5}", F,
		    "partial_rotary_factor: expected a number above 0 and at most 1");
	unsupported("{\"model_type\": \"phi3\", \"rope_scaling\": {\"type\": \"linear\", "
		    "\"factor\": 2.0}}", U,
		    "rope_scaling with rope_type 'linear' (tk implements default and longrope for "
		    "phi3");
	unsupported("{\"model_type\": \"phi3\", \"rope_scaling\": {\"type\": \"su\", "
		    "\"long_factor\": [1, 2], \"short_factor\": [1, 1]}}", F,
		    "rope_scaling.original_max_position_embeddings is missing");
	unsupported("{\"model_type\": \"phi3\", \"hidden_size\": 64, \"num_attention_heads\": 4, "
		    "\"partial_rotary_factor\": 0.5, \"rope_scaling\": {\"type\": \"longrope\", "
		    "\"long_factor\": [1, 2, 3, 4, 5, 6, 7, 8], \"short_factor\": [1, 1, 1, 1, 1, 1, "
		    "1, 1]}}", F,
		    "have 8 numbers, not the rotary dimension / 2 = 4");
	unsupported("{\"model_type\": \"gpt2\", \"scale_attn_by_inverse_layer_idx\": true}", U,
		    "scale_attn_by_inverse_layer_idx");
	unsupported("{\"model_type\": \"gpt2\", \"reorder_and_upcast_attn\": true}", U,
		    "reorder_and_upcast_attn");
	unsupported("{\"model_type\": \"gpt2\", \"add_cross_attention\": true}", U,
		    "add_cross_attention");
	unsupported("{\"model_type\": \"gpt2\", \"scale_attn_weights\": false}", U,
		    "scale_attn_weights");
	unsupported("{\"model_type\": \"gpt2\", \"activation_function\": \"relu\"}", U,
		    "activation_function 'relu'");
	unsupported("{\"model_type\": \"mistral\", \"hidden_act\": \"gelu\"}", U, "hidden_act 'gelu'");
	unsupported("{\"model_type\": \"qwen2\", \"layer_types\": [\"sliding_attention\"]}", F,
		    "layer_types: expected a list of 32 entries (one per layer)");
	unsupported("{\"model_type\": \"qwen2\", \"num_hidden_layers\": 2, \"layer_types\": "
		    "[\"full_attention\", \"sliding_attention\"]}",
		    F, "layer 1 is sliding_attention but there is no window");
	unsupported("{\"model_type\": \"qwen2\", \"use_sliding_window\": true, "
		    "\"sliding_window\": 0}",
		    F, "sliding_window: expected an integer from 1");
	unsupported("{\"model_type\": \"gpt2\", \"n_head\": \"12\"}", F, "n_head: expected an integer");
	unsupported("{\"model_type\": \"llama\", \"hidden_size\": 0}", F, "hidden_size");
	unsupported("{\"model_type\": \"llama\", \"vocab_size\": 1.5}", F, "vocab_size");
	unsupported("{\"model_type\": \"llama\", \"tie_word_embeddings\": 1}", F,
		    "tie_word_embeddings: expected true or false");
	unsupported("{\"model_type\": \"llama\", \"rms_norm_eps\": \"x\"}", F, "rms_norm_eps");
	unsupported("{\"model_type\": \"llama\", \"num_attention_heads\": 6, "
		    "\"num_key_value_heads\": 4, \"hidden_size\": 48}",
		    F, "not a multiple of num_key_value_heads 4");
	unsupported("{\"model_type\": \"gpt2\", \"n_embd\": 50, \"n_head\": 3}", F,
		    "n_embd 50 is not a multiple of n_head 3");
	unsupported("{\"model_type\": \"llama\", \"hidden_size\": 50, \"num_attention_heads\": 3}", F,
		    "and no head_dim");
	unsupported("{\"model_type\": \"llama\", \"eos_token_id\": [\"a\"]}", F, "eos_token_id");
	unsupported("[1]", F, "not a JSON object");
	unsupported("{\"model_type\": \"gpt2\",", F, "not JSON (parse error at byte");
	/* accepted: null defaults, a window that never matters, lists of eos ids */
	struct tk_model_config c;
	/* phi3's older "su": longrope, its original context from the rope
	 * parameters (Phi3Config renames the type after placing the key) */
	TT_CHECK(!tk_config_parse(&c,
				  "{\"model_type\": \"phi3\", \"hidden_size\": 64, "
				  "\"num_attention_heads\": 4, \"partial_rotary_factor\": 0.5, "
				  "\"original_max_position_embeddings\": 64, \"rope_scaling\": "
				  "{\"type\": \"su\", \"original_max_position_embeddings\": 16, "
				  "\"long_factor\": [1, 2, 3, 4], \"short_factor\": [1, 1, 1, 1]}}",
				  "p", &d),
		 "%s", d.msg);
	TT_CHECK(c.rope.type == TK_ROPE_LONGROPE && c.rope.orig_max_pos == 16 &&
			 c.rotary_dim == 8 && c.head_dim == 16 && c.fused && c.dropout[0] == 0,
		 "phi3 su: type %d, original %d, rotary %d", c.rope.type, c.rope.orig_max_pos,
		 c.rotary_dim);
	/* Phi3Attention and Phi3MLP have no biases whatever the config says;
	 * resid_pdrop and embd_pdrop are kept (tk-train warns of them) */
	TT_CHECK(!tk_config_parse(&c,
				  "{\"model_type\": \"phi3\", \"attention_bias\": true, "
				  "\"mlp_bias\": true, \"resid_pdrop\": 0.1, \"embd_pdrop\": 0.2}",
				  "p", &d),
		 "%s", d.msg);
	TT_CHECK(!c.attn_bias && !c.attn_out_bias && !c.mlp_bias && c.dropout[0] == 0.1f &&
			 c.dropout[1] == 0.2f && tk_config_max_dropout(&c) == 0.2f,
		 "phi3 biases %d %d, dropout %g %g", c.attn_bias, c.mlp_bias, c.dropout[0],
		 c.dropout[1]);
	/* longrope proper: the top-level key, else Phi3Config's 4096, wins */
	TT_CHECK(!tk_config_parse(&c,
				  "{\"model_type\": \"phi3\", \"max_position_embeddings\": 8192, "
				  "\"rope_scaling\": {\"type\": \"longrope\", "
				  "\"original_max_position_embeddings\": 16, \"long_factor\": [" 
				  "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
				  "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2], "
				  "\"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
				  "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
				  "1, 1, 1, 1, 1]}}",
				  "p", &d),
		 "%s", d.msg);
	TT_CHECK(c.rope.orig_max_pos == 4096 && c.rotary_dim == 96, "phi3 longrope: original %d",
		 c.rope.orig_max_pos);
	TT_CHECK(!tk_config_parse(&c,
				  "{\"model_type\": \"mistral\", \"sliding_window\": 4096, "
				  "\"max_position_embeddings\": 4096, \"num_key_value_heads\": null, "
				  "\"head_dim\": null, \"eos_token_id\": [7, 8], \"rope_scaling\": null}",
				  "m", &d),
		 "%s", d.msg);
	TT_CHECK(c.sliding_window == 0 && c.n_kv_head == 32 && c.head_dim == 128 && c.eos_id == 7,
		 "mistral");
	TT_CHECK(!tk_config_parse(&c, "{\"model_type\": \"llama\", \"head_dim\": 64, \"hidden_size\": "
				      "50, \"num_attention_heads\": 3}",
				  "m", &d) &&
			 c.head_dim == 64,
		 "%s", d.msg);
}

/* Values that make the forward pass invalid are refused at load, naming
 * the file and the key (they used to load and fail later, or overflow). */
static void test_invalid_values(void)
{
	const int F = TK_E_FORMAT;
	static const struct {
		const char *json, *words;
	} cases[] = {
		{ "\"rope_theta\": 0", "rope_theta: expected a positive number" },
		{ "\"rope_theta\": -10000", "rope_theta: expected a positive number" },
		{ "\"rope_theta\": 1e39", "rope_theta: expected a positive number that a float holds" },
		{ "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 0}",
		  "rope_parameters.rope_theta: expected a positive number" },
		{ "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1e300}",
		  "rope_parameters.rope_theta: expected a positive number that a float holds" },
		{ "\"rms_norm_eps\": 0", "rms_norm_eps: expected a positive number" },
		{ "\"rms_norm_eps\": -1e-6", "rms_norm_eps: expected a positive number" },
		{ "\"rms_norm_eps\": 1e-50", "rms_norm_eps: expected a positive number that a float" },
		{ "\"initializer_range\": 1e40", "initializer_range: expected a non-negative number" },
		{ "\"head_dim\": 0", "head_dim: expected an integer from 1 to 1024" },
		{ "\"head_dim\": 7, \"num_attention_heads\": 6, \"num_key_value_heads\": 2",
		  "head_dim 7 is odd (rotary positions need an even one)" },
		{ "\"hidden_size\": 54, \"num_attention_heads\": 6, \"num_key_value_heads\": 2",
		  "head_dim 9 is odd (rotary positions need an even one); it is hidden_size / "
		  "num_attention_heads" },
		{ "\"num_key_value_heads\": 0", "num_key_value_heads: expected an integer from 1" },
		{ "\"num_attention_heads\": 8, \"num_key_value_heads\": 16",
		  "num_attention_heads 8 is not a multiple of num_key_value_heads 16" },
		{ "\"vocab_size\": 0", "vocab_size: expected an integer from 1 to 4194304" },
		{ "\"vocab_size\": -5", "vocab_size: expected an integer" },
		{ "\"vocab_size\": 4194305", "vocab_size: expected an integer from 1 to 4194304" },
		{ "\"max_position_embeddings\": 0", "max_position_embeddings: expected an integer" },
		{ "\"max_position_embeddings\": 2.5", "max_position_embeddings: expected an integer" },
		{ "\"max_position_embeddings\": 1e300", "max_position_embeddings: expected an integer" },
		{ "\"hidden_size\": 1000000000", "hidden_size: expected an integer from 1 to 65536" },
		{ "\"hidden_size\": 65536, \"num_attention_heads\": 2",
		  "hidden_size / num_attention_heads is 32768, more than tk's limit of 1024" },
		{ "\"intermediate_size\": 262145", "intermediate_size: expected an integer from 1" },
		{ "\"num_hidden_layers\": 1025", "num_hidden_layers: expected an integer from 1 to 1024" },
		{ "\"num_attention_heads\": 1e9", "num_attention_heads: expected an integer" },
	};
	char json[512];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(json, sizeof(json), "{\"model_type\": \"%s\", %s}",
			 i % 2 ? "llama" : "qwen2", cases[i].json);
		unsupported(json, F, cases[i].words);
	}
	/* GPT-2: n_embd 1e9 computed 4 * n_embd in int (signed overflow) */
	unsupported("{\"model_type\": \"gpt2\", \"n_embd\": 1000000000}", F,
		    "n_embd: expected an integer from 1 to 65536");
	unsupported("{\"model_type\": \"gpt2\", \"layer_norm_epsilon\": 0}", F,
		    "layer_norm_epsilon: expected a positive number");
	unsupported("{\"model_type\": \"gpt2\", \"layer_norm_epsilon\": -1e-5}", F,
		    "layer_norm_epsilon: expected a positive number");
	unsupported("{\"model_type\": \"gpt2\", \"n_head\": 0}", F, "n_head: expected an integer");
	unsupported("{\"model_type\": \"gpt2\", \"n_inner\": 0}", F, "n_inner: expected an integer");
	unsupported("{\"model_type\": \"gpt2\", \"n_positions\": -1024}", F,
		    "n_positions: expected an integer");
	unsupported("{\"model_type\": \"gpt2\", \"n_embd\": 4096, \"n_head\": 2}", F,
		    "n_embd / n_head is 2048, more than tk's limit of 1024 per head");
	unsupported("{\"model_type\": \"gpt2\", \"resid_pdrop\": 1e39}", F,
		    "resid_pdrop: expected a non-negative number that a float holds");

	/* the limits themselves load, with every derived size in range */
	struct tk_model_config c;
	TT_CHECK(!tk_config_parse(&c, "{\"model_type\": \"gpt2\", \"n_embd\": 65536, \"n_head\": "
				      "64, \"vocab_size\": 4194304, \"n_layer\": 1024, "
				      "\"n_positions\": 16777216}", "m", &d),
		 "gpt2 at the limits: %s", d.msg);
	TT_CHECK(c.intermediate == 4 * 65536 && c.head_dim == 1024, "gpt2 at the limits");
	TT_CHECK(tk_config_n_params(&c) > (uint64_t)1 << 45, "n_params %llu",
		 (unsigned long long)tk_config_n_params(&c));
	TT_CHECK(!tk_config_parse(&c, "{\"model_type\": \"llama\", \"hidden_size\": 65536, "
				      "\"num_attention_heads\": 1024, \"num_key_value_heads\": 1024, "
				      "\"head_dim\": 1024, \"intermediate_size\": 262144, "
				      "\"rope_theta\": 1e30, \"rms_norm_eps\": 1e-30}", "m", &d),
		 "llama at the limits: %s", d.msg);
	/* through tk_config_load the path is the file's */
	const char *f = tmp("bad-config.json");
	FILE *fp = fopen(f, "w");
	TT_REQUIRE(fp, "%s", f);
	fputs("{\"model_type\": \"llama\", \"rope_theta\": 0}\n", fp);
	fclose(fp);
	TT_CHECK(tk_config_load(&c, f, &d) == F && !strcmp(d.path, f) &&
			 strstr(d.msg, "rope_theta"),
		 "load: %s: %s", d.path, d.msg);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static void test_save_layout_and_errors(void)
{
	struct tk_model_config c;
	TT_REQUIRE(!tk_config_load(&c, tt_fixture("configs/llama-gqa-bias.json"), &d), "%s", d.msg);
	const char *p = tmp("config.json");
	int rc = tk_config_save(&c, p, "{\"quantization_config\": {\"load_in_4bit\": true}, "
				       "\"use_cache\": false}",
				0, &d);
	TT_REQUIRE(!rc, "%s", d.msg);
	const char *s = slurp(p);
	TT_REQUIRE(s, "read");
	TT_CHECK(strstr(s, "{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n"), "%s", s);
	TT_CHECK(strstr(s, "\"rms_norm_eps\": 1e-05,\n"), "eps: %s", s);
	TT_CHECK(strstr(s, "\"initializer_range\": 0.02,\n"), "init");
	TT_CHECK(strstr(s, "\"rope_theta\": 500000.0"), "theta");
	TT_CHECK(strstr(s, "\"quantization_config\": {\n    \"load_in_4bit\": true\n  },\n"), "extra");
	TT_CHECK(strstr(s, "\"use_cache\": false,\n") && !strstr(s, "\"use_cache\": true"), "override");
	TT_CHECK(strstr(s, "\"pad_token_id\": null,\n"), "null");
	TT_CHECK(s[strlen(s) - 2] == '}' && s[strlen(s) - 1] == '\n', "final newline");
	/* keys sorted */
	const char *a = strstr(s, "\"architectures\""), *b = strstr(s, "\"vocab_size\"");
	TT_CHECK(a && b && a < strstr(s, "\"attention_bias\"") && b > strstr(s, "\"use_cache\""),
		 "order");
	/* refusals leave the existing file as it was and nothing else behind */
	char before[65536];
	snprintf(before, sizeof(before), "%s", s);
	rc = tk_config_save(&c, p, NULL, 0, &d);
	TT_CHECK(rc == TK_E_EXISTS && strstr(d.path, "config.json"), "exists %d", rc);
	rc = tk_config_save(&c, p, "[1]", 1, &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "not a JSON object"), "extra %d", rc);
	TT_CHECK(!strcmp(slurp(p), before), "file changed");
	rc = tk_config_save(&c, tmp("none/config.json"), NULL, 0, &d);
	TT_CHECK(rc == TK_E_IO && strstr(d.path, "none/config.json"), "no dir %d", rc);
	DIR *dp = opendir(tt_tmpdir());
	struct dirent *e;
	while (dp && (e = readdir(dp)))
		TT_CHECK(!strstr(e->d_name, ".tmp-"), "left %s", e->d_name);
	if (dp)
		closedir(dp);
	/* small and large floats in Python's repr style */
	c.norm_eps = 1e-6f;
	c.rope_theta = 1e20f;
	c.initializer_range = 0.1f;
	TT_REQUIRE(!tk_config_save(&c, p, NULL, 1, &d), "%s", d.msg);
	s = slurp(p);
	TT_CHECK(strstr(s, "\"rms_norm_eps\": 1e-06,") && strstr(s, "\"rope_theta\": 1e+20,") &&
			 strstr(s, "\"initializer_range\": 0.1,"),
		 "%s", s);
}

static int parity_mode(const char *dir)
{
	char in[1024];
	snprintf(in, sizeof(in), "%s/in", dir);
	DIR *dp = opendir(in);
	if (!dp) {
		perror(in);
		return 2;
	}
	struct dirent *e;
	int fail = 0;
	while ((e = readdir(dp))) {
		size_t n = strlen(e->d_name);
		if (n < 6 || strcmp(e->d_name + n - 5, ".json"))
			continue;
		char src[2200], dst[2200], np[2200];
		snprintf(src, sizeof(src), "%s/%s", in, e->d_name);
		snprintf(dst, sizeof(dst), "%s/out/%s", dir, e->d_name);
		snprintf(np, sizeof(np), "%s/out/%.*s.n_params", dir, (int)(n - 5), e->d_name);
		struct tk_model_config c;
		if (tk_config_load(&c, src, &d) || tk_config_save(&c, dst, NULL, 1, &d)) {
			printf("%s: %s\n", d.path, d.msg);
			fail = 1;
			continue;
		}
		FILE *f = fopen(np, "w");
		if (f) {
			fprintf(f, "%llu\n", (unsigned long long)tk_config_n_params(&c));
			fclose(f);
		}
	}
	closedir(dp);
	return fail;
}

/* Dropout keys: transformers' defaults, explicit values, and carried
 * through a save (tk applies no dropout, but a saved model keeps them). */
static void test_dropout_kept(void)
{
	struct tk_model_config c, back;
	TT_REQUIRE(tk_config_parse(&c, "{\"model_type\": \"gpt2\"}", "a.json", &d) == 0, "%s", d.msg);
	TT_CHECK(c.dropout[0] == 0.1f && c.dropout[1] == 0.1f && c.dropout[2] == 0.1f &&
			 tk_config_max_dropout(&c) == 0.1f, "gpt2 defaults");
	TT_REQUIRE(tk_config_parse(&c, "{\"model_type\": \"gpt2\", \"resid_pdrop\": 0, "
				   "\"embd_pdrop\": 0.25, \"attn_pdrop\": 0}", "b.json", &d) == 0,
		   "%s", d.msg);
	TT_CHECK(c.dropout[0] == 0 && c.dropout[1] == 0.25f && tk_config_max_dropout(&c) == 0.25f,
		 "gpt2 explicit");
	char path[600];
	snprintf(path, sizeof(path), "%s/dropout-config.json", tt_tmpdir());
	TT_REQUIRE(tk_config_save(&c, path, NULL, 1, &d) == 0, "%s", d.msg);
	TT_REQUIRE(tk_config_load(&back, path, &d) == 0, "%s", d.msg);
	TT_CHECK(back.dropout[1] == 0.25f && back.dropout[0] == 0, "not kept by save");
	TT_REQUIRE(tk_config_parse(&c, "{\"model_type\": \"llama\"}", "c.json", &d) == 0, "%s", d.msg);
	TT_CHECK(tk_config_max_dropout(&c) == 0, "llama default");
	TT_REQUIRE(tk_config_parse(&c, "{\"model_type\": \"qwen2\", \"attention_dropout\": 0.05}",
				   "d.json", &d) == 0, "%s", d.msg);
	TT_CHECK(c.dropout[2] == 0.05f, "attention_dropout");
	TT_REQUIRE(tk_config_save(&c, path, NULL, 1, &d) == 0, "%s", d.msg);
	TT_REQUIRE(tk_config_load(&back, path, &d) == 0, "%s", d.msg);
	TT_CHECK(back.dropout[2] == 0.05f, "attention_dropout not kept by save");
}

/* Which layers slide, as transformers' configuration classes derive it
 * (configuration_qwen2.py, _qwen3.py, _smollm3.py, _mistral.py of 5.x):
 * Qwen's layers from max_window_layers on when use_sliding_window, or
 * layer_types as given; SmolLM3's NoPE layers; every Mistral layer.
 * Saved and read back, the same windows. */
static void test_sliding_windows(void)
{
	static const struct {
		const char *json;
		int n, win[6];
	} cases[] = {
		{ "{\"model_type\": \"qwen2\", \"num_hidden_layers\": 5, \"use_sliding_window\": true, "
		  "\"sliding_window\": 7, \"max_window_layers\": 3}",
		  5, { 0, 0, 0, 7, 7 } },
		/* the default window 4096 and max_window_layers 28 of 30 layers */
		{ "{\"model_type\": \"qwen3\", \"num_hidden_layers\": 30, \"use_sliding_window\": "
		  "true}",
		  6, { 0, 0, 0, 0, 0, 0 } },
		/* not used: sliding_window is None, whatever max_window_layers */
		{ "{\"model_type\": \"qwen2\", \"num_hidden_layers\": 3, \"sliding_window\": 7, "
		  "\"max_window_layers\": 0}",
		  3, { 0, 0, 0 } },
		{ "{\"model_type\": \"qwen2\", \"num_hidden_layers\": 3, \"use_sliding_window\": true, "
		  "\"sliding_window\": 4, \"layer_types\": [\"sliding_attention\", \"full_attention\", "
		  "\"sliding_attention\"]}",
		  3, { 4, 0, 4 } },
		{ "{\"model_type\": \"smollm3\", \"num_hidden_layers\": 6, \"use_sliding_window\": "
		  "true, \"sliding_window\": 9}",
		  6, { 0, 0, 0, 9, 0, 0 } },
		/* SmolLM3 keeps sliding_window without use_sliding_window, and its
		 * eager mask applies it to the layers layer_types names */
		{ "{\"model_type\": \"smollm3\", \"num_hidden_layers\": 2, \"sliding_window\": 3, "
		  "\"layer_types\": [\"sliding_attention\", \"full_attention\"]}",
		  2, { 3, 0 } },
		{ "{\"model_type\": \"smollm3\", \"num_hidden_layers\": 4, \"sliding_window\": 3}",
		  4, { 0, 0, 0, 0 } },
		{ "{\"model_type\": \"mistral\", \"num_hidden_layers\": 2, \"sliding_window\": 16, "
		  "\"max_position_embeddings\": 64}",
		  2, { 16, 16 } },
	};
	char path[600];
	snprintf(path, sizeof(path), "%s/windows-config.json", tt_tmpdir());
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tk_model_config c, back;
		TT_REQUIRE(!tk_config_parse(&c, cases[i].json, "w.json", &d), "%zu: %s", i, d.msg);
		for (int l = 0; l < cases[i].n; l++)
			TT_CHECK(c.layer_window[l] == cases[i].win[l], "case %zu layer %d: window %d",
				 i, l, c.layer_window[l]);
		if (i == 1)
			TT_CHECK(c.layer_window[27] == 0 && c.layer_window[28] == 4096 &&
					 c.layer_window[29] == 4096,
				 "layers 28, 29 slide");
		TT_REQUIRE(!tk_config_save(&c, path, NULL, 1, &d), "%s", d.msg);
		TT_REQUIRE(!tk_config_load(&back, path, &d), "%zu reloaded: %s", i, d.msg);
		TT_CHECK(!memcmp(c.layer_window, back.layer_window, sizeof(c.layer_window)) &&
				 back.use_sliding_window == c.use_sliding_window &&
				 back.sliding_window == c.sliding_window,
			 "case %zu not kept by save", i);
	}
}

int main(void)
{
	const char *pd = getenv("TK_CONFIG_PARITY_DIR");
	if (pd)
		return parity_mode(pd);
	TT_RUN(test_fixtures_as_transformers_reads_them);
	TT_RUN(test_directory_and_io);
	TT_RUN(test_unsupported_and_bad);
	TT_RUN(test_invalid_values);
	TT_RUN(test_save_layout_and_errors);
	TT_RUN(test_dropout_kept);
	TT_RUN(test_sliding_windows);
	return tt_done();
}

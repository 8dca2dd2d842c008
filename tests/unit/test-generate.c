/* test-generate.c - the KV-cached inference pass (model/infer.h), decoding
 * (jobs/generate.h) and chat templates (text/chat.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "jobs/generate.h"
#include "tt.h"

static const char *const models[] = { "gpt2", "llama", "qwen2" };

static int load(struct tk_model *m, struct tk_backend *be, const char *name)
{
	char rel[256];
	struct tk_diag d;

	snprintf(rel, sizeof(rel), "models/%s", name);
	if (tk_backend_cpu_init(be, 1, &d))
		return -1;
	memset(m, 0, sizeof(*m));
	if (tk_model_load(m, tt_fixture(rel), be, &d)) {
		tk_backend_free(be);
		return -1;
	}
	return 0;
}

/* The logits of each step of a cached greedy decode against a fresh full
 * forward on the whole sequence so far. */
static void test_cache_matches_full_forward(void)
{
	static const uint32_t prompt[] = { 1, 50, 7, 7, 88, 3, 61, 12, 90, 44, 17 };
	int np = (int)(sizeof(prompt) / sizeof(prompt[0]));

	for (int mi = 0; mi < 3; mi++) {
		struct tk_model m;
		struct tk_backend be;
		struct tk_infer *s;
		struct tk_diag d;
		uint32_t seq[64];
		int n = np, V;
		float *a, *b;
		double worst = 0.0;

		TT_REQUIRE(load(&m, &be, models[mi]) == 0, "loading %s", models[mi]);
		V = m.cfg.vocab_size;
		a = malloc((size_t)V * sizeof(float));
		b = malloc((size_t)V * sizeof(float));
		TT_REQUIRE(tk_infer_new(&s, &m, 40, &d) == 0, "%s", d.msg);
		memcpy(seq, prompt, sizeof(prompt));
		TT_CHECK(tk_infer_feed(s, seq, n, a, &d) == 0, "%s", d.msg);
		for (int step = 0; step < 25 && !tt_failed_now; step++) {
			int best = 0;
			TT_CHECK(tk_model_forward(&m, seq, NULL, 1, n, 0, 0, NULL, &d) == 0, "%s",
				 d.msg);
			TT_CHECK(tk_model_logits(&m, n - 1, 1, b, &d) == 0, "%s", d.msg);
			for (int i = 0; i < V; i++) {
				double e = fabs((double)a[i] - (double)b[i]);
				if (e > worst)
					worst = e;
				if (a[i] > a[best])
					best = i;
			}
			TT_CHECK(worst <= 1e-5, "%s step %d: logits differ by %g", models[mi], step,
				 worst);
			seq[n++] = (uint32_t)best;
			TT_CHECK(tk_infer_feed(s, seq + n - 1, 1, a, &d) == 0, "%s", d.msg);
		}
		TT_CHECK(tk_infer_len(s) == n, "len %d, want %d", tk_infer_len(s), n);
		tk_infer_free(s);
		free(a);
		free(b);
		tk_model_free(&m);
		tk_backend_free(&be);
	}
}

/* Greedy continuations against transformers' generate(do_sample=False),
 * tests/parity/gen-generate-fixtures.py. */
/* Greedy generation of every case of fixture file (made by
 * tests/parity/gen-generate-fixtures.py) against transformers' generate();
 * the KV cache holds the longest case (past max_position_embeddings for
 * dynamic NTK, as transformers goes on). */
static void greedy_cases(const char *file, int want_cases)
{
	struct tk_buf buf = { 0 };
	struct tk_diag d;
	cJSON *j, *c;
	int ncase = 0;

	TT_REQUIRE(tk_read_file(tt_fixture(file), &buf, &d) == 0, "%s", d.msg);
	j = cJSON_Parse(buf.data);
	tk_buf_free(&buf);
	TT_REQUIRE(j, "bad JSON");
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
		const char *name = cJSON_GetObjectItem(c, "model")->valuestring;
		cJSON *p = cJSON_GetObjectItem(c, "prompt"), *o = cJSON_GetObjectItem(c, "output"), *it;
		struct tk_model m;
		struct tk_backend be;
		struct tk_infer *s;
		struct tk_generate_opts go;
		struct tk_ids out = { 0 };
		uint32_t prompt[64];
		int64_t eos[8];
		int np = 0, neos, k = 0, why;
		char dir[256];

		TT_REQUIRE(load(&m, &be, name) == 0, "loading %s", name);
		snprintf(dir, sizeof(dir), "models/%s", name);
		TT_REQUIRE(tk_generate_eos_ids(tt_fixture(dir), eos, 8, &neos, &d) == 0, "%s", d.msg);
		tk_generate_opts_init(&go);
		go.max_new_tokens = cJSON_GetObjectItem(c, "max_new_tokens")->valueint;
		if (cJSON_GetObjectItem(c, "repetition_penalty"))
			go.repetition_penalty =
				cJSON_GetObjectItem(c, "repetition_penalty")->valuedouble;
		go.eos = eos;
		go.n_eos = neos;
		cJSON_ArrayForEach(it, p) prompt[np++] = (uint32_t)it->valueint;
		int ctx = np + go.max_new_tokens > m.cfg.max_pos ? np + go.max_new_tokens
								 : m.cfg.max_pos;
		TT_REQUIRE(tk_infer_new(&s, &m, ctx, &d) == 0, "%s", d.msg);
		TT_CHECK(tk_generate(s, &go, prompt, np, NULL, NULL, &out, &why, &d) == 0, "%s",
			 d.msg);
		TT_CHECK(out.n == (size_t)cJSON_GetArraySize(o), "%s: %zu tokens, want %d", name,
			 out.n, cJSON_GetArraySize(o));
		cJSON_ArrayForEach(it, o) {
			TT_CHECK((size_t)k < out.n && out.v[k] == (uint32_t)it->valueint,
				 "%s case %d token %d: %u, want %d", name, ncase, k,
				 (size_t)k < out.n ? out.v[k] : 0, it->valueint);
			k++;
		}
		ncase++;
		tk_ids_free(&out);
		tk_infer_free(s);
		tk_model_free(&m);
		tk_backend_free(&be);
	}
	cJSON_Delete(j);
	TT_CHECK(ncase == want_cases, "%d cases", ncase);
}

static void test_greedy_matches_transformers(void)
{
	greedy_cases("generate/greedy.json", 18);
}

/* Qwen3, SmolLM3, Phi-3 (fused, partial rotary, LongRoPE), the rotary
 * scalings and Gemma-2/3, 40 tokens past an 11-token prompt: decoding
 * crosses the original context of 32, and Gemma's sliding layers keep to
 * windows of 5 and 4 in the KV cache; and dynamic NTK from a 40-token
 * prompt, past the context before the first new token */
static void test_greedy_families(void)
{
	greedy_cases("generate/greedy-families.json", 25);
}

static void test_eos_ids(void)
{
	struct tk_diag d;
	int64_t ids[4];
	int n;
	FILE *f;
	char dir[512], path[600];

	TT_REQUIRE(tk_generate_eos_ids(tt_fixture("models/llama"), ids, 4, &n, &d) == 0, "%s", d.msg);
	TT_CHECK(n == 1 && ids[0] == 2, "n %d id %lld", n, (long long)ids[0]);
	TT_REQUIRE(tk_generate_eos_ids(tt_fixture("models/qwen2"), ids, 4, &n, &d) == 0, "%s", d.msg);
	TT_CHECK(n == 0, "n %d", n);
	snprintf(dir, sizeof(dir), "%s/tk-gen-eos-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	TT_REQUIRE(mkdtemp(dir), "mkdtemp");
	snprintf(path, sizeof(path), "%s/generation_config.json", dir);
	f = fopen(path, "w");
	fputs("{\"eos_token_id\": [7, 9, 11]}", f);
	fclose(f);
	TT_CHECK(tk_generate_eos_ids(dir, ids, 4, &n, &d) == 0, "%s", d.msg);
	TT_CHECK(n == 3 && ids[0] == 7 && ids[1] == 9 && ids[2] == 11, "n %d", n);
	f = fopen(path, "w");
	fputs("{\"eos_token_id\": \"x\"}", f);
	fclose(f);
	TT_CHECK(tk_generate_eos_ids(dir, ids, 4, &n, &d) == TK_E_FORMAT, "accepted a string");
	TT_CHECK(strstr(d.msg, "eos_token_id"), "%s", d.msg);
	remove(path);
	rmdir(dir);
}

/* The processors on hand-made scores, against their definitions. */
static void test_processors(void)
{
	struct tk_generate_opts o;
	float s[6];
	uint32_t ctx[] = { 0, 1, 1 };

	tk_generate_opts_init(&o);
	/* repetition penalty, greedy: 2 / 2 = 1, -1 * 2 = -2, once per id */
	o.repetition_penalty = 2.0;
	memcpy(s, (float[]){ 2, -1, 1.5f, 0, 0, 0 }, sizeof(s));
	tk_generate_process(&o, s, 6, ctx, 3);
	TT_CHECK(s[0] == 1.0f && s[1] == -2.0f && s[2] == 1.5f, "%g %g %g", s[0], s[1], s[2]);
	TT_CHECK(tk_generate_pick(&o, s, 6, NULL) == 2, "greedy picked %u", tk_generate_pick(&o, s, 6, NULL));
	/* greedy leaves the warpers out */
	o.repetition_penalty = 1.0;
	o.top_k = 1;
	memcpy(s, (float[]){ 3, 2, 1, 0, 0, 0 }, sizeof(s));
	tk_generate_process(&o, s, 6, NULL, 0);
	TT_CHECK(s[1] == 2.0f, "top-k applied while greedy");
	/* top-k keeps ties with the k-th */
	o.do_sample = 1;
	o.top_k = 2;
	memcpy(s, (float[]){ 3, 2, 2, 1, 0, 2 }, sizeof(s));
	tk_generate_process(&o, s, 6, NULL, 0);
	TT_CHECK(s[0] == 3 && s[1] == 2 && s[2] == 2 && s[5] == 2 && isinf(s[3]) && isinf(s[4]),
		 "top-k");
	/* temperature divides */
	o.top_k = 0;
	o.temperature = 0.5;
	memcpy(s, (float[]){ 1, 2, 3, 4, 5, 6 }, sizeof(s));
	tk_generate_process(&o, s, 6, NULL, 0);
	TT_CHECK(s[0] == 2 && s[5] == 12, "temperature: %g %g", s[0], s[5]);
	/* top-p 0.5 on probabilities 0.4 0.3 0.2 0.1 (log scores): ascending
	 * cumulative 0.1 0.3 0.6 1.0, removed while <= 0.5: ids 3 and 2 */
	o.temperature = 1.0;
	o.top_p = 0.5;
	memcpy(s, (float[]){ logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f), -INFINITY, -INFINITY },
	       sizeof(s));
	tk_generate_process(&o, s, 6, NULL, 0);
	TT_CHECK(!isinf(s[0]) && !isinf(s[1]) && isinf(s[2]) && isinf(s[3]), "top-p");
	/* min-p 0.6: below 0.6 * 0.4 = 0.24 goes */
	o.top_p = 1.0;
	o.min_p = 0.6;
	memcpy(s, (float[]){ logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f), -INFINITY, -INFINITY },
	       sizeof(s));
	tk_generate_process(&o, s, 6, NULL, 0);
	TT_CHECK(!isinf(s[0]) && !isinf(s[1]) && isinf(s[2]) && isinf(s[3]), "min-p");
}

/* Sampling: reproducible for a seed, never a removed token, and drawn in
 * proportion to the probabilities. */
static void test_sampling(void)
{
	struct tk_generate_opts o;
	struct tk_rng r1, r2;
	float s[4] = { logf(0.5f), logf(0.25f), logf(0.25f), -INFINITY };
	int count[4] = { 0 }, same = 1;

	tk_generate_opts_init(&o);
	o.do_sample = 1;
	tk_rng_seed(&r1, 42);
	tk_rng_seed(&r2, 42);
	for (int i = 0; i < 40000; i++) {
		uint32_t a = tk_generate_pick(&o, s, 4, &r1), b = tk_generate_pick(&o, s, 4, &r2);
		same &= a == b;
		count[a]++;
	}
	TT_CHECK(same, "same seed, different draws");
	TT_CHECK(count[3] == 0, "drew a removed token");
	/* 40000 draws: standard deviation of the count of p = 0.5 is 100 */
	TT_CHECK(abs(count[0] - 20000) < 600 && abs(count[1] - 10000) < 600, "%d %d %d", count[0],
		 count[1], count[2]);
}

static void test_errors(void)
{
	struct tk_model m;
	struct tk_backend be;
	struct tk_infer *s;
	struct tk_diag d;
	float *lg;
	uint32_t ids[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, bad = 97;

	TT_REQUIRE(load(&m, &be, "gpt2") == 0, "loading");
	TT_CHECK(tk_infer_new(&s, &m, 65, &d) == TK_E_INVAL, "65 positions accepted");
	TT_CHECK(strstr(d.msg, "1..64"), "%s", d.msg);
	TT_REQUIRE(tk_infer_new(&s, &m, 6, &d) == 0, "%s", d.msg);
	lg = malloc(97 * sizeof(float));
	TT_CHECK(tk_infer_feed(s, ids, 7, lg, &d) == TK_E_INVAL, "7 tokens fit 6");
	TT_CHECK(tk_infer_feed(s, &bad, 1, lg, &d) == TK_E_INVAL, "id 97 accepted");
	TT_CHECK(strstr(d.msg, "vocab_size 97"), "%s", d.msg);
	TT_CHECK(tk_infer_len(s) == 0, "len %d", tk_infer_len(s));
	TT_CHECK(tk_infer_feed(s, ids, 6, lg, &d) == 0, "%s", d.msg);
	TT_CHECK(tk_infer_feed(s, ids, 1, lg, &d) == TK_E_INVAL, "overfilled");
	free(lg);
	tk_infer_free(s);
	tk_model_free(&m);
	tk_backend_free(&be);
}

/* Generation stops when the context is full and after an EOS id. */
static void test_stops(void)
{
	struct tk_model m;
	struct tk_backend be;
	struct tk_infer *s;
	struct tk_diag d;
	struct tk_generate_opts o;
	struct tk_ids out = { 0 };
	uint32_t p[] = { 10, 20, 30, 40 };
	int64_t eos = 49; /* gpt2's third greedy token after this prompt */
	int why;

	TT_REQUIRE(load(&m, &be, "gpt2") == 0, "loading");
	TT_REQUIRE(tk_infer_new(&s, &m, 8, &d) == 0, "%s", d.msg);
	tk_generate_opts_init(&o);
	o.max_new_tokens = 100;
	TT_CHECK(tk_generate(s, &o, p, 4, NULL, NULL, &out, &why, &d) == 0, "%s", d.msg);
	TT_CHECK(out.n == 5 && why == 2, "%zu tokens, why %d", out.n, why);
	out.n = 0;
	o.eos = &eos;
	o.n_eos = 1;
	TT_CHECK(tk_generate(s, &o, p, 4, NULL, NULL, &out, &why, &d) == 0, "%s", d.msg);
	TT_CHECK(out.n == 4 && why == 1 && out.v[3] == 49, "%zu tokens, why %d", out.n, why);
	tk_ids_free(&out);
	tk_infer_free(s);
	tk_model_free(&m);
	tk_backend_free(&be);
}

/* Three prompts of different lengths fed as spans of one pass, then decoded
 * together one token each, against each fed alone: same logits. */
static void test_batch_matches_single(void)
{
	static const uint32_t p0[] = { 5 }, p1[] = { 10, 20, 30, 40 },
			      p2[] = { 1, 50, 7, 7, 88, 3, 61, 12, 90, 44, 17 };
	const uint32_t *ps[3] = { p0, p1, p2 };
	int pn[3] = { 1, 4, 11 };

	for (int mi = 0; mi < 3; mi++) {
		struct tk_model m;
		struct tk_backend be;
		struct tk_infer *bs, *one[3];
		struct tk_infer_span sp[3];
		struct tk_diag d;
		float *lb, *l1;
		uint32_t next[3];
		double worst = 0.0;
		int V;

		TT_REQUIRE(load(&m, &be, models[mi]) == 0, "loading %s", models[mi]);
		V = m.cfg.vocab_size;
		lb = malloc(3 * (size_t)V * sizeof(float));
		l1 = malloc((size_t)V * sizeof(float));
		TT_REQUIRE(tk_infer_new_batch(&bs, &m, 3, 32, &d) == 0, "%s", d.msg);
		for (int k = 0; k < 3; k++) {
			TT_REQUIRE(tk_infer_new(&one[k], &m, 32, &d) == 0, "%s", d.msg);
			/* spans in another order than the slots */
			sp[k] = (struct tk_infer_span){ 2 - k, ps[2 - k], pn[2 - k] };
		}
		for (int step = 0; step < 12 && !tt_failed_now; step++) {
			TT_CHECK(tk_infer_feed_spans(bs, sp, 3, lb, &d) == 0, "%s", d.msg);
			for (int k = 0; k < 3; k++) {
				int q = sp[k].seq, best = 0;
				TT_CHECK(tk_infer_feed(one[q], sp[k].ids, sp[k].n, l1, &d) == 0, "%s",
					 d.msg);
				for (int i = 0; i < V; i++) {
					double e = fabs((double)lb[(size_t)k * V + i] - (double)l1[i]);
					worst = e > worst ? e : worst;
					if (l1[i] > l1[best])
						best = i;
				}
				next[q] = (uint32_t)best;
				sp[k] = (struct tk_infer_span){ q, &next[q], 1 };
			}
		}
		TT_CHECK(worst <= 1e-5, "%s: batched logits differ by %g", models[mi], worst);
		for (int k = 0; k < 3; k++) {
			TT_CHECK(tk_infer_seq_len(bs, k) == pn[k] + 11, "seq %d len %d", k,
				 tk_infer_seq_len(bs, k));
			tk_infer_free(one[k]);
		}
		/* a sequence twice in one pass, and a bad slot */
		sp[1].seq = sp[0].seq;
		TT_CHECK(tk_infer_feed_spans(bs, sp, 2, lb, &d) == TK_E_INVAL, "repeated seq");
		sp[1].seq = 3;
		TT_CHECK(tk_infer_feed_spans(bs, sp, 2, lb, &d) == TK_E_INVAL, "slot 3 of 3");
		tk_infer_free(bs);
		free(lb);
		free(l1);
		tk_model_free(&m);
		tk_backend_free(&be);
	}
}

/* tk_generate_batch gives each sequence what tk_generate gives it alone,
 * greedy and sampling (a seed per sequence), with different lengths. */
static void test_generate_batch(void)
{
	static const uint32_t p0[] = { 5 }, p1[] = { 10, 20, 30, 40 };
	struct tk_model m;
	struct tk_backend be;
	struct tk_infer *bs, *one;
	struct tk_diag d;
	struct tk_generate_opts o;
	struct tk_generate_seq q[4];

	TT_REQUIRE(load(&m, &be, "llama") == 0, "loading");
	TT_REQUIRE(tk_infer_new_batch(&bs, &m, 4, 64, &d) == 0, "%s", d.msg);
	TT_REQUIRE(tk_infer_new(&one, &m, 64, &d) == 0, "%s", d.msg);
	for (int sample = 0; sample < 2; sample++) {
		tk_generate_opts_init(&o);
		o.do_sample = sample;
		o.max_new_tokens = 9;
		for (int i = 0; i < 4; i++)
			q[i] = (struct tk_generate_seq){ .prompt = i & 1 ? p1 : p0, .n_prompt = i & 1 ? 4 : 1,
						    .max_new_tokens = i == 2 ? 3 : -1,
						    .seed = 100 + (uint64_t)i };
		TT_CHECK(tk_generate_batch(bs, &o, q, 4, NULL, NULL, &d) == 0, "%s", d.msg);
		for (int i = 0; i < 4; i++) {
			struct tk_ids out = { 0 };
			struct tk_generate_opts o1 = o;
			int why;

			o1.seed = q[i].seed;
			o1.max_new_tokens = i == 2 ? 3 : 9;
			TT_CHECK(tk_generate(one, &o1, q[i].prompt, q[i].n_prompt, NULL, NULL, &out,
					     &why, &d) == 0, "%s", d.msg);
			TT_CHECK(out.n == q[i].out.n && !memcmp(out.v, q[i].out.v, out.n * 4),
				 "sample %d seq %d: batch differs from alone", sample, i);
			TT_CHECK(why == q[i].why && why == 0, "why %d %d", why, q[i].why);
			for (size_t k = 0; k < q[i].out.n; k++)
				TT_CHECK(q[i].logprobs[k] <= 0.0f, "logprob %g", q[i].logprobs[k]);
			tk_ids_free(&out);
			tk_generate_seq_free(&q[i]);
		}
	}
	TT_CHECK(tk_generate_batch(bs, &o, q, 5, NULL, NULL, &d) == TK_E_INVAL, "5 of 4 seqs");
	tk_infer_free(bs);
	tk_infer_free(one);
	tk_model_free(&m);
	tk_backend_free(&be);
}

static void test_logprob(void)
{
	float s[4] = { logf(0.5f), logf(0.25f), logf(0.25f), -INFINITY };

	TT_CHECK(fabsf(tk_generate_logprob(s, 4, 0) - logf(0.5f)) < 1e-6f, "%g",
		 tk_generate_logprob(s, 4, 0));
	TT_CHECK(isinf(tk_generate_logprob(s, 4, 3)), "removed token");
	s[0] += 3.0f, s[1] += 3.0f, s[2] += 3.0f; /* shift invariant */
	TT_CHECK(fabsf(tk_generate_logprob(s, 4, 1) - logf(0.25f)) < 1e-6f, "%g",
		 tk_generate_logprob(s, 4, 1));
}

/* Text prompts, plain and through the chat template, against
 * transformers (tests/fixtures/generate/text.json): the rendered chat, the
 * prompt ids, the greedy ids, their log-probabilities and the text. */
static void test_text_models(void)
{
	struct tk_buf buf = { 0 };
	struct tk_diag d;
	cJSON *j, *c, *it;
	int ncase = 0;
	double worst = 0.0;

	TT_REQUIRE(tk_read_file(tt_fixture("generate/text.json"), &buf, &d) == 0, "%s", d.msg);
	j = cJSON_Parse(buf.data);
	tk_buf_free(&buf);
	TT_REQUIRE(j, "bad JSON");
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
		const char *name = cJSON_GetObjectItem(c, "model")->valuestring;
		const char *text = cJSON_GetObjectItem(c, "prompt")->valuestring;
		cJSON *sys = cJSON_GetObjectItem(c, "system"), *ren = cJSON_GetObjectItem(c, "rendered");
		struct tk_model m = { 0 };
		struct tk_backend be;
		struct tk_infer *s;
		struct tk_generate_opts go;
		struct tk_generate_seq q = { .max_new_tokens = -1 };
		struct tk_chat chat;
		struct tk_ids ids = { 0 };
		struct tk_buf r = { 0 }, dec = { 0 };
		tk_tokenizer_t *tok;
		tk_encoder_t *enc;
		int64_t eos[8];
		int k = 0;
		char dir[256];

		snprintf(dir, sizeof(dir), "generate/%s", name);
		TT_REQUIRE(tk_backend_cpu_init(&be, 1, &d) == 0, "%s", d.msg);
		TT_REQUIRE(tk_model_load(&m, tt_fixture(dir), &be, &d) == 0, "%s", d.msg);
		TT_REQUIRE(tk_tokenizer_load(&tok, tt_fixture(dir), &d) == 0, "%s", d.msg);
		TT_REQUIRE(tk_encoder_new(tok, &enc) == 0, "encoder");
		if (cJSON_IsString(ren)) {
			TT_REQUIRE(tk_chat_load(&chat, tt_fixture(dir), &d) == 0, "%s", d.msg);
			TT_CHECK(tk_chat_render(&chat, cJSON_IsString(sys) ? sys->valuestring : NULL,
						text, &r, &d) == 0, "render: %s", d.msg);
			TT_CHECK(r.len == strlen(ren->valuestring) && !strcmp(r.data, ren->valuestring),
				 "%s chat: '%s', want '%s'", name, r.data, ren->valuestring);
			TT_CHECK(tk_encode(enc, r.data, r.len, 0, &ids) == 0, "encode");
			tk_chat_free(&chat);
		} else {
			TT_CHECK(tk_encode(enc, text, strlen(text), TK_ENCODE_ADD_SPECIAL, &ids) == 0,
				 "encode");
		}
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(c, "prompt_ids")) {
			TT_CHECK((size_t)k < ids.n && ids.v[k] == (uint32_t)it->valueint,
				 "%s case %d prompt id %d", name, ncase, k);
			k++;
		}
		TT_CHECK((size_t)k == ids.n, "%s case %d: %zu prompt ids, want %d", name, ncase,
			 ids.n, k);
		tk_generate_opts_init(&go);
		go.max_new_tokens = cJSON_GetObjectItem(c, "max_new_tokens")->valueint;
		go.repetition_penalty = cJSON_GetObjectItem(c, "repetition_penalty")->valuedouble;
		TT_REQUIRE(tk_generate_eos_ids(tt_fixture(dir), eos, 8, &go.n_eos, &d) == 0, "%s", d.msg);
		go.eos = eos;
		q.prompt = ids.v;
		q.n_prompt = (int)ids.n;
		TT_REQUIRE(tk_infer_new(&s, &m, m.cfg.max_pos, &d) == 0, "%s", d.msg);
		TT_CHECK(tk_generate_batch(s, &go, &q, 1, NULL, NULL, &d) == 0, "%s", d.msg);
		k = 0;
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(c, "output")) {
			TT_CHECK((size_t)k < q.out.n && q.out.v[k] == (uint32_t)it->valueint,
				 "%s case %d token %d", name, ncase, k);
			k++;
		}
		TT_CHECK((size_t)k == q.out.n, "%s case %d: %zu tokens, want %d", name, ncase,
			 q.out.n, k);
		k = 0;
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(c, "logprobs")) {
			if ((size_t)k < q.out.n) {
				double e = fabs(q.logprobs[k] - it->valuedouble);
				worst = e > worst ? e : worst;
			}
			k++;
		}
		TT_CHECK(tk_decode(tok, q.out.v, q.out.n, 1, &dec) == 0, "decode");
		TT_CHECK(!strcmp(dec.data ? dec.data : "", cJSON_GetObjectItem(c, "text")->valuestring),
			 "%s case %d text '%s'", name, ncase, dec.data);
		ncase++;
		tk_buf_free(&r);
		tk_buf_free(&dec);
		tk_ids_free(&ids);
		tk_generate_seq_free(&q);
		tk_infer_free(s);
		tk_encoder_free(enc);
		tk_tokenizer_free(tok);
		tk_model_free(&m);
		tk_backend_free(&be);
	}
	cJSON_Delete(j);
	TT_CHECK(ncase == 54, "%d cases", ncase);
	TT_CHECK(worst <= 1e-4, "log-probabilities differ by %g", worst);
}

/* Conversations of several turns against apply_chat_template
 * (tests/fixtures/generate/chat-msgs.json, gen-chat-fixtures.py): the
 * rendered text and its ids; and Llama-2's turn order enforced. */
static void test_chat_messages(void)
{
	struct tk_buf buf = { 0 };
	struct tk_diag d;
	cJSON *j, *c, *it;
	int ncase = 0;

	TT_REQUIRE(tk_read_file(tt_fixture("generate/chat-msgs.json"), &buf, &d) == 0, "%s",
		   d.msg);
	j = cJSON_Parse(buf.data);
	tk_buf_free(&buf);
	TT_REQUIRE(j, "bad JSON");
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
		const char *name = cJSON_GetObjectItem(c, "model")->valuestring;
		const char *want = cJSON_GetObjectItem(c, "rendered")->valuestring;
		struct tk_chat_msg m[8];
		struct tk_chat chat;
		struct tk_buf r = { 0 };
		struct tk_ids ids = { 0 };
		tk_tokenizer_t *tok;
		tk_encoder_t *enc;
		char dir[256];
		int n = 0, k = 0;

		cJSON_ArrayForEach(it, cJSON_GetObjectItem(c, "messages")) {
			TT_REQUIRE(n < 8, "too many messages");
			m[n].role = cJSON_GetObjectItem(it, "role")->valuestring;
			m[n++].content = cJSON_GetObjectItem(it, "content")->valuestring;
		}
		snprintf(dir, sizeof(dir), "generate/%s", name);
		TT_REQUIRE(tk_chat_load(&chat, tt_fixture(dir), &d) == 0, "%s", d.msg);
		TT_CHECK(tk_chat_render_msgs(&chat, m, n, &r, &d) == 0, "%s", d.msg);
		TT_CHECK(r.len == strlen(want) && !strcmp(r.data, want), "%s case %d: '%s', want '%s'",
			 name, ncase, r.data, want);
		TT_REQUIRE(tk_tokenizer_load(&tok, tt_fixture(dir), &d) == 0, "%s", d.msg);
		TT_REQUIRE(tk_encoder_new(tok, &enc) == 0, "encoder");
		TT_CHECK(tk_encode(enc, r.data, r.len, 0, &ids) == 0, "encode");
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(c, "ids")) {
			TT_CHECK((size_t)k < ids.n && ids.v[k] == (uint32_t)it->valueint,
				 "%s case %d id %d", name, ncase, k);
			k++;
		}
		TT_CHECK((size_t)k == ids.n, "%s case %d: %zu ids, want %d", name, ncase, ids.n, k);
		/* for training: no generation prompt, and the assistant spans from
		 * tk's training variants (the spans are checked through tk-tokenize's
		 * masks, tests/cli/tk-tokenize/chat-messages.sh) */
		const char *plain = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "train"),
							"rendered")->valuestring;
		cJSON *msgs = cJSON_GetObjectItem(c, "messages");
		size_t *spans = NULL;
		int ns = -1;
		r.len = 0;
		TT_CHECK(tk_chat_apply(&chat, msgs, NULL, NULL, 0, &r, &spans, &ns, &d) == 0, "%s",
			 d.msg);
		TT_CHECK(r.len == strlen(plain) && !strcmp(r.data, plain),
			 "%s case %d for training: '%s', want '%s'", name, ncase, r.data, plain);
		for (int q = 0; q < ns; q++)
			TT_CHECK(spans[2 * q] < spans[2 * q + 1] && spans[2 * q + 1] <= r.len,
				 "%s case %d span %d", name, ncase, q);
		free(spans);
		ncase++;
		tk_ids_free(&ids);
		tk_buf_free(&r);
		tk_encoder_free(enc);
		tk_tokenizer_free(tok);
		tk_chat_free(&chat);
	}
	cJSON_Delete(j);
	TT_CHECK(ncase == 12, "%d cases", ncase);
}

/* Chat templates: missing, outside tk's subset, and from
 * chat_template.jinja with the special tokens of tokenizer_config.json. */
static void test_chat_errors(void)
{
	struct tk_chat c;
	struct tk_diag d;
	struct tk_buf r = { 0 };
	char dir[512], path[600];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/tk-gen-chat-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	TT_REQUIRE(mkdtemp(dir), "mkdtemp");
	TT_CHECK(tk_chat_load(&c, dir, &d) == TK_E_FORMAT, "no template accepted");
	TT_CHECK(strstr(d.msg, "no chat template"), "%s", d.msg);
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	f = fopen(path, "w");
	fputs("{\"chat_template\": \"{{ bos_token }}\\n{% include 'x' %}\", \"bos_token\": \"<s>\"}", f);
	fclose(f);
	TT_CHECK(tk_chat_load(&c, dir, &d) == TK_E_UNSUPPORTED, "{%% include %%} accepted");
	TT_CHECK(strstr(d.path, "tokenizer_config.json") &&
		 strstr(d.msg, "line 2: unsupported tag 'include'"), "%s: %s", d.path, d.msg);
	f = fopen(path, "w");
	fputs("{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": null}", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
	f = fopen(path, "w");
	fputs("{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}|{% endfor %}"
	      "{{ eos_token is defined }}", f);
	fclose(f);
	TT_REQUIRE(tk_chat_load(&c, dir, &d) == 0, "%s", d.msg);
	TT_CHECK(!strcmp(c.bos, "<s>") && !strcmp(c.eos, ""), "bos %s eos %s", c.bos, c.eos);
	TT_CHECK(tk_chat_render(&c, NULL, " hi ", &r, &d) == 0 && !strcmp(r.data, "<s>user: hi |False"),
		 "%s", r.data);
	tk_buf_free(&r);
	tk_chat_free(&c);
	remove(path);
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	remove(path);
	rmdir(dir);
}

int main(void)
{
	TT_RUN(test_cache_matches_full_forward);
	TT_RUN(test_greedy_matches_transformers);
	TT_RUN(test_greedy_families);
	TT_RUN(test_eos_ids);
	TT_RUN(test_processors);
	TT_RUN(test_sampling);
	TT_RUN(test_errors);
	TT_RUN(test_stops);
	TT_RUN(test_batch_matches_single);
	TT_RUN(test_generate_batch);
	TT_RUN(test_logprob);
	TT_RUN(test_text_models);
	TT_RUN(test_chat_messages);
	TT_RUN(test_chat_errors);
	return tt_done();
}

/* tk-generate - continues prompts with a model (see man/tk-generate.1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "generate.h"
#include "tokenizer.h"

static const char *const usage[] = {
	"tk-generate --model DIR [OPTIONS] [PROMPT...]",
	"tk-generate --model DIR --prompt-ids IDS [OPTIONS]",
	NULL,
};

static const char about[] =
	"Continues each PROMPT (or each line of stdin) with the model, as transformers' generate() "
	"does: greedy unless --do-sample.  The continuation streams to stdout, one line per prompt.";

static struct {
	const char *model, *tokenizer, *prompt_ids, *truncate;
	struct tk_strlist stop;
	double temperature, top_p, min_p, rep;
	long long top_k, max_new, seed, threads;
	int do_sample, ids, quiet;
} a = { .truncate = "no", .temperature = 1, .top_p = 1, .rep = 1, .top_k = 50, .max_new = 20 };

static const struct tk_opt opts[] = {
	TK_OPT_STR(0, "model", &a.model, "DIR", "the Hugging Face model directory"),
	TK_OPT_STR(0, "tokenizer", &a.tokenizer, "PATH", "tokenizer (default: the model's)"),
	TK_OPT_STR(0, "prompt-ids", &a.prompt_ids, "IDS", "one prompt as token ids: \"1 2 3\""),
	TK_OPT_BOOL(0, "ids", &a.ids, "print the generated token ids instead of text"),
	TK_OPT_INT(0, "max-new-tokens", &a.max_new, "N", 0, 1 << 30, "tokens to generate (20)"),
	TK_OPT_BOOL(0, "do-sample", &a.do_sample, "sample instead of greedy decoding"),
	TK_OPT_DOUBLE(0, "temperature", &a.temperature, "T", 1e-6, 1e6, "(1.0)"),
	TK_OPT_INT(0, "top-k", &a.top_k, "K", 0, 1 << 30, "0: off (50)"),
	TK_OPT_DOUBLE(0, "top-p", &a.top_p, "P", 1e-9, 1, "(1.0: off)"),
	TK_OPT_DOUBLE(0, "min-p", &a.min_p, "P", 0, 1, "(0: off)"),
	TK_OPT_DOUBLE(0, "repetition-penalty", &a.rep, "R", 1e-6, 1e6, "(1.0: off)"),
	TK_OPT_INT(0, "seed", &a.seed, "S", 0, 9e18, "seed of tk's sampler (0)"),
	TK_OPT_LIST(0, "stop", &a.stop, "TEXT", "stop after this text (repeatable)"),
	TK_OPT_CHOICE(0, "truncate", &a.truncate, "no|left|right",
		      "cut a prompt longer than the context on this side (no: error)"),
	TK_OPT_INT(0, "threads", &a.threads, "N", 0, 4096, "CPU threads (0: one per core)"),
	TK_OPT_BOOL('q', "quiet", &a.quiet, "no progress on stderr"),
	TK_OPT_HELP(),
	TK_OPT_END,
};

/* Streaming state of one continuation. */
struct stream {
	tk_tokenizer_t *tok;
	struct tk_ids gen;
	size_t shown;  /* bytes of the decoded continuation already printed */
	int failed;
};

/* Prints the complete characters decoded so far; stops at a --stop text. */
static int on_token(void *ctx, uint32_t id)
{
	struct stream *s = ctx;
	struct tk_buf b = { 0 };
	size_t end;
	int stop = 0;

	if (a.ids) {
		printf("%s%u", s->gen.n ? " " : "", id);
		fflush(stdout);
		return tk_ids_push(&s->gen, id) ? (s->failed = 1) : 0;
	}
	if (tk_ids_push(&s->gen, id) || tk_decode(s->tok, s->gen.v, s->gen.n, 1, &b))
		return s->failed = 1;
	end = tk_utf8_valid(b.data, b.len);
	for (int i = 0; i < a.stop.n; i++) {
		const char *hit = b.len ? memmem(b.data, b.len, a.stop.v[i], strlen(a.stop.v[i])) : NULL;
		if (hit && (size_t)(hit - b.data) + strlen(a.stop.v[i]) <= b.len) {
			end = (size_t)(hit - b.data) + strlen(a.stop.v[i]);
			stop = 1;
		}
	}
	if (end > s->shown)
		fwrite(b.data + s->shown, 1, end - s->shown, stdout);
	s->shown = end > s->shown ? end : s->shown;
	fflush(stdout);
	tk_buf_free(&b);
	return stop;
}

static int parse_ids(const char *text, struct tk_ids *out)
{
	char *end;
	for (const char *p = text; *p;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (!*p)
			break;
		unsigned long long v = strtoull(p, &end, 10);
		if (end == p || v > UINT32_MAX || *p == '-')
			return tk_cli_usage_error("--prompt-ids: '%s' is not a list of token ids", text);
		tk_ids_push(out, (uint32_t)v);
		p = end;
	}
	return out->n ? 0 : tk_cli_usage_error("--prompt-ids: no token ids");
}

/* Encodes, checks the length, generates and prints one prompt. */
static int run_one(struct tk_infer *s, tk_tokenizer_t *tok, tk_encoder_t *enc,
		   const struct tk_gen_opts *go, const char *text, struct tk_ids *p)
{
	struct tk_diag d;
	struct stream st = { .tok = tok };
	struct tk_ids out = { 0 };
	int max = tk_infer_max_len(s), rc;

	if (text) {
		if (!*text)
			return tk_cli_error("empty prompt");
		if (tk_utf8_valid(text, strlen(text)) != strlen(text))
			return tk_cli_error("the prompt is not valid UTF-8");
		if ((rc = tk_encode(enc, text, strlen(text), TK_ENCODE_ADD_SPECIAL, p)))
			return tk_cli_error("cannot encode the prompt: %s", tk_strerror(rc));
	}
	if (p->n > (size_t)max) {
		if (!strcmp(a.truncate, "no"))
			return tk_cli_error("the prompt has %zu tokens, more than the model's context "
					    "of %d (use --truncate left|right)", p->n, max);
		if (!strcmp(a.truncate, "left"))
			memmove(p->v, p->v + (p->n - (size_t)max), (size_t)max * sizeof(uint32_t));
		p->n = (size_t)max;
	}
	rc = tk_generate(s, go, p->v, (int)p->n, on_token, &st, &out, NULL, &d);
	tk_ids_free(&out);
	tk_ids_free(&st.gen);
	putchar('\n');
	if (rc)
		return tk_cli_fail(rc, &d);
	if (st.failed)
		return tk_cli_error("cannot decode the output");
	return fflush(stdout) ? tk_cli_error("<stdout>: write failed") : 0;
}

int main(int argc, char **argv)
{
	tk_cli_init(argv[0]);
	int npos, exit_now, ec = tk_cli_parse(argc, argv, opts, usage, about, &npos, &exit_now);
	if (exit_now)
		return ec;
	if (!a.model)
		return tk_cli_usage_error("--model is required");
	if (a.prompt_ids && npos)
		return tk_cli_usage_error("--prompt-ids and PROMPT arguments do not go together");
	struct tk_diag d;
	struct tk_backend be;
	struct tk_model m = { 0 };
	tk_tokenizer_t *tok = NULL;
	tk_encoder_t *enc = NULL;
	struct tk_infer *s = NULL;
	struct tk_ids p = { 0 };
	int64_t eos[64];
	struct tk_gen_opts go;
	int rc = tk_backend_cpu_init(&be, (int)a.threads, &d);
	if (rc)
		return tk_cli_fail(rc, &d);
	if ((rc = tk_model_load(&m, a.model, &be, &d)) ||
	    (rc = tk_gen_eos_ids(a.model, eos, 64, &go.n_eos, &d)) ||
	    (!(a.prompt_ids && a.ids) && (rc = tk_tokenizer_load(&tok, a.tokenizer ? a.tokenizer
										 : a.model, &d))) ||
	    (tok && (rc = tk_encoder_new(tok, &enc))) ||
	    (rc = tk_infer_new(&s, &m, m.cfg.max_pos, &d))) {
		ec = tk_cli_fail(rc == TK_E_INVAL ? TK_E_FORMAT : rc, &d);
		goto out;
	}
	int n_eos = go.n_eos;
	tk_gen_opts_init(&go);
	go.eos = eos;
	go.n_eos = n_eos;
	go.do_sample = a.do_sample;
	go.temperature = a.temperature;
	go.top_k = (int)a.top_k;
	go.top_p = a.top_p;
	go.min_p = a.min_p;
	go.repetition_penalty = a.rep;
	go.max_new_tokens = (int)a.max_new;
	go.seed = (uint64_t)a.seed;
	if (a.prompt_ids) {
		if ((ec = parse_ids(a.prompt_ids, &p)))
			goto out;
		ec = run_one(s, tok, enc, &go, NULL, &p);
	}
	for (int i = 0; i < npos && !ec; i++, p.n = 0)
		ec = run_one(s, tok, enc, &go, argv[i], &p);
	if (!a.prompt_ids && !npos) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t len;
		while (!ec && (len = getline(&line, &cap, stdin)) > 0) {
			if (line[len - 1] == '\n')
				line[len - 1] = 0;
			p.n = 0;
			ec = run_one(s, tok, enc, &go, line, &p);
		}
		free(line);
	}
out:
	tk_ids_free(&p);
	tk_infer_free(s);
	tk_encoder_free(enc);
	tk_tokenizer_free(tok);
	tk_model_free(&m);
	tk_backend_free(&be);
	return ec;
}

/* tk-generate - continues prompts with a model (see man/tk-generate.1). */
#include <errno.h>
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "jobs/cli.h"
#include "model/peft.h"
#include "jobs/generate.h"
#include "text/tokenizer.h"

static const char *const usage[] = {
	"tk-generate --model DIR [OPTIONS] [PROMPT...]",
	"tk-generate --model DIR [OPTIONS] --prompt-file FILE",
	"tk-generate --model DIR --prompt-ids IDS [OPTIONS]",
	NULL,
};

static const char about[] =
	"Continues each PROMPT (or each prompt of --prompt-file or stdin: a line of text, or a JSONL "
	"line with a \"prompt\" string or a \"messages\" conversation) with the model, as transformers' generate() does: greedy "
	"unless --do-sample.  Text streams to stdout, one line per sequence.";

enum truncate { TRUNCATE_NO = 0, TRUNCATE_LEFT, TRUNCATE_RIGHT };

static const struct tk_opt_choice truncates[] = {
	{ "no", TRUNCATE_NO }, { "left", TRUNCATE_LEFT }, { "right", TRUNCATE_RIGHT }, { NULL, 0 },
};

static const struct tk_opt_choice cache_types[] = {
	{ "f32", TK_CACHE_F32 }, { "bf16", TK_CACHE_BF16 }, { NULL, 0 },
};

static struct {
	const char *model, *tokenizer, *prompt_ids, *prompt_file, *system, *adapter;
	const char *device, *separator, *chat_kwargs;
	struct tk_strlist stop;
	struct tk_generate_opts go; /* main sets its defaults (tk_generate_opts_init) */
	int max_new_given, max_length_given;
	int max_length, threads, nret, batch;
	int ids, quiet, json, chat, null, stats;
	enum truncate truncate;
	enum tk_cache_type cache_type;
} a = { .nret = 1, .batch = 1 };

static const struct tk_opt opts[] = {
	TK_OPT_STR(0, "model", &a.model, "DIR",
		   "the Hugging Face model directory, or a GGUF file (imported as tk-convert does)"),
	TK_OPT_STR(0, "adapter", &a.adapter, "DIR",
		   "apply this PEFT LoRA adapter (from tk-train or peft) without merging"),
	TK_OPT_STR(0, "tokenizer", &a.tokenizer, "PATH", "tokenizer (default: the model's)"),
	TK_OPT_STR(0, "prompt-file", &a.prompt_file, "FILE", "prompts, one a line, or JSONL"),
	TK_OPT_STR(0, "prompt-ids", &a.prompt_ids, "IDS", "one prompt as token ids: \"1 2 3\""),
	TK_OPT_BOOL(0, "chat", &a.chat, "wrap each prompt in the model's chat template"),
	TK_OPT_STR(0, "system", &a.system, "TEXT", "system message for --chat"),
	TK_OPT_STR(0, "chat-template-kwargs", &a.chat_kwargs, "JSON",
		   "template kwargs, as '{\"enable_thinking\": false}' (a JSONL line's "
		   "\"chat_template_kwargs\" goes over them)"),
	TK_OPT_BOOL(0, "ids", &a.ids, "print the generated token ids instead of text"),
	TK_OPT_BOOL(0, "json", &a.json, "one JSON object per sequence (text, ids, logprobs)"),
	TK_OPT_STR(0, "separator", &a.separator, "STR",
		   "end each output with STR, not a newline (\\n, \\t, \\0 and \\\\ understood)"),
	TK_OPT_BOOL('0', "null", &a.null, "end each output with a NUL byte, for xargs -0"),
	TK_OPT_INT32(0, "max-new-tokens", &a.go.max_new_tokens, "N", 0, 1 << 30,
		     "tokens to generate", .given = &a.max_new_given),
	TK_OPT_INT32(0, "max-length", &a.max_length, "N", 1, 1 << 30,
		     "prompt plus new tokens (--max-new-tokens wins)", .given = &a.max_length_given,
		     .no_default = 1),
	TK_OPT_INT32(0, "num-return-sequences", &a.nret, "N", 1, 4096, "sequences per prompt"),
	TK_OPT_INT32(0, "batch-size", &a.batch, "N", 1, 4096, "prompts decoded together"),
	TK_OPT_BOOL(0, "do-sample", &a.go.do_sample, "sample instead of greedy decoding"),
	TK_OPT_DOUBLE(0, "temperature", &a.go.temperature, "T", 1e-6, 1e6, ""),
	TK_OPT_INT32(0, "top-k", &a.go.top_k, "K", 0, 1 << 30, "0: off"),
	TK_OPT_DOUBLE(0, "top-p", &a.go.top_p, "P", 1e-9, 1, "1: off"),
	TK_OPT_DOUBLE(0, "min-p", &a.go.min_p, "P", 0, 1, "0: off"),
	TK_OPT_DOUBLE(0, "repetition-penalty", &a.go.repetition_penalty, "R", 1e-6, 1e6,
		      "1: off"),
	TK_OPT_UINT64(0, "seed", &a.go.seed, "S", 0, 9e18, "seed of tk's sampler"),
	TK_OPT_LIST(0, "stop", &a.stop, "TEXT", "stop after this text (repeatable)"),
	TK_OPT_CHOICE(0, "truncate", &a.truncate, truncates,
		      "cut a prompt longer than the context on this side (no: error)"),
	TK_OPT_STR(0, "device", &a.device, "auto|cpu|cuda[:N]",
		   "where to compute: auto takes a CUDA GPU when there is one (unverified), else "
		   "the CPU (auto)"),
	TK_OPT_CHOICE(0, "cache-type", &a.cache_type, cache_types,
		      "the KV cache's values: f32, or bf16 (half the memory, each key and "
		      "value rounded to bf16)"),
	TK_OPT_INT32(0, "threads", &a.threads, "N", 0, 4096, "CPU threads (0: one per core)"),
	TK_OPT_CPU_KERNEL(),
	TK_OPT_BOOL(0, "stats", &a.stats,
		    "at the end, print the prompt and decode speeds to stderr"),
	TK_OPT_BOOL('q', "quiet", &a.quiet, "no progress on stderr"),
	TK_OPT_HELP(),
	TK_OPT_END,
};

/* What ends each output (text, --ids): "\n", --separator or -0's NUL. */
static char sep[256] = "\n";
static size_t sep_len = 1;

/* --separator's STR into sep, with \n, \t, \0 and \\ turned into their
 * bytes (a notebook's ! cell runs sh, which has no $'...'); 2 when it is
 * too long or ends in a lone backslash. */
static int set_separator(const char *s)
{
	sep_len = 0;
	for (; *s; s++) {
		int c = (unsigned char)*s;
		if (c == '\\') {
			c = s[1] == 'n' ? '\n' : s[1] == 't' ? '\t' : s[1] == '0' ? 0
			  : s[1] == '\\' ? '\\' : -1;
			if (c == -1)
				return tk_cli_usage_error("--separator: '\\%.1s' is not one of \\n, "
							  "\\t, \\0, \\\\ (write a backslash as \\\\)",
							  s + 1);
			s++;
		}
		if (sep_len == sizeof(sep))
			return tk_cli_usage_error("--separator: longer than %zu bytes", sizeof(sep));
		sep[sep_len++] = (char)c;
	}
	return 0;
}

/* Prompts done, on stderr as every tool's progress (TK_PROGRESS): for
 * long --prompt-file runs, when stdout is not the terminal it would mix
 * with. */
static struct tk_progress prog;

/* What the whole run shares. */
struct run {
	struct tk_model m;
	tk_tokenizer_t *tok;
	tk_encoder_t *enc;
	struct tk_chat chat;
	struct tk_infer *s;
	int64_t eos[64];
};

/* One prompt of a batch, and one sequence generated from it. */
struct prompt {
	char *text;        /* NULL for --prompt-ids */
	struct tk_ids ids;
};

struct seq {
	int prompt, index;  /* its prompt in the batch, its number for that prompt */
	struct tk_buf text; /* decoded continuation */
	size_t end;         /* bytes to show: complete characters, up to a --stop text */
	size_t shown;       /* bytes already streamed */
	int cut, failed;    /* cut: ended by a --stop text at end */
};

struct batch {
	struct run *r;
	struct prompt p[4096];
	int np;
	struct seq *sq;
	struct tk_generate_seq *gq;
	int live;           /* one sequence: stream it as it is decoded */
};

/* Bytes of the decoded text t[n] that are final: all but trailing U+FFFD,
 * which the next token may complete into a character (byte fallback). */
static size_t settled(const char *t, size_t n)
{
	while (n >= 3 && !memcmp(t + n - 3, "\xEF\xBF\xBD", 3))
		n -= 3;
	return n;
}

/* Decodes sequence i so far, cuts at a --stop text, streams when live. */
static int on_token(void *ctx, int i, uint32_t id, float lp)
{
	struct batch *b = ctx;
	struct seq *q = &b->sq[i];
	const struct tk_ids *g = &b->gq[i].out;
	int stop = 0;

	(void)id, (void)lp;
	if (!b->r->tok)
		return 0;
	q->text.len = 0;
	if (tk_decode(b->r->tok, g->v, g->n, 1, &q->text))
		return q->failed = 1;
	q->end = settled(q->text.data, q->text.len);
	for (int k = 0; k < a.stop.n; k++) {
		size_t n = strlen(a.stop.v[k]);
		const char *hit = q->text.len ? memmem(q->text.data, q->text.len, a.stop.v[k], n)
					       : NULL;
		if (hit && (!stop || (size_t)(hit - q->text.data) + n < q->end)) {
			q->end = (size_t)(hit - q->text.data) + n;
			stop = 1;
		}
	}
	q->cut = stop;
	if (b->live && !a.ids && !a.json && q->end > q->shown) {
		fwrite(q->text.data + q->shown, 1, q->end - q->shown, stdout);
		q->shown = q->end;
		fflush(stdout);
	}
	return stop;
}

static const char *const reasons[] = { "length", "eos", "context", "stop" };

/* Prints sequence i of the batch when it is done. */
static int print_seq(struct batch *b, int i)
{
	struct seq *q = &b->sq[i];
	const struct tk_generate_seq *g = &b->gq[i];
	size_t end = q->cut ? q->end : q->text.len;
	int err = 0;

	if (q->failed)
		return tk_cli_error("cannot decode the output");
	if (a.json) {
		cJSON *o = cJSON_CreateObject(), *ids = cJSON_CreateArray(), *lp = cJSON_CreateArray();
		char *txt = b->r->tok ? strndup(q->text.data ? q->text.data : "", end) : NULL, *js;

		if (b->p[q->prompt].text)
			cJSON_AddStringToObject(o, "prompt", b->p[q->prompt].text);
		cJSON_AddNumberToObject(o, "index", q->index);
		if (txt)
			cJSON_AddStringToObject(o, "text", txt);
		free(txt);
		for (size_t k = 0; k < g->out.n; k++) {
			cJSON_AddItemToArray(ids, cJSON_CreateNumber(g->out.v[k]));
			cJSON_AddItemToArray(lp, isinf(g->logprobs[k]) ? cJSON_CreateNull()
					     : cJSON_CreateNumber(g->logprobs[k]));
		}
		cJSON_AddItemToObject(o, "token_ids", ids);
		cJSON_AddItemToObject(o, "logprobs", lp);
		cJSON_AddStringToObject(o, "finish_reason", reasons[g->why]);
		js = cJSON_PrintUnformatted(o);
		err = js ? puts(js) < 0 : TK_E_NOMEM;
		free(js);
		cJSON_Delete(o);
	} else if (a.ids) {
		for (size_t k = 0; k < g->out.n; k++)
			printf("%s%u", k ? " " : "", g->out.v[k]);
		fwrite(sep, 1, sep_len, stdout);
	} else {
		if (end > q->shown)
			fwrite(q->text.data + q->shown, 1, end - q->shown, stdout);
		fwrite(sep, 1, sep_len, stdout);
	}
	if (err == TK_E_NOMEM)
		return tk_cli_fail(err, NULL);
	return fflush(stdout) || ferror(stdout) ? tk_cli_error("<stdout>: write failed") : 0;
}

/* The positions a sequence may reach: max_position_embeddings, or no
 * limit with dynamic NTK scaling, which is for going past it, as
 * transformers' generate() does (prompts included). */
static int context_of(const struct run *r)
{
	if (r->m.cfg.pos == TK_POS_ROPE && r->m.cfg.rope.type == TK_ROPE_DYNAMIC)
		return INT_MAX;
	return r->m.cfg.max_pos;
}

/* Generates and prints the prompts of the batch. */
static int run_batch(struct batch *b)
{
	struct run *r = b->r;
	struct tk_diag d;
	int n = b->np * a.nret, need = 1, ctx = context_of(r), ec = 0, rc;

	b->sq = calloc((size_t)n, sizeof(*b->sq));
	b->gq = calloc((size_t)n, sizeof(*b->gq));
	if (!b->sq || !b->gq)
		return tk_cli_fail(TK_E_NOMEM, NULL);
	for (int i = 0; i < n; i++) {
		struct prompt *p = &b->p[i / a.nret];
		int pn = (int)p->ids.n, mx = a.max_new_given || !a.max_length_given
						       ? a.go.max_new_tokens : a.max_length - pn;
		b->sq[i] = (struct seq){ .prompt = i / a.nret, .index = i % a.nret };
		b->gq[i] = (struct tk_generate_seq){ .prompt = p->ids.v, .n_prompt = pn,
						.max_new_tokens = mx,
						.seed = a.go.seed +
							(uint64_t)(i % a.nret) * 0x9E3779B97F4A7C15ull };
		if (mx < 0 || (!a.max_new_given && mx == 0)) {
			ec = tk_cli_error("the prompt has %d tokens, as many as --max-length %d or "
					  "more (raise it or use --max-new-tokens)", pn, a.max_length);
			goto out;
		}
		if (pn + mx > need)
			need = pn + mx < ctx ? pn + mx : ctx;
	}
	if (!r->s || tk_infer_n_seq(r->s) < n || tk_infer_max_len(r->s) < need) {
		tk_infer_free(r->s);
		if ((rc = tk_infer_new_cache(&r->s, &r->m, n, need, a.cache_type, &d))) {
			r->s = NULL;
			ec = tk_cli_fail(rc, &d);
			goto out;
		}
	}
	b->live = n == 1;
	rc = tk_generate_batch(r->s, &a.go, b->gq, n, on_token, b, &d);
	if (prog.st.drawn)
		tk_status_clear(&prog.st);
	/* a failed batch prints nothing of it: no record of a sequence that
	 * did not run to its end */
	for (int i = 0; i < n && !ec && !rc; i++)
		ec = print_seq(b, i);
	if (rc && !ec)
		ec = tk_cli_fail(rc, &d);
	tk_progress_update(&prog, prog.done + (uint64_t)b->np);
out:
	for (int i = 0; i < n; i++) {
		tk_generate_seq_free(&b->gq[i]);
		tk_buf_free(&b->sq[i].text);
	}
	free(b->sq);
	free(b->gq);
	for (int i = 0; i < b->np; i++) {
		free(b->p[i].text);
		tk_ids_free(&b->p[i].ids);
	}
	b->np = 0;
	return ec;
}

/* Checks, encodes and truncates a text prompt (where names it) into the
 * batch, or a conversation already rendered through the chat template
 * (text is then its last message, for --json); runs the batch when it is
 * full. */
static int add_prompt(struct batch *b, const char *text, const char *rendered,
		      const char *where, long line)
{
	struct run *r = b->r;
	struct prompt *p = &b->p[b->np];
	struct tk_buf chat = { 0 };
	int max = context_of(r), rc = 0;
	char at[64] = "";

	if (line > 0)
		snprintf(at, sizeof(at), ":%ld", line);
	if (text && !*text && !rendered) /* a conversation's last turn may be empty */
		return tk_cli_error("%s%s: empty prompt", where, at);
	if (text && tk_utf8_valid(text, strlen(text)) != strlen(text))
		return tk_cli_error("%s%s: the prompt is not valid UTF-8", where, at);
	if (text && a.chat && !rendered) {
		struct tk_diag d;
		if ((rc = tk_chat_render(&r->chat, a.system, text, &chat, &d))) {
			tk_buf_free(&chat);
			return tk_cli_error("%s%s%s%s", where, at, *where ? ": " : "", d.msg);
		}
	}
	if (rendered && (rc = tk_buf_append(&chat, rendered, strlen(rendered))))
		return tk_cli_fail(rc, NULL);
	if (text && !(p->text = strdup(text)))
		rc = TK_E_NOMEM;
	if (!rc && text)
		rc = a.chat || rendered
			     ? tk_encode(r->enc, chat.data, chat.len, 0, &p->ids)
			     : tk_encode(r->enc, text, strlen(text), TK_ENCODE_ADD_SPECIAL, &p->ids);
	tk_buf_free(&chat);
	b->np++;
	if (rc)
		return tk_cli_error("%s%s: cannot encode the prompt: %s", where, at, tk_strerror(rc));
	if (!p->ids.n)
		return tk_cli_error("%s%s: the prompt encodes to no tokens", where, at);
	for (size_t k = 0; k < p->ids.n; k++)
		if (p->ids.v[k] >= (uint32_t)r->m.cfg.vocab_size) {
			if (!text) /* --prompt-ids: an option's value */
				return tk_cli_usage_error("--prompt-ids: token id %u is not below "
							  "the model's vocab_size %d", p->ids.v[k],
							  r->m.cfg.vocab_size);
			return tk_cli_error("%s%s%stoken id %u is not below the model's "
					    "vocab_size %d", where, at, *where ? ": " : "",
					    p->ids.v[k], r->m.cfg.vocab_size);
		}
	if (p->ids.n > (size_t)max) {
		if (a.truncate == TRUNCATE_NO)
			return tk_cli_error("%s%s%sthe prompt has %zu tokens, more than the model's "
					    "context of %d (use --truncate left|right)", where, at,
					    *where ? ": " : "", p->ids.n, max);
		if (a.truncate == TRUNCATE_LEFT)
			memmove(p->ids.v, p->ids.v + (p->ids.n - (size_t)max),
				(size_t)max * sizeof(uint32_t));
		p->ids.n = (size_t)max;
	}
	return b->np >= a.batch ? run_batch(b) : 0;
}

/* Where the chat template is: the --tokenizer directory (or the directory
 * of a --tokenizer file), else the model's. */
static const char *chat_dir(void)
{
	static char dir[4096];

	return tk_chat_dir(a.tokenizer, a.model, dir, sizeof(dir));
}

/* The chat template (of chat_dir()) with --chat-template-kwargs and
 * SOURCE_DATE_EPOCH. */
static int load_chat(struct tk_chat *c, struct tk_diag *d)
{
	int rc = tk_chat_load(c, chat_dir(), d);
	return rc ? rc : tk_cli_chat_opts(c, a.chat_kwargs, d);
}

/* A JSONL line j's "messages" (a list of message objects): rendered
 * through the chat template (loaded here when --chat did not), with the
 * line's "tools" and "chat_template_kwargs", --system first when the
 * conversation has no system message, then added as a prompt. */
static int add_messages(struct batch *b, const cJSON *j, const char *name, long no)
{
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages"), *it;
	const cJSON *tools = cJSON_GetObjectItemCaseSensitive(j, "tools");
	const cJSON *kw = cJSON_GetObjectItemCaseSensitive(j, "chat_template_kwargs");
	struct tk_buf out = { 0 };
	struct tk_diag d;
	cJSON *all = NULL, *sys = NULL;
	const char *last = "";
	int k = 0, rc;

	if (!cJSON_IsArray(msgs) || !cJSON_GetArraySize(msgs))
		return tk_cli_error("%s:%ld: \"messages\" is not a list of messages", name, no);
	if (!b->r->chat.tmpl && (rc = load_chat(&b->r->chat, &d)))
		return tk_cli_error("%s:%ld: \"messages\" needs the model's chat template: %s%s%s",
				    name, no, d.path, d.path[0] ? ": " : "", d.msg);
	cJSON_ArrayForEach(it, msgs) {
		const cJSON *ro = cJSON_GetObjectItemCaseSensitive(it, "role");
		const cJSON *co = cJSON_GetObjectItemCaseSensitive(it, "content");
		k++;
		if (!cJSON_IsString(ro))
			return tk_cli_error("%s:%ld: message %d needs a \"role\" string", name, no, k);
		last = cJSON_IsString(co) ? co->valuestring : "";
	}
	if (!(all = cJSON_CreateArray()))
		return tk_cli_fail(TK_E_NOMEM, NULL);
	rc = 0;
	const char *first = cJSON_GetObjectItemCaseSensitive(msgs->child, "role")->valuestring;
	if (a.system && strcmp(first, "system")) {
		if (!(sys = cJSON_CreateObject()) || !cJSON_AddStringToObject(sys, "role", "system") ||
		    !cJSON_AddStringToObject(sys, "content", a.system) ||
		    !cJSON_AddItemToArray(all, sys))
			rc = TK_E_NOMEM;
	}
	cJSON_ArrayForEach(it, msgs)
		if (!rc && !cJSON_AddItemReferenceToArray(all, (cJSON *)it))
			rc = TK_E_NOMEM;
	if (rc) {
		cJSON_Delete(all);
		return tk_cli_fail(rc, NULL);
	}
	rc = tk_chat_apply(&b->r->chat, all, tools, kw, TK_CHAT_GENERATION_PROMPT, &out, NULL, NULL,
			   &d);
	if (!rc)
		rc = add_prompt(b, last, out.data, name, no);
	else
		rc = tk_cli_error("%s:%ld: %s", name, no, d.msg);
	tk_buf_free(&out);
	cJSON_Delete(all);
	return rc;
}

/* Prompts from a stream: lines of text, or JSONL when the first line
 * starts with '{': a "prompt" string or a "messages" conversation. */
static int read_prompts(struct batch *b, FILE *f, const char *name)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long no = 0;
	int ec = 0, jsonl = -1;

	while (!ec && (len = getline(&line, &cap, f)) > 0) {
		no++;
		if (line[len - 1] == '\n')
			line[--len] = 0;
		if (len && line[len - 1] == '\r')
			line[--len] = 0;
		if (jsonl < 0)
			jsonl = line[0] == '{';
		if (!jsonl) {
			ec = add_prompt(b, line, NULL, name, no);
			continue;
		}
		if (!len)
			continue;
		cJSON *j = cJSON_Parse(line), *pr = cJSON_GetObjectItemCaseSensitive(j, "prompt");
		cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
		if (!cJSON_IsObject(j))
			ec = tk_cli_error("%s:%ld: not a JSON object", name, no);
		else if (msgs)
			ec = add_messages(b, j, name, no);
		else if (!cJSON_IsString(pr))
			ec = tk_cli_error("%s:%ld: no \"prompt\" string or \"messages\" list",
					  name, no);
		else
			ec = add_prompt(b, pr->valuestring, NULL, name, no);
		cJSON_Delete(j);
	}
	free(line);
	if (!ec && ferror(f))
		ec = tk_cli_error("%s: read failed", name);
	return ec;
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
		if (tk_ids_push(out, (uint32_t)v))
			return tk_cli_fail(TK_E_NOMEM, NULL);
		p = end;
	}
	return out->n ? 0 : tk_cli_usage_error("--prompt-ids: no token ids");
}

/* Loads the model, tokenizer, EOS ids and chat template. */
static int setup(struct run *r, struct tk_backend *be)
{
	struct tk_diag d;
	int rc, n_eos = 0, need_tok = !(a.prompt_ids && (a.ids || a.json));

	if ((rc = tk_cli_model_gguf(&a.model, a.quiet, &d)) ||
	    (rc = tk_model_load_ex(&r->m, a.model, be, TK_LOAD_HALF | TK_LOAD_ABSMAX_F32, &d)) ||
	    (rc = tk_generate_eos_ids(a.model, r->eos, 64, &n_eos, &d)) ||
	    (need_tok && (rc = tk_tokenizer_load(&r->tok, a.tokenizer ? a.tokenizer : a.model,
						 &d))) ||
	    (a.chat && (rc = load_chat(&r->chat, &d))))
		return tk_cli_fail(rc == TK_E_INVAL ? TK_E_FORMAT : rc, &d);
	if (a.adapter && (rc = tk_peft_load(&r->m, a.adapter, &d)))
		return tk_cli_fail(rc == TK_E_INVAL ? TK_E_FORMAT : rc, &d);
	if (r->tok && tk_tokenizer_vocab_size(r->tok) > (uint32_t)r->m.cfg.vocab_size)
		return tk_cli_error("%s: the tokenizer has %u tokens, more than the model's "
				    "vocab_size %d", a.tokenizer ? a.tokenizer : a.model,
				    tk_tokenizer_vocab_size(r->tok), r->m.cfg.vocab_size);
	if (r->tok && tk_encoder_new(r->tok, &r->enc))
		return tk_cli_fail(TK_E_NOMEM, NULL);
	a.go.eos = r->eos;
	a.go.n_eos = n_eos;
	return 0;
}

/* The usage errors that need no file. */
static int check_usage(int npos)
{
	if (!a.model)
		return tk_cli_usage_error("--model is required");
	if ((a.prompt_ids != NULL) + (npos > 0) + (a.prompt_file != NULL) > 1)
		return tk_cli_usage_error("--prompt-ids, --prompt-file and PROMPT arguments do not "
					  "go together");
	if (a.chat && a.prompt_ids)
		return tk_cli_usage_error("--chat needs text prompts, not --prompt-ids");
	if (a.system && !a.chat)
		return tk_cli_usage_error("--system needs --chat");
	cJSON *kw = a.chat_kwargs ? cJSON_Parse(a.chat_kwargs) : NULL;
	int kw_ok = !a.chat_kwargs || cJSON_IsObject(kw);
	cJSON_Delete(kw);
	if (!kw_ok)
		return tk_cli_usage_error("--chat-template-kwargs: not a JSON object");
	if (a.nret > 1 && !a.go.do_sample)
		return tk_cli_usage_error("greedy decoding gives one sequence per prompt: "
					  "--num-return-sequences %d needs --do-sample", a.nret);
	if (a.nret * a.batch > 4096)
		return tk_cli_usage_error("--batch-size times --num-return-sequences is over 4096");
	if ((a.separator || a.null) && a.json)
		return tk_cli_usage_error("--json writes one object a line: --separator and -0 are "
					  "for text and --ids");
	if (a.separator && a.null)
		return tk_cli_usage_error("--separator and -0 do not go together (-0 is "
					  "--separator '\\0')");
	if (a.null)
		sep[0] = 0;
	return a.separator ? set_separator(a.separator) : 0;
}

/* --stats' line: the prompt passes and the decode steps after them, with
 * llama.cpp's meaning (the first token of each sequence comes from the
 * prompt pass, so decode counts the tokens after it). */
static void print_stats(const struct tk_generate_stats *st, const struct tk_backend *be)
{
	double pr = st->prompt_s > 0 ? st->prompt_tokens / st->prompt_s : 0;
	double dr = st->decode_s > 0 ? st->decode_tokens / st->decode_s : 0;
	char on[64];

	if (strcmp(be->i->name, "cpu"))
		snprintf(on, sizeof(on), "%s", be->i->name);
	else
		snprintf(on, sizeof(on), "%d thread%s", be->threads, be->threads == 1 ? "" : "s");
	fprintf(stderr, "%s: prompt %ld tokens in %.3f s (%.1f tok/s); decode %ld tokens in %.3f s "
		"(%.1f tok/s), %s\n", tk_prog, st->prompt_tokens, st->prompt_s, pr,
		st->decode_tokens, st->decode_s, dr, on);
}

int main(int argc, char **argv)
{
	tk_cli_init(argv[0]);
	tk_generate_opts_init(&a.go);
	int npos, exit_now, ec = tk_cli_parse(argc, argv, opts, usage, about, &npos, &exit_now);
	if (exit_now)
		return ec;
	if ((ec = check_usage(npos)))
		return ec;
	static struct run r;
	static struct batch b = { .r = &r };
	static struct tk_generate_stats st;
	struct tk_backend be;
	struct tk_diag d;
	FILE *f = NULL;
	int rc = tk_cli_backend(&be, a.device, a.threads, a.quiet, &d);
	if (rc)
		return tk_cli_fail(rc, &d);
	if ((ec = setup(&r, &be)))
		goto out;
	if (a.stats)
		a.go.stats = &st;
	tk_progress_init(&prog, "generated", "prompts", a.prompt_ids ? 1 : (uint64_t)npos,
			 !a.quiet && !isatty(STDOUT_FILENO));
	if (a.prompt_ids) {
		if (!(ec = parse_ids(a.prompt_ids, &b.p[0].ids)))
			ec = add_prompt(&b, NULL, NULL, "", 0);
	} else if (npos) {
		for (int i = 0; i < npos && !ec; i++) {
			char where[32];
			snprintf(where, sizeof(where), "argument %d", i + 1);
			ec = add_prompt(&b, argv[i], NULL, where, 0);
		}
	} else if (a.prompt_file && !strcmp(a.prompt_file, "-")) {
		ec = read_prompts(&b, stdin, "<stdin>");
	} else if (a.prompt_file) {
		if (!(f = fopen(a.prompt_file, "r")))
			ec = tk_cli_error("%s: %s", a.prompt_file, strerror(errno));
		else
			ec = read_prompts(&b, f, a.prompt_file);
	} else {
		ec = read_prompts(&b, stdin, "<stdin>");
	}
	if (!ec && b.np)
		ec = run_batch(&b);
	if (!ec)
		tk_progress_end(&prog);
	if (!ec && a.stats)
		print_stats(&st, &be);
	else if (ec)
		tk_status_clear(&prog.st);
out:
	if (f)
		fclose(f);
	for (int i = 0; i < b.np; i++) {
		free(b.p[i].text);
		tk_ids_free(&b.p[i].ids);
	}
	tk_infer_free(r.s);
	tk_chat_free(&r.chat);
	tk_encoder_free(r.enc);
	tk_tokenizer_free(r.tok);
	tk_model_free(&r.m);
	tk_backend_free(&be);
	return ec;
}

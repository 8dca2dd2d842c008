/* tk-tokenize - text (CSV, JSONL, plain) to a token shard, ids or stats;
 * shards back to text.  The work is in lib/jobs/tokenize.c. */
#include <string.h>
#include <unistd.h>

#include "base/afile.h"
#include "jobs/cli.h"
#include "text/chat.h"
#include "jobs/tokenize.h"

static const char *const usage[] = {
	"tk-tokenize -t TOKENIZER [OPTIONS] [FILE...]",
	"tk-tokenize -t TOKENIZER --decode [OPTIONS] [SHARD...]",
	"tk-tokenize --stats|--ids [OPTIONS] [SHARD...]",
	NULL,
};

static const char about[] =
	"Tokenizes the examples in FILEs (stdin when none or '-') with a Hugging Face "
	"tokenizer and writes a token shard of documents, with the same ids as HF's "
	"tokenizer(text). Format from the extension: .csv/.tsv, .jsonl/.json/.ndjson (or a "
	"JSON array of objects), else "
	"plain text; .tks inputs are shards (for --decode, --ids, --stats).";

/* The tool's own options; the rest go straight into to (main sets its
 * defaults with tk_tokenize_opts_init before parsing). */
/* --format: an input format, or token shards (FORMAT_TKS) */
enum { FORMAT_TKS = TK_INPUT_TEXT + 1 };
static const struct tk_opt_choice formats[] = {
	{ "csv", TK_INPUT_CSV }, { "jsonl", TK_INPUT_JSONL }, { "text", TK_INPUT_TEXT },
	{ "tks", FORMAT_TKS }, { NULL, 0 },
};
static const struct tk_opt_choice invalid_utf8[] = { { "error", 0 }, { "replace", 1 }, { NULL, 0 } };

static struct {
	const char *tokenizer, *output, *delimiter, *chat_kwargs;
	int format; /* TK_INPUT_AUTO (not given), another input format or FORMAT_TKS */
	int ids, decode, stats, force, quiet;
	int column, field, prompt_col, prompt_field, resp_col, resp_field; /* given */
} o = { .output = "-" };

static struct tk_tokenize_opts to;

static const struct tk_opt opts[] = {
	TK_OPT_STR('t', "tokenizer", &o.tokenizer, "PATH",
		   "model directory, tokenizer.json or a GGUF file (required, but for "
		   "--stats and --ids of shards)"),
	TK_OPT_STR('o', "output", &o.output, "FILE", "write here instead of stdout", .path = 1),
	TK_OPT_BOOL('f', "force", &o.force, "overwrite the output if it exists"),
	TK_OPT_INT32('j', "threads", &to.threads, "N", 0, 1024,
		   "encoding threads (0: one per CPU); the output is the same"),
	TK_OPT_BOOL('q', "quiet", &o.quiet, "no progress or summary on stderr"),
	TK_OPT_GROUP("Input"),
	TK_OPT_CHOICE(0, "format", &o.format, formats,
		      "read every FILE as this format"),
	TK_OPT_STR(0, "column", &to.in.column, "NAME", "the text column (CSV) or field (JSONL)",
		   .given = &o.column),
	TK_OPT_STR(0, "field", &to.in.column, "NAME", "the same as --column", .given = &o.field),
	TK_OPT_STR(0, "template", &to.in.tmpl, "STR",
		   "text from columns/fields: 'Q: {q}\\nA: {a}' (\\n \\t \\\\ {{ }})"),
	TK_OPT_STR(0, "prompt-column", &to.in.prompt, "NAME",
		   "prompt (left out of the loss) ...", .given = &o.prompt_col),
	TK_OPT_STR(0, "response-column", &to.in.response, "NAME", "... followed by the response",
		   .given = &o.resp_col),
	TK_OPT_STR(0, "prompt-field", &to.in.prompt, "NAME", "the same as --prompt-column",
		   .given = &o.prompt_field),
	TK_OPT_STR(0, "response-field", &to.in.response, "NAME", "the same as --response-column",
		   .given = &o.resp_field),
	TK_OPT_STR(0, "prompt-template", &to.in.prompt_tmpl, "STR",
		   "the prompt from a template instead: 'Instruction: {instruction}\\nResponse: '"),
	TK_OPT_STR(0, "response-template", &to.in.response_tmpl, "STR",
		   "the response from a template instead: '{output}'"),
	TK_OPT_STR(0, "delimiter", &o.delimiter, "C",
		   "CSV field separator: one character, or '\\t' (default ',', a tab for .tsv)"),
	TK_OPT_STR(0, "messages-field", &to.in.messages, "NAME",
		   "JSONL: a conversation, rendered with the tokenizer's chat template "
		   "(default: \"messages\" when there is no \"text\")"),
	TK_OPT_BOOL(0, "assistant-only-loss", &to.assistant_only,
		    "conversations: only the assistant turns in the loss"),
	TK_OPT_STR(0, "chat-template-kwargs", &o.chat_kwargs, "JSON",
		   "conversations: template kwargs, as '{\"enable_thinking\": false}' (a "
		   "line's \"chat_template_kwargs\" goes over them)"),
	TK_OPT_BOOL(0, "split-lines", &to.in.split_lines, "text: one document per non-empty line"),
	TK_OPT_CHOICE(0, "invalid-utf8", &to.in.invalid_utf8_replace, invalid_utf8,
		      "invalid UTF-8 is an error or becomes U+FFFD"),
	TK_OPT_GROUP("Encoding"),
	TK_OPT_BOOL(0, "add-eos", &to.add_eos,
		    "append EOS to each document (default; --no-add-eos to leave out)"),
	TK_OPT_BOOL(0, "add-special-tokens", &to.add_special,
		    "the post-processor's BOS/EOS (default; --no-add-special-tokens)"),
	TK_OPT_GROUP("Instead of a shard"),
	TK_OPT_BOOL(0, "ids", &o.ids, "print each document's ids on one line"),
	TK_OPT_BOOL(0, "show-mask", &to.show_mask, "with --ids: a second line of 0/1 (1: in the loss)"),
	TK_OPT_BOOL(0, "decode", &o.decode, "print each document of the shards as text"),
	TK_OPT_BOOL(0, "skip-special-tokens", &to.skip_special,
		    "with --decode: leave special tokens out"),
	TK_OPT_BOOL(0, "prompts", &to.prompts,
		    "with --decode: each document's prompt (its tokens out of the loss) instead"),
	TK_OPT_BOOL('0', "null", &to.null_end,
		    "with --decode: end each text with a NUL byte instead of a newline"),
	TK_OPT_BOOL(0, "stats", &o.stats, "print documents, tokens, bytes, masked tokens"),
	TK_OPT_HELP(),
	TK_OPT_END,
};

static struct tk_progress bar;
static void on_progress(void *arg, const struct tk_tokenize_stats *st)
{
	(void)arg;
	tk_progress_update(&bar, st->documents);
}

/* The counts; bytes (of the decoded text) only where a tokenizer decoded. */
static void print_stats(FILE *fp, const struct tk_tokenize_stats *st, int bytes)
{
	fprintf(fp, "documents: %llu\ntokens: %llu\n", (unsigned long long)st->documents,
		(unsigned long long)st->tokens);
	if (bytes)
		fprintf(fp, "bytes: %llu\nbytes_per_token: %.4f\n", (unsigned long long)st->bytes,
			st->tokens ? (double)st->bytes / st->tokens : 0.0);
	fprintf(fp, "masked_tokens: %llu\n", (unsigned long long)st->masked);
}

/* The chat template beside the tokenizer, for conversations: into *c and
 * in->chat, or the reason there is none into in->no_chat_why.  Returns 0,
 * or TK_E_INVAL (in d) for bad --chat-template-kwargs or SOURCE_DATE_EPOCH. */
static int load_chat(struct tk_chat *c, struct tk_input_opts *in, struct tk_diag *d)
{
	static char dir[4096], why[2100];

	in->chat_spans = to.assistant_only;
	if (!tk_chat_load(c, tk_chat_dir(o.tokenizer, NULL, dir, sizeof(dir)), d)) {
		in->chat = c;
		return tk_cli_chat_opts(c, o.chat_kwargs, d);
	}
	snprintf(why, sizeof(why), "%.1000s%s%.1000s", d->path, d->path[0] ? ": " : "", d->msg);
	in->no_chat_why = why;
	return 0;
}

int main(int argc, char **argv)
{
	int npos, exit_now;
	struct tk_diag d;
	tk_cli_init(argv[0]);
	tk_tokenize_opts_init(&to);
	int ec = tk_cli_parse(argc, argv, opts, usage, about, &npos, &exit_now);
	if (exit_now)
		return ec;

	if (o.ids + o.decode + o.stats > 1)
		return tk_cli_usage_error("choose one of --ids, --decode and --stats");
	/* the ids of token shards, and their counts, need no tokenizer */
	for (int i = 0; !o.tokenizer && i < (npos ? npos : 1); i++) {
		const char *in = npos ? argv[i] : "-";
		size_t n = strlen(in);
		int shard = o.format == FORMAT_TKS ||
			    (n > 4 && !strcmp(in + n - 4, ".tks"));
		if (!(o.stats || o.ids) || !shard)
			return tk_cli_usage_error("-t/--tokenizer is required (only --stats and "
						  "--ids of .tks shards go without)");
	}
	if (to.show_mask && !o.ids)
		return tk_cli_usage_error("--show-mask goes with --ids");
	if ((to.skip_special || to.prompts || to.null_end) && !o.decode)
		return tk_cli_usage_error("--%s goes with --decode", to.skip_special
					  ? "skip-special-tokens" : to.prompts ? "prompts" : "null");
	if ((o.column && o.field) || (o.prompt_col && o.prompt_field) ||
	    (o.resp_col && o.resp_field))
		return tk_cli_usage_error("give a column or a field, not both");

	static const char *const stdin_only[] = { "-" };
	to.inputs = npos ? (const char *const *)argv : stdin_only;
	to.n_inputs = npos ? npos : 1;
	to.mode = o.ids ? TK_TOKENIZE_IDS : o.decode ? TK_TOKENIZE_DECODE
		  : o.stats ? TK_TOKENIZE_STATS : TK_TOKENIZE_SHARD;
	to.shards = o.decode || o.format == FORMAT_TKS;
	to.progress = on_progress;
	to.in.format = o.format == FORMAT_TKS ? TK_INPUT_TEXT : (enum tk_input_format)o.format;
	if (o.delimiter && !strcmp(o.delimiter, "\\t"))
		to.in.delimiter = '\t';
	else if (o.delimiter && (strlen(o.delimiter) != 1 || strchr("\"\r\n", o.delimiter[0])))
		return tk_cli_usage_error("--delimiter: one character other than a quote or a "
					  "newline, or '\\t' for a tab");
	else if (o.delimiter)
		to.in.delimiter = o.delimiter[0];

	if (to.mode == TK_TOKENIZE_SHARD && !strcmp(o.output, "-") && isatty(STDOUT_FILENO))
		return tk_cli_usage_error("not writing a binary shard to a terminal "
					  "(use -o FILE, a pipe, or --ids)");

	tk_tokenizer_t *t = NULL;
	int rc = o.tokenizer ? tk_tokenizer_load(&t, o.tokenizer, &d) : 0;
	if (rc)
		return tk_cli_fail(rc == TK_E_INVAL ? TK_E_FORMAT : rc, &d);

	struct tk_chat chat = { 0 };
	if (!to.shards && t && (rc = load_chat(&chat, &to.in, &d))) {
		tk_tokenizer_free(t);
		tk_chat_free(&chat);
		return tk_cli_usage_error("%s", d.msg);
	}
	struct tk_afile out;
	if ((rc = tk_afile_open(&out, o.output, o.force, &d))) {
		tk_tokenizer_free(t);
		tk_chat_free(&chat);
		return tk_cli_fail(rc, &d);
	}
	const char *out_name = strcmp(o.output, "-") ? o.output : "<stdout>";
	const char *what = to.mode == TK_TOKENIZE_DECODE ? "decoding" : "tokenizing";
	tk_progress_init(&bar, what, "docs", 0, !o.quiet);
	double t0 = tk_now();
	struct tk_tokenize_stats st;
	rc = tk_tokenize_run(t, &to, out.fp, out_name, &st, &d);
	if (!rc && to.mode == TK_TOKENIZE_STATS)
		print_stats(out.fp, &st, t != NULL);
	if (!rc)
		rc = tk_afile_commit(&out, &d);
	else
		tk_afile_abort(&out);
	tk_progress_end(&bar);
	tk_tokenizer_free(t);
	tk_chat_free(&chat);
	if (rc)
		return tk_cli_fail(rc, &d);

	double secs = tk_now() - t0;
	if (st.prompt_mismatch && to.assistant_only)
		fprintf(stderr, "%s: warning: in %llu conversation%s an assistant turn does not "
			"start or end on a token boundary; its mask follows the tokens the "
			"whole text shares with the text before the boundary\n", tk_prog,
			(unsigned long long)st.prompt_mismatch, st.prompt_mismatch == 1 ? "" : "s");
	else if (st.prompt_mismatch)
		fprintf(stderr, "%s: warning: in %llu document%s the prompt's tokens are not a "
			"prefix of the whole text's tokens; the first tokens, as many as the "
			"prompt's, are left out of the loss (as TRL does)\n", tk_prog,
			(unsigned long long)st.prompt_mismatch, st.prompt_mismatch == 1 ? "" : "s");
	if (!o.quiet && !o.tokenizer) /* no text decoded: no MB to count */
		fprintf(stderr, "%s: %llu document%s, %llu tokens in %.2f s\n", tk_prog,
			(unsigned long long)st.documents, st.documents == 1 ? "" : "s",
			(unsigned long long)st.tokens, secs);
	else if (!o.quiet)
		fprintf(stderr, "%s: %llu document%s, %llu tokens, %.1f MB in %.2f s (%.1f MB/s)\n",
			tk_prog, (unsigned long long)st.documents, st.documents == 1 ? "" : "s",
			(unsigned long long)st.tokens,
			st.bytes / 1e6, secs, secs > 0 ? st.bytes / 1e6 / secs : 0.0);
	return TK_EXIT_OK;
}

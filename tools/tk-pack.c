/* tk-pack - document shards to fixed-length training blocks (see man/tk-pack.1). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jobs/cli.h"
#include "jobs/pack.h"
#include "text/tokenizer.h"

static const char *const usage[] = {
	"tk-pack [OPTIONS] -o DIR [SHARD...]",
	"tk-pack [OPTIONS] [SHARD...] > BLOCKS.tks",
	NULL,
};

static const char about[] =
	"Reads document shards (from tk-tokenize; stdin when no SHARD or '-') and writes "
	"training blocks of --seq-len tokens: documents packed end to end, each ended by EOS, "
	"as Hugging Face's run_clm group_texts does, or with --pad one document per block. "
	"With -o, DIR gets train-NNNNN.tks (and eval-NNNNN.tks) and a summary goes to stdout; "
	"without it one train shard goes to stdout and the summary to stderr.";

static void on_progress(void *ctx, uint64_t docs)
{
	tk_progress_update(ctx, docs);
}

/* "; N documents with no token left in the loss, dropped" (static). */
static const char *masked_note(uint64_t n)
{
	static char b[96];
	snprintf(b, sizeof(b), "; %llu document%s with no token left in the loss, dropped",
		 (unsigned long long)n, n == 1 ? "" : "s");
	return b;
}

static void summary(FILE *out, const char *pfx, const struct tk_pack_opts *o,
		    const struct tk_pack_stats *st)
{
	fprintf(out, "%sdocuments: %llu (%llu empty, skipped), %llu tokens\n", pfx,
		(unsigned long long)st->docs_in, (unsigned long long)st->docs_empty,
		(unsigned long long)st->tokens_in);
	for (int s = 0; s < 2; s++) {
		if (s == TK_PACK_EVAL && !st->docs[s] && !st->blocks[s])
			continue;
		unsigned long long tokens = (unsigned long long)st->blocks[s] * o->seq_len;
		fprintf(out, "%s%s: %llu documents, %llu blocks of %u tokens in %llu shard%s", pfx,
			s ? "eval" : "train", (unsigned long long)st->docs[s],
			(unsigned long long)st->blocks[s], o->seq_len,
			(unsigned long long)st->shards[s], st->shards[s] == 1 ? "" : "s");
		if (o->pad)
			fprintf(out, "; padding %.1f%% (%llu tokens); %llu tokens truncated from %llu "
				"documents%s\n", tokens ? 100.0 * st->padding[s] / tokens : 0.0,
				(unsigned long long)st->padding[s], (unsigned long long)st->truncated[s],
				(unsigned long long)st->truncated_docs[s],
				st->masked_docs[s] ? masked_note(st->masked_docs[s]) : "");
		else if (o->keep_remainder)
			fprintf(out, "; last block padded with %llu tokens\n",
				(unsigned long long)st->padding[s]);
		else
			fprintf(out, "; remainder of %llu tokens dropped\n",
				(unsigned long long)st->dropped[s]);
	}
}

int main(int argc, char **argv)
{
	struct tk_pack_opts o;
	int quiet = 0;
	const char *tokenizer = NULL;
	tk_pack_opts_init(&o);
	const struct tk_opt opts[] = {
		TK_OPT_UINT32('s', "seq-len", &o.seq_len, "N", 1, 1 << 20, "tokens per block"),
		TK_OPT_BOOL(0, "pad", &o.pad,
			    "one document per block, truncated or right-padded with the pad id "
			    "(else EOS); padding is left out of the loss"),
		TK_OPT_BOOL(0, "keep-remainder", &o.keep_remainder,
			    "pad the last partial block instead of dropping it"),
		TK_OPT_DOUBLE(0, "eval-fraction", &o.eval_fraction, "F", 0, 1,
			      "put this fraction of the documents (0 <= F < 1, rounded up) in eval"),
		TK_OPT_INT64(0, "eval-docs", &o.eval_docs, "N", 0, 1e15,
			     "put N documents in eval (instead of --eval-fraction)"),
		TK_OPT_BOOL(0, "shuffle", &o.shuffle,
			    "shuffle the documents before splitting and packing (holds them in "
			    "memory)"),
		TK_OPT_UINT64(0, "seed", &o.seed, "S", 0, 9e18, "seed for --shuffle and the split"),
		TK_OPT_STR('o', "output", &o.output, "DIR", "write DIR/train-*.tks, DIR/eval-*.tks", .path = 1),
		TK_OPT_UINT64(0, "shard-size", &o.shard_blocks, "N", 1, 1 << 30,
			      "blocks per output shard file"),
		TK_OPT_STR('t', "tokenizer", &tokenizer, "PATH",
			   "check that the shards were made with this tokenizer"),
		TK_OPT_BOOL('f', "force", &o.force, "replace an existing output directory"),
		TK_OPT_BOOL('q', "quiet", &quiet, "no progress and no summary"),
		TK_OPT_HELP(),
		TK_OPT_END,
	};
	int npos, exit_now;
	tk_cli_init(argv[0]);
	int ec = tk_cli_parse(argc, argv, opts, usage, about, &npos, &exit_now);
	if (exit_now)
		return ec;
	if (o.eval_fraction >= 1)
		return tk_cli_usage_error("--eval-fraction: '%g' is not below 1", o.eval_fraction);
	if (o.eval_docs && o.eval_fraction > 0)
		return tk_cli_usage_error("--eval-docs and --eval-fraction do not go together");
	if ((o.eval_docs || o.eval_fraction > 0) && !o.output)
		return tk_cli_usage_error("an eval split needs an output directory (use -o DIR)");
	if (!o.output && isatty(STDOUT_FILENO))
		return tk_cli_usage_error("refusing to write a binary shard to a terminal (use -o "
					  "DIR or redirect stdout)");

	struct tk_diag d;
	char fingerprint[17];
	if (tokenizer) {
		tk_tokenizer_t *t;
		int rc = tk_tokenizer_load(&t, tokenizer, &d);
		if (rc)
			return tk_cli_fail(rc == TK_E_INVAL ? TK_E_FORMAT : rc, &d);
		snprintf(fingerprint, sizeof(fingerprint), "%s", tk_tokenizer_fingerprint(t));
		o.tok_fingerprint = fingerprint;
		o.tok_vocab = tk_tokenizer_vocab_size(t);
		tk_tokenizer_free(t);
	}
	struct tk_progress prog;
	tk_progress_init(&prog, "reading", "documents", 0, !quiet);
	o.progress = on_progress;
	o.progress_ctx = &prog;

	struct tk_pack_stats st;
	int rc = tk_pack_run(&o, (const char *const *)argv, npos, stdout, &st, &d);
	tk_progress_end(&prog);
	if (rc)
		return tk_cli_fail(rc, &d);
	if (!quiet)
		summary(o.output ? stdout : stderr, o.output ? "" : "tk-pack: ", &o, &st);
	return tk_cli_check_stdout();
}

/* tokenize.h - the work of tk-tokenize: inputs -> token ids -> output.
 *
 * Text inputs (CSV, JSONL, text; see input.h) are read in batches of
 * examples, encoded by a pool of threads with one tk_encoder_t each, and
 * written in input order, so the output does not depend on the number of
 * threads.  Each document is encoded as HF's tokenizer(text) would
 * (add_special_tokens as asked), then the tokenizer's EOS is appended
 * unless the ids already end with it.  An example with a prompt (see
 * tk_example.prompt_len) also has its prompt encoded alone (special tokens
 * as asked, no EOS): the first that many tokens of the full encoding get
 * mask 0 and the rest mask 1, as TRL's SFTTrainer does for
 * prompt-completion data.  A conversation (input.h: a JSONL "messages"
 * field rendered through the chat template) is encoded as TRL's
 * SFTTrainer tokenizes one: without special tokens and without an EOS (the
 * template writes them), every token in the loss, or with assistant_only
 * only the tokens of the assistant turns' spans (the tokens of the text
 * before a span's start and end are found by encoding that prefix alone,
 * as for a prompt; a prefix whose encoding is not a prefix of the whole
 * counts in prompt_mismatch).
 *
 * Shard inputs (.tks) are read back instead: decoded to text, printed as
 * ids or counted.
 */
#ifndef TK_TOKENIZE_H
#define TK_TOKENIZE_H

#include <stdint.h>
#include <stdio.h>

#include "text/input.h"
#include "base/tk.h"
#include "text/tokenizer.h"

enum tk_tokenize_mode {
	TK_TOKENIZE_SHARD = 0, /* write a documents shard */
	TK_TOKENIZE_IDS,       /* one line of space-separated ids per document */
	TK_TOKENIZE_DECODE,    /* shard inputs: each document's text and "\n" */
	TK_TOKENIZE_STATS,     /* count only; results in struct tk_tokenize_stats */
};

struct tk_tokenize_stats {
	uint64_t documents;
	uint64_t tokens;
	uint64_t bytes;          /* text bytes (shards: decoded, specials skipped) */
	uint64_t masked;         /* tokens with mask 0 (prompt tokens, padding) */
	uint64_t prompt_mismatch; /* documents whose full encoding does not start
				     with the prompt's encoding */
};

struct tk_tokenize_opts {
	const char *const *inputs;  /* paths; "-" is stdin */
	int n_inputs;
	struct tk_input_opts in;
	enum tk_tokenize_mode mode;
	int shards;            /* inputs are shards (else: those named *.tks) */
	int add_eos;           /* append EOS to each document */
	int add_special;       /* the post-processor's BOS/EOS (HF add_special_tokens) */
	int show_mask;         /* IDS: a second line per document with the mask, 0/1 */
	int assistant_only;    /* conversations: the loss on the assistant turns only
				  (TRL's assistant_only_loss); an input that is not a
				  conversation, or one without an assistant turn, is
				  TK_E_FORMAT */
	int skip_special;      /* DECODE: leave special tokens out of the text */
	int prompts;           /* DECODE: instead of each record, the prompt of each
				  document that starts in it (a documents record; a
				  block's segments after its first, which may continue
				  a document): its leading tokens out of the loss, when
				  tokens in the loss follow them */
	int null_end;          /* DECODE: end each text with a NUL byte, not "\n" */
	int threads;           /* encoding threads; 0: one per online CPU */
	/* (optional) called from the calling thread as work completes */
	void (*progress)(void *arg, const struct tk_tokenize_stats *st);
	void *progress_arg;
};

/* Sets HF's tokenizer(text) defaults: EOS appended (add_eos) and the
 * post-processor's special tokens (add_special); a shard out, the format
 * from each input's extension, threads 0 (one per online CPU); every
 * other field 0 or NULL. */
void tk_tokenize_opts_init(struct tk_tokenize_opts *o);

/* Runs o over tokenizer t, writing the shard, ids or text to out (named
 * out_name in messages; unused for STATS) and the totals to *st.  Text
 * inputs that yield no document at all are TK_E_FORMAT ("no documents in
 * ...").  Errors name the input file and line (reading, encoding), the
 * shard (reading, a tokenizer fingerprint that differs: TK_E_MISMATCH) or
 * the output.  On error some output may already have been written: the
 * caller discards it (afile.h).  t may be NULL for STATS and IDS of
 * token shards alone (TK_E_INVAL otherwise): shards are then not matched
 * to a tokenizer, and STATS counts no bytes (st->bytes stays 0). */
int tk_tokenize_run(const tk_tokenizer_t *t, const struct tk_tokenize_opts *o, FILE *out,
		    const char *out_name, struct tk_tokenize_stats *st, struct tk_diag *d);

#endif

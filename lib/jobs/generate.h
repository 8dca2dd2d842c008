/* generate.h - decoding as transformers' generate(), over the KV-cached
 * inference state of model/infer.h.
 *
 * Decoding follows transformers' generate(): the logits processors run in
 * its order (repetition penalty, then, when sampling, temperature, top-k,
 * top-p, min-p), greedy decoding takes the first largest score (as argmax),
 * and sampling draws from the softmax of the processed scores with tk's own
 * generator (xoshiro256** seeded with splitmix64, one uniform double per
 * token, inverse CDF in id order): the same seed gives the same tokens in tk
 * on every machine, but not those torch.multinomial would draw.
 */
#ifndef TK_GENERATE_H
#define TK_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/tk.h"
#include "model/infer.h"
#include "text/chat.h" /* tk_chat_*: the prompts tk-generate renders */
#include "text/tokenizer.h"

/* Where a decode spent its time (tk-generate --stats): the prompt pass
 * (through the pick of the first token of each sequence) and the passes
 * after it, each token of those counted once per sequence. */
struct tk_generate_stats {
	long prompt_tokens;         /* prompt ids fed */
	double prompt_s;            /* seconds, wall clock */
	long decode_tokens;         /* tokens generated after each sequence's first */
	double decode_s;
};

/* Decoding options, with transformers' names. */
struct tk_generate_opts {
	int do_sample;              /* 0: greedy */
	double temperature;         /* > 0; 1 leaves the scores */
	int top_k;                  /* 0: off (HF's default is 50) */
	double top_p;               /* in (0, 1]; 1: off */
	double min_p;               /* in [0, 1]; 0: off */
	double repetition_penalty;  /* > 0; 1: off */
	int max_new_tokens;
	uint64_t seed;
	const int64_t *eos;         /* stop after generating one of these */
	int n_eos;
	struct tk_generate_stats *stats; /* (optional) out: tk_generate_batch adds to it */
};

/* transformers' defaults: greedy, temperature 1, top_k 50, top_p 1, min_p
 * 0, repetition_penalty 1, max_new_tokens 20, seed 0, no EOS, no stats. */
void tk_generate_opts_init(struct tk_generate_opts *o);

/* Applies the logits processors of o to scores[V] in place, in
 * transformers' order: repetition penalty over the ctx tokens (each
 * distinct id once: a negative score is multiplied by the penalty, a
 * positive one divided), and when o->do_sample temperature, top-k (ties
 * with the k-th score kept), top-p (the smallest set of largest
 * probabilities whose sum exceeds top_p, at least one token) and min-p
 * (below min_p times the largest probability); removed tokens get -inf. */
void tk_generate_process(const struct tk_generate_opts *o, float *scores, int V, const uint32_t *ctx,
		    size_t n_ctx);

/* The next token from processed scores: the first largest score when
 * greedy, else a draw from their softmax with r. */
uint32_t tk_generate_pick(const struct tk_generate_opts *o, const float *scores, int V,
		     struct tk_rng *r);

/* Called with each generated token of sequence seq (the index into the
 * batch) and its log-probability under the processed distribution (the
 * log-softmax of the scores after the logits processors, as transformers'
 * compute_transition_scores(..., normalize_logits=True)); returning nonzero
 * stops that sequence after it (stop strings, a closed output). */
typedef int (*tk_generate_token_fn)(void *ctx, int seq, uint32_t id, float logprob);

/* The log-softmax of scores[V] at id (-inf for a removed token). */
float tk_generate_logprob(const float *scores, int V, uint32_t id);

/* One sequence of a batch for tk_generate_batch. */
struct tk_generate_seq {
	const uint32_t *prompt; /* in: n_prompt >= 1 ids */
	int n_prompt;
	int max_new_tokens;     /* in: < 0 for the options' */
	uint64_t seed;          /* in: the seed of this sequence's sampler */
	struct tk_ids out;      /* out: generated ids (EOS included) */
	float *logprobs;        /* out: [out.n] (free with tk_generate_seq_free) */
	int why;                /* out: as tk_generate's *why */
};

/* Frees the outputs of q (out and logprobs); the inputs stay. */
void tk_generate_seq_free(struct tk_generate_seq *q);

/* tk_generate for n <= tk_infer_n_seq(s) sequences at once, sequence i in
 * slot i of s (all reset first): the prompts in one pass, then one token
 * for each unfinished sequence per pass.  Each sequence draws from its own
 * generator seeded with q[i].seed, so every sequence gets the tokens (and,
 * up to GEMM summation order, the logits) it would get alone.  A sequence
 * stops as in tk_generate; the others go on.  Returns 0 or a negative
 * tk_err (the outputs then hold what was generated). */
int tk_generate_batch(struct tk_infer *s, const struct tk_generate_opts *o, struct tk_generate_seq *q,
		      int n, tk_generate_token_fn on_token, void *ctx, struct tk_diag *d);

/* Generates a continuation of prompt[n_prompt] (n_prompt >= 1) in
 * sequence 0 of s (reset first), sampling with seed o->seed: the prompt in one pass, then up to
 * o->max_new_tokens tokens, stopping after an EOS id, when the state is full
 * or when on_token asks.  The generated ids (EOS included, as transformers
 * returns it) are appended to out.  *why is set to 0 (max_new_tokens), 1
 * (EOS), 2 (the context is full) or 3 (on_token); why may be NULL.
 * Returns 0 or a negative tk_err. */
int tk_generate(struct tk_infer *s, const struct tk_generate_opts *o, const uint32_t *prompt,
		int n_prompt, tk_generate_token_fn on_token, void *ctx, struct tk_ids *out, int *why,
		struct tk_diag *d);

/* The EOS ids a model directory asks generation to stop at:
 * generation_config.json's eos_token_id (a number or a list), else
 * config.json's.  Up to max ids into ids; *n gets their count (0 when
 * neither file names one).  A missing generation_config.json is fine; an
 * unreadable or malformed one is an error naming it. */
int tk_generate_eos_ids(const char *dir, int64_t *ids, int max, int *n, struct tk_diag *d);

#endif

/* generate.h - inference with a KV cache, and decoding as transformers'
 * generate().
 *
 * An inference state (struct tk_infer) holds one sequence: a key and value
 * cache per layer for up to max_len positions.  tk_infer_feed() appends
 * tokens (the whole prompt in one pass, then one token at a time) and gives
 * the logits of the last position only.  The same ops as tk_model_forward
 * (backend.h) compute the projections, norms, RoPE (with the position
 * offset of the cache) and the MLP; attention over the cache is computed in
 * host memory, so a state needs a backend whose memory is host memory (the
 * CPU backend).
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

#include "model.h"
#include "tk.h"
#include "tokenizer.h"

struct tk_infer;

/* A state for model m (which must outlive it) with room for max_len
 * positions (at most the model's max_pos for learned positions).  Returns
 * 0, TK_E_INVAL or TK_E_NOMEM. */
int tk_infer_new(struct tk_infer **s, struct tk_model *m, int max_len, struct tk_diag *d);
void tk_infer_free(struct tk_infer *s);

/* Forgets the cached positions (the next feed starts at position 0). */
void tk_infer_reset(struct tk_infer *s);

/* Positions cached so far, and room for at most. */
int tk_infer_len(const struct tk_infer *s);
int tk_infer_max_len(const struct tk_infer *s);
/* The model's vocab_size (the length of the logits). */
int tk_infer_vocab(const struct tk_infer *s);

/* Runs the n tokens ids at positions len .. len+n-1 through the model,
 * attending to the cache and to each other causally, adds their keys and
 * values to the cache, and writes the logits of the last of them to
 * logits[vocab_size].  TK_E_INVAL for n < 1, an id not below vocab_size or
 * more positions than max_len (the cache is then unchanged). */
int tk_infer_feed(struct tk_infer *s, const uint32_t *ids, int n, float *logits,
		  struct tk_diag *d);

/* Decoding options, with transformers' names. */
struct tk_gen_opts {
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
};

/* transformers' defaults: greedy, temperature 1, top_k 50, top_p 1, min_p
 * 0, repetition_penalty 1, max_new_tokens 20, seed 0, no EOS. */
void tk_gen_opts_init(struct tk_gen_opts *o);

/* Applies the logits processors of o to scores[V] in place, in
 * transformers' order: repetition penalty over the ctx tokens (each
 * distinct id once: a negative score is multiplied by the penalty, a
 * positive one divided), and when o->do_sample temperature, top-k (ties
 * with the k-th score kept), top-p (the smallest set of largest
 * probabilities whose sum exceeds top_p, at least one token) and min-p
 * (below min_p times the largest probability); removed tokens get -inf. */
void tk_gen_process(const struct tk_gen_opts *o, float *scores, int V, const uint32_t *ctx,
		    size_t n_ctx);

/* The next token from processed scores: the first largest score when
 * greedy, else a draw from their softmax with r. */
uint32_t tk_gen_pick(const struct tk_gen_opts *o, const float *scores, int V,
		     struct tk_rng *r);

/* Called with each generated token; returning nonzero stops generation
 * after it (stop strings, a closed output). */
typedef int (*tk_gen_token_fn)(void *ctx, uint32_t id);

/* Generates a continuation of prompt[n_prompt] (n_prompt >= 1) into the
 * fresh (reset) state s: the prompt in one pass, then up to
 * o->max_new_tokens tokens, stopping after an EOS id, when the state is full
 * or when on_token asks.  The generated ids (EOS included, as transformers
 * returns it) are appended to out.  *why is set to 0 (max_new_tokens), 1
 * (EOS), 2 (the context is full) or 3 (on_token); why may be NULL.
 * Returns 0 or a negative tk_err. */
int tk_generate(struct tk_infer *s, const struct tk_gen_opts *o, const uint32_t *prompt,
		int n_prompt, tk_gen_token_fn on_token, void *ctx, struct tk_ids *out, int *why,
		struct tk_diag *d);

/* The EOS ids a model directory asks generation to stop at:
 * generation_config.json's eos_token_id (a number or a list), else
 * config.json's.  Up to max ids into ids; *n gets their count (0 when
 * neither file names one).  A missing generation_config.json is fine; an
 * unreadable or malformed one is an error naming it. */
int tk_gen_eos_ids(const char *dir, int64_t *ids, int max, int *n, struct tk_diag *d);

#endif

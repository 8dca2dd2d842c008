/* generate.h - inference with a KV cache, and decoding as transformers'
 * generate().
 *
 * An inference state (struct tk_infer) holds n_seq sequences: a key and
 * value cache per layer and sequence for up to max_len positions.
 * tk_infer_feed_spans() appends tokens to several sequences in one pass (the
 * whole prompts at once, then one token per sequence at a time: the rows of
 * all of them go through each weight matrix together) and gives the logits
 * of the last position of each.  The same ops as tk_model_forward
 * (backend.h) compute the projections, norms, RoPE (with the position
 * offset of the cache) and the MLP; the cache is the backend's memory and
 * the attention over it the backend's attention_decode, quantized weights
 * go through its qmatmul for small batches (model-infer.c).
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

#include "model/model.h"
#include "base/tk.h"
#include "text/tokenizer.h"

struct tk_infer;

/* A state for model m (which must outlive it) with n_seq >= 1 sequences of
 * room for max_len positions each (at most the model's max_pos for learned
 * positions); the cache takes n_layer * n_seq * max_len * 2 * kv_dim floats.
 * A Mistral sliding window W masks keys more than W - 1 positions back, as
 * transformers does.  Returns 0, TK_E_INVAL or TK_E_NOMEM. */
int tk_infer_new_batch(struct tk_infer **s, struct tk_model *m, int n_seq, int max_len,
		       struct tk_diag *d);
/* tk_infer_new_batch with one sequence. */
int tk_infer_new(struct tk_infer **s, struct tk_model *m, int max_len, struct tk_diag *d);
void tk_infer_free(struct tk_infer *s);

/* Forgets the cached positions of every sequence, or of one (the next feed
 * starts at position 0). */
void tk_infer_reset(struct tk_infer *s);
void tk_infer_reset_seq(struct tk_infer *s, int seq);

/* Positions cached so far in sequence 0 (tk_infer_len) or seq, the number
 * of sequences, and the room of each. */
int tk_infer_len(const struct tk_infer *s);
int tk_infer_seq_len(const struct tk_infer *s, int seq);
int tk_infer_n_seq(const struct tk_infer *s);
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

/* New tokens for one sequence. */
struct tk_infer_span {
	int seq;             /* 0 .. n_seq-1, each at most once per pass */
	const uint32_t *ids; /* n >= 1 ids */
	int n;
};

/* tk_infer_feed for nsp spans of different sequences in one pass: their
 * rows go through the model together, each attending to its own sequence,
 * and logits[k * vocab_size ..] gets the logits of the last token of span
 * k.  The result for a span does not depend on the others (up to the
 * summation order of the GEMM).  TK_E_INVAL (nothing cached) for a bad
 * sequence, a repeated one, n < 1, a bad id or a span that does not fit. */
int tk_infer_feed_spans(struct tk_infer *s, const struct tk_infer_span *sp, int nsp,
			float *logits, struct tk_diag *d);

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

/* Called with each generated token of sequence seq (the index into the
 * batch) and its log-probability under the processed distribution (the
 * log-softmax of the scores after the logits processors, as transformers'
 * compute_transition_scores(..., normalize_logits=True)); returning nonzero
 * stops that sequence after it (stop strings, a closed output). */
typedef int (*tk_gen_token_fn)(void *ctx, int seq, uint32_t id, float logprob);

/* The log-softmax of scores[V] at id (-inf for a removed token). */
float tk_gen_logprob(const float *scores, int V, uint32_t id);

/* One sequence of a batch for tk_generate_batch. */
struct tk_gen_seq {
	const uint32_t *prompt; /* in: n_prompt >= 1 ids */
	int n_prompt;
	int max_new_tokens;     /* in: < 0 for the options' */
	uint64_t seed;          /* in: the seed of this sequence's sampler */
	struct tk_ids out;      /* out: generated ids (EOS included) */
	float *logprobs;        /* out: [out.n] (free with tk_gen_seq_free) */
	int why;                /* out: as tk_generate's *why */
};

/* Frees the outputs of q (out and logprobs); the inputs stay. */
void tk_gen_seq_free(struct tk_gen_seq *q);

/* tk_generate for n <= tk_infer_n_seq(s) sequences at once, sequence i in
 * slot i of s (all reset first): the prompts in one pass, then one token
 * for each unfinished sequence per pass.  Each sequence draws from its own
 * generator seeded with q[i].seed, so every sequence gets the tokens (and,
 * up to GEMM summation order, the logits) it would get alone.  A sequence
 * stops as in tk_generate; the others go on.  Returns 0 or a negative
 * tk_err (the outputs then hold what was generated). */
int tk_generate_batch(struct tk_infer *s, const struct tk_gen_opts *o, struct tk_gen_seq *q,
		      int n, tk_gen_token_fn on_token, void *ctx, struct tk_diag *d);

/* Generates a continuation of prompt[n_prompt] (n_prompt >= 1) in
 * sequence 0 of s (reset first), sampling with seed o->seed: the prompt in one pass, then up to
 * o->max_new_tokens tokens, stopping after an EOS id, when the state is full
 * or when on_token asks.  The generated ids (EOS included, as transformers
 * returns it) are appended to out.  *why is set to 0 (max_new_tokens), 1
 * (EOS), 2 (the context is full) or 3 (on_token); why may be NULL.
 * Returns 0 or a negative tk_err. */
int tk_generate(struct tk_infer *s, const struct tk_gen_opts *o, const uint32_t *prompt,
		int n_prompt, tk_gen_token_fn on_token, void *ctx, struct tk_ids *out, int *why,
		struct tk_diag *d);

/* A chat template tk recognises in a model directory (tk renders the
 * common ones itself and has no Jinja interpreter). */
enum tk_chat_kind { TK_CHAT_CHATML = 1, TK_CHAT_LLAMA2, TK_CHAT_LLAMA3 };

struct tk_chat {
	enum tk_chat_kind kind;
	char *bos;            /* bos_token text ("" when none) */
	char *eos;            /* eos_token text ("" when none) */
	char *default_system; /* ChatML: the system message the template adds
				 when the conversation has none (NULL: none) */
};

/* Reads the chat template of model directory dir (tokenizer_config.json's
 * chat_template: a string, or a list of {name, template} of which the one
 * named "default"; else chat_template.jinja) and recognises it: ChatML
 * (<|im_start|>role\ncontent<|im_end|>\n), Llama-2 ([INST] ... [/INST]
 * with <<SYS>>) or Llama-3 (<|start_header_id|>role<|end_header_id|>).
 * TK_E_FORMAT when there is no template or the file is malformed, TK_E_UNSUPPORTED for a template tk does not know; d says
 * which.  Free with tk_chat_free. */
int tk_chat_load(struct tk_chat *c, const char *dir, struct tk_diag *d);
void tk_chat_free(struct tk_chat *c);

/* Where the chat template of a tokenizer PATH is (tk-generate --tokenizer,
 * tk-tokenize -t): PATH itself when it is a directory, else the directory
 * of the file; dflt when path is NULL.  Returns dir or buf (of cap). */
const char *tk_chat_dir(const char *path, const char *dflt, char *buf, size_t cap);

/* Appends to out (NUL-terminated) what apply_chat_template(messages,
 * add_generation_prompt=True, tokenize=False) gives for the conversation of
 * an optional system message (NULL: none) and one user message.  Encode it
 * without adding special tokens (the template has them).  Returns 0 or
 * TK_E_NOMEM. */
int tk_chat_render(const struct tk_chat *c, const char *system, const char *user,
		   struct tk_buf *out);

/* One message of a conversation ({"role": ..., "content": ...}). */
struct tk_chat_msg {
	const char *role;
	const char *content;
};

/* Appends to out (NUL-terminated) what apply_chat_template(messages,
 * add_generation_prompt=True, tokenize=False) gives for the n messages m
 * (any roles for ChatML and Llama-3; Llama-2 takes an optional system
 * message first, then user and assistant turns in turn, as its template
 * demands).  ChatML adds the template's default system message when the
 * first message is not a system message.  Returns 0, TK_E_INVAL (d says
 * which message is wrong) or TK_E_NOMEM. */
int tk_chat_render_msgs(const struct tk_chat *c, const struct tk_chat_msg *m, int n,
			struct tk_buf *out, struct tk_diag *d);

/* Flags of tk_chat_render_spans. */
#define TK_CHAT_GENERATION_PROMPT 1u /* end with the assistant's header */

/* Appends to out what apply_chat_template(messages, add_generation_prompt
 * = flags & TK_CHAT_GENERATION_PROMPT, tokenize=False) gives (as
 * tk_chat_render_msgs), and, when spans is not NULL, the byte ranges
 * [spans[2i], spans[2i+1]) (offsets from where the text starts in out) of
 * the assistant turns' trained part, as TRL's training templates mark it
 * with {% generation %}: ChatML "\ncontent<|im_end|>\n" after the role,
 * Llama-3 the trimmed content and <|eot_id|>, Llama-2 " content </s>".
 * spans has room for 2 n entries; *n_spans gets the count. */
int tk_chat_render_spans(const struct tk_chat *c, const struct tk_chat_msg *m, int n,
			 unsigned flags, struct tk_buf *out, size_t *spans, int *n_spans,
			 struct tk_diag *d);

/* The EOS ids a model directory asks generation to stop at:
 * generation_config.json's eos_token_id (a number or a list), else
 * config.json's.  Up to max ids into ids; *n gets their count (0 when
 * neither file names one).  A missing generation_config.json is fine; an
 * unreadable or malformed one is an error naming it. */
int tk_gen_eos_ids(const char *dir, int64_t *ids, int max, int *n, struct tk_diag *d);

#endif

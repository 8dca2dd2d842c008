/* infer.h - inference with a KV cache (model-infer.c).
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
 * go through its qmatmul for small batches (model-infer.c).  Decoding over
 * it (transformers' generate()) is jobs/generate.h.
 */
#ifndef TK_INFER_H
#define TK_INFER_H

#include <stdint.h>

#include "base/tk.h"
#include "model/model.h"

struct tk_infer;

/* A state for model m (which must outlive it) with n_seq >= 1 sequences of
 * room for max_len positions each (at most the model's max_pos for learned
 * positions); the cache takes n_layer * n_seq * max_len * 2 * kv_dim floats
 * (or bf16 values, tk_infer_new_cache).
 * A layer's sliding window W (the config's layer_window: Mistral, Qwen2,
 * Gemma's local layers) masks keys more than W - 1 positions back, as
 * transformers does.  Returns 0, TK_E_INVAL or TK_E_NOMEM. */
int tk_infer_new_batch(struct tk_infer **s, struct tk_model *m, int n_seq, int max_len,
		       struct tk_diag *d);
/* The KV cache's element type: float (transformers' for an fp32 model),
 * or bf16 (transformers' for a bf16 one; llama.cpp's --cache-type-k/v
 * bf16): half the memory, each key and value rounded to bf16 (ties to
 * even) as it is stored, the attention over them in fp32 as with floats.
 * TK_E_UNSUPPORTED where the backend keeps no bf16 cache (its
 * store_rows_bf16 is NULL). */
enum tk_cache_type { TK_CACHE_F32, TK_CACHE_BF16 };
/* tk_infer_new_batch with the cache's type. */
int tk_infer_new_cache(struct tk_infer **s, struct tk_model *m, int n_seq, int max_len,
		       enum tk_cache_type type, struct tk_diag *d);
/* tk_infer_new_batch with one sequence. */
int tk_infer_new(struct tk_infer **s, struct tk_model *m, int max_len, struct tk_diag *d);
void tk_infer_free(struct tk_infer *s);

/* Forgets the cached positions of sequence seq (its next feed starts at
 * position 0); a seq out of range is ignored. */
void tk_infer_reset_seq(struct tk_infer *s, int seq);

/* Positions cached so far in sequence 0 (tk_infer_len) or seq, the number
 * of sequences, and the room of each. */
int tk_infer_len(const struct tk_infer *s);
int tk_infer_seq_len(const struct tk_infer *s, int seq);
int tk_infer_n_seq(const struct tk_infer *s);
int tk_infer_max_len(const struct tk_infer *s);
/* The model's vocab_size (the length of the logits). */
int tk_infer_vocab(const struct tk_infer *s);

/* The length n at which generate() drops a sequence's cache and runs the
 * whole sequence again, for a model whose transformers class does (Phi-3:
 * when the sequence first reaches original_max_position_embeddings + 1
 * tokens with at most that many cached, so that LongRoPE's long factors
 * rotate every key); 0 for the others. */
int tk_infer_recompute_len(const struct tk_infer *s);

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

#endif

/* tokenizer.h - Hugging Face tokenizers (BPE), with identical ids.
 *
 * Loads a tokenizer.json (or legacy vocab.json + merges.txt) and encodes
 * UTF-8 text exactly as the Hugging Face `tokenizers` library does:
 * added/special tokens first, then the normalizer, the pre-tokenizer,
 * the BPE model and the post-processor.  Supported: BPE models, byte-level
 * (GPT-2, Llama-3, Qwen2) and SentencePiece-style with byte_fallback
 * (Llama-2, Mistral, TinyLlama).  Other model types fail with
 * TK_E_UNSUPPORTED naming the type.
 *
 * A loaded tk_tokenizer_t is read-only and may be shared by threads; each
 * thread encodes through its own tk_encoder_t (caches, regex scratch).
 */
#ifndef TK_TOKENIZER_H
#define TK_TOKENIZER_H

#include <stdint.h>

#include "base/tk.h"

typedef struct tk_tokenizer tk_tokenizer_t;
typedef struct tk_encoder tk_encoder_t;

/* A growable array of token ids. */
struct tk_ids {
	uint32_t *v;
	size_t n, cap;
};
int tk_ids_push(struct tk_ids *ids, uint32_t id);
void tk_ids_free(struct tk_ids *ids);

/* Loads a tokenizer from path: a directory (tokenizer.json, else
 * vocab.json + merges.txt, with tokenizer_config.json for special tokens
 * when present), a tokenizer.json file, or a GGUF file (its tokenizer.ggml.*
 * vocabulary, read as tk_gguf_tokenizer_json in gguf.h describes).  Errors
 * name the file and what is wrong (not JSON, not BPE, missing vocab...). */
int tk_tokenizer_load(tk_tokenizer_t **t, const char *path, struct tk_diag *d);
void tk_tokenizer_free(tk_tokenizer_t *t);

/* Largest id + 1, added tokens included. */
uint32_t tk_tokenizer_vocab_size(const tk_tokenizer_t *t);

/* 16 lowercase hex digits identifying the vocabulary, merges, special
 * tokens and the normalization/pre-tokenization settings: two tokenizers
 * that encode alike have the same fingerprint. */
const char *tk_tokenizer_fingerprint(const tk_tokenizer_t *t);

/* Special ids, -1 when the tokenizer has none.  eos: the tokenizer's EOS
 * (tokenizer_config.json eos_token, else the post-processor's, else a
 * well-known name such as <|endoftext|> or </s>). */
int64_t tk_tokenizer_bos_id(const tk_tokenizer_t *t);
int64_t tk_tokenizer_eos_id(const tk_tokenizer_t *t);
int64_t tk_tokenizer_pad_id(const tk_tokenizer_t *t);

/* Id of a token string (vocab or added), -1 if absent. */
int64_t tk_tokenizer_token_id(const tk_tokenizer_t *t, const char *token);

/* The token string for an id (as stored in the vocab), NULL if out of range. */
const char *tk_tokenizer_token(const tk_tokenizer_t *t, uint32_t id);

/* Whether the post-processor adds a BOS and/or EOS when add_special is set. */
int tk_tokenizer_adds_bos(const tk_tokenizer_t *t);
int tk_tokenizer_adds_eos(const tk_tokenizer_t *t);

/* Per-thread encoding workspace. */
int tk_encoder_new(const tk_tokenizer_t *t, tk_encoder_t **e);
void tk_encoder_free(tk_encoder_t *e);

enum {
	TK_ENCODE_ADD_SPECIAL = 1, /* apply the post-processor (BOS/EOS) as HF's
				      add_special_tokens=True */
};

/* Encodes len bytes of valid UTF-8 and appends the ids to out.  Text that
 * is not valid UTF-8 is TK_E_FORMAT (callers validate or repair first, see
 * tk_utf8_valid). */
int tk_encode(tk_encoder_t *e, const char *text, size_t len, unsigned flags,
	      struct tk_ids *out);

/* Decodes ids to text as HF's decode(ids, skip_special_tokens) does, appending
 * to out (NUL-terminated).  Ids out of range are TK_E_INVAL. */
int tk_decode(const tk_tokenizer_t *t, const uint32_t *ids, size_t n, int skip_special,
	      struct tk_buf *out);

/* The pre-tokenizer patterns of the well-known byte-level tokenizers
 * (GPT-2; Llama-3; Qwen2), as their tokenizer.json files spell them.  tk
 * recognises them and scans with hand-written code instead of PCRE2. */
extern const char tk_rx_gpt2[], tk_rx_llama3[], tk_rx_qwen2[];

/* Length of the longest valid UTF-8 prefix of s (== len when all valid). */
size_t tk_utf8_valid(const char *s, size_t len);

/* Replaces each maximal invalid subsequence with U+FFFD, as Python's
 * bytes.decode("utf-8", errors="replace") does, appending to out. */
int tk_utf8_repair(const char *s, size_t len, struct tk_buf *out);

#endif

/* convert.h - llama.cpp GGUF models to Hugging Face model directories and back.
 *
 * Import reads a GGUF file (gguf.h), turns its general.architecture and
 * ARCH.* hyperparameters into a config.json, its tensors (dequantized to
 * fp32, then stored as F32, F16 or BF16) into model.safetensors under the
 * names and layouts transformers uses, and its tokenizer.ggml.* vocabulary
 * into tokenizer.json and tokenizer_config.json; generation_config.json
 * holds the bos/eos/pad ids the file names, as transformers derives it
 * when it loads the GGUF.
 *
 * Architectures: llama (Llama, Mistral, SmolLM2, TinyLlama...), qwen2,
 * qwen3, phi3 and gpt2.  GGUF stores a matrix [out, in] as dims {in, out}; the row-major
 * data is then the nn.Linear layout.  llama.cpp's converter permutes the
 * rows of llama's q and k projections (weights and biases) for its rotary
 * layout: per head, reshape(2, head_dim/2).T; import undoes it, so that
 * GGUF row h*hd + 2j + i goes to HF row h*hd + i*hd/2 + j.  GPT-2's Conv1D
 * weights, which the converter transposed to [out, in], are transposed
 * back to [in, out].  The embedding is tied (no lm_head.weight) when
 * output.weight is absent or holds the same bytes as token_embd.weight
 * (older converters wrote GPT-2's tied head as a copy).  A llama file
 * with llama.attention.sliding_window (which tk's export writes for a
 * Mistral with a window) becomes model_type mistral with that
 * sliding_window; without the key, a Mistral is the llama it is equal to.
 * phi3 (Phi-3, Phi-3.5, Phi-4-mini, as llama.cpp's Phi3MiniModel writes
 * it): blk.N.attn_qkv and blk.N.ffn_up (gate, then up) are transformers'
 * fused qkv_proj and gate_up_proj as they are; rope.dimension_count below
 * the head size is partial_rotary_factor; rope_factors_long/short.weight
 * are LongRoPE's factors, with rope.scaling.original_context_length and
 * rope.scaling.attn_factor (kept where it is not the default transformers
 * derives); attention.sliding_window 0 is none.
 */
#ifndef TK_CONVERT_H
#define TK_CONVERT_H

#include <stdint.h>

#include "formats/safetensors.h"
#include "base/tk.h"

struct tk_convert_opts {
	const char *input;      /* a .gguf file */
	const char *output;     /* the model directory to create */
	enum tk_dtype outtype;  /* TK_DT_F32, TK_DT_F16 or TK_DT_BF16 */
	int force;              /* replace an existing output directory */
};

struct tk_convert_result {
	char arch[32];          /* general.architecture */
	int n_tensors;          /* tensors written */
	uint64_t n_params;      /* their elements */
	int tokenizer;          /* tokenizer files written (the file had a vocabulary) */
};

/* The architectures import handles, comma-separated ("gpt2, llama, qwen2, qwen3,
 * phi3, gemma2, gemma3"). */
extern const char tk_convert_archs[];

/* Converts o->input into the directory o->output, which appears whole
 * (config.json, model.safetensors, generation_config.json, tokenizer.json,
 * tokenizer_config.json) or not at all.  Returns 0 and fills *r (may be NULL), or: TK_E_FORMAT for
 * a malformed file, missing hyperparameters, a missing tensor or one of the
 * wrong shape (named); TK_E_UNSUPPORTED for an architecture other than the
 * above (named, with the supported ones), a tensor import does not know
 * (named), rope scaling or a quantization type tk cannot dequantize;
 * TK_E_EXISTS when the output exists and !o->force; TK_E_INVAL for another
 * outtype; TK_E_IO or TK_E_NOMEM. */
int tk_convert_gguf(const struct tk_convert_opts *o, struct tk_convert_result *r,
		    struct tk_diag *d);

/* The inverse of llama.cpp's rotary row permutation (see above) for a
 * [n_head * head_dim, cols] matrix, or a bias with cols 1: src and dst
 * must not overlap.  head_dim must be even. */
void tk_convert_unpermute(float *dst, const float *src, int n_head, int head_dim, int64_t cols);

/* ---- export: a model directory to a GGUF file ----
 *
 * The directory is loaded with tk_model_load (any model tk runs: F32, F16
 * or BF16, sharded or not) and written as llama.cpp's convert_hf_to_gguf.py
 * writes it: general.architecture llama (for Llama and Mistral), qwen2 or
 * gpt2, the ARCH.* hyperparameters (and, for a Mistral whose
 * sliding_window is shorter than its context, llama.attention.sliding_window,
 * the gguf package's key, which import reads back; llama.cpp's converter
 * writes Mistral as llama without a window, which is the same model for
 * contexts up to the window), tensor names token_embd, blk.N.attn_q
 * ..., matrices [out, in] (GPT-2's Conv1D transposed), llama's q and k
 * rows permuted (tk_convert_permute), a tied head not written.  Matrices
 * take the outtype; 1-D tensors and GPT-2's position_embd stay F32, and a
 * matrix whose rows are not a whole number of 32-value blocks falls back
 * to F16, as the converter does.  A tokenizer.json (byte-level BPE: GPT-2,
 * Llama-3, Qwen2, SmolLM pre-tokenization) becomes tokenizer.ggml.*
 * (model gpt2, tokens padded to the vocabulary size with [PADn], token
 * types, merges, pre, special ids); without one the file has no
 * vocabulary. */
struct tk_convert_export_opts {
	const char *input;      /* the model directory */
	const char *output;     /* the .gguf file to write ("-": stdout) */
	int outtype;            /* TK_GGML_F32, F16, BF16, Q8_0 or Q4_0 */
	const char *name;       /* general.name (NULL: the directory's base name) */
	int force;              /* replace an existing output file */
};

/* Writes o->output whole or not at all.  Returns 0 and fills *r (may be
 * NULL; r->tokenizer tells whether a vocabulary was written), or what
 * tk_model_load returns for the directory, TK_E_UNSUPPORTED for a
 * tokenizer.json export does not handle or a model llama.cpp cannot run
 * as converted (named: a rope scaling other than phi3's LongRoPE, a phi3
 * whose head_dim is not hidden / heads, smollm3's layers without RoPE, a
 * Gemma setting llama.cpp has no key for),
 * TK_E_EXISTS, TK_E_INVAL for another outtype,
 * TK_E_IO or TK_E_NOMEM. */
int tk_convert_export(const struct tk_convert_export_opts *o, struct tk_convert_result *r,
		      struct tk_diag *d);

/* llama.cpp's rotary row permutation (LlamaModel.permute): GGUF row
 * h*hd + 2j + i takes HF row h*hd + i*hd/2 + j; the inverse of
 * tk_convert_unpermute, same arguments. */
void tk_convert_permute(float *dst, const float *src, int n_head, int head_dim, int64_t cols);

#endif

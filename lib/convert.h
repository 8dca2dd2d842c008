/* convert.h - llama.cpp GGUF models to Hugging Face model directories.
 *
 * Import reads a GGUF file (gguf.h), turns its general.architecture and
 * ARCH.* hyperparameters into a config.json, its tensors (dequantized to
 * fp32, then stored as F32, F16 or BF16) into model.safetensors under the
 * names and layouts transformers uses, and its tokenizer.ggml.* vocabulary
 * into tokenizer.json and tokenizer_config.json.
 *
 * Architectures: llama (Llama, Mistral, SmolLM2, TinyLlama...), qwen2 and
 * gpt2.  GGUF stores a matrix [out, in] as dims {in, out}; the row-major
 * data is then the nn.Linear layout.  llama.cpp's converter permutes the
 * rows of llama's q and k projections (weights and biases) for its rotary
 * layout: per head, reshape(2, head_dim/2).T; import undoes it, so that
 * GGUF row h*hd + 2j + i goes to HF row h*hd + i*hd/2 + j.  GPT-2's Conv1D
 * weights, which the converter transposed to [out, in], are transposed
 * back to [in, out].  The embedding is tied (no lm_head.weight) when
 * output.weight is absent or holds the same bytes as token_embd.weight
 * (older converters wrote GPT-2's tied head as a copy).
 */
#ifndef TK_CONVERT_H
#define TK_CONVERT_H

#include <stdint.h>

#include "safetensors.h"
#include "tk.h"

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

/* The architectures import handles, comma-separated ("gpt2, llama, qwen2"). */
extern const char tk_convert_archs[];

/* Converts o->input into the directory o->output, which appears whole
 * (config.json, model.safetensors, tokenizer.json, tokenizer_config.json)
 * or not at all.  Returns 0 and fills *r (may be NULL), or: TK_E_FORMAT for
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

#endif

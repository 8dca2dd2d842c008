/* bnb.h - bitsandbytes-quantized Hugging Face model directories: what
 * transformers writes with load_in_4bit / load_in_8bit and save_pretrained.
 *
 * 4-bit: per quantized Linear, WEIGHT (U8 [n/2, 1] packed codes),
 * WEIGHT.absmax, WEIGHT.quant_map (F32[16]), with double quantization
 * WEIGHT.nested_absmax and WEIGHT.nested_quant_map (F32[256]), and
 * WEIGHT.quant_state.bitsandbytes__nf4 (or __fp4): U8 bytes of a JSON
 * object (quant_type, blocksize, dtype, shape, nested_blocksize,
 * nested_dtype, nested_offset).  8-bit: WEIGHT as I8 [out, in],
 * MODULE.SCB (F32 [out], the row absmax) and MODULE.weight_format (U8
 * scalar 0: row-major), where WEIGHT is MODULE.weight.  config.json
 * carries quantization_config.
 * Embeddings, norms and lm_head stay in floating point; GPT-2 Conv1D
 * weights are transposed to [out, in] before quantizing.
 */
#ifndef TK_BNB_H
#define TK_BNB_H

#include <stddef.h>
#include <stdint.h>

#include "base/quant.h"
#include "formats/safetensors.h"
#include "base/tk.h"

/* quantization_config of a config.json. */
struct tk_bnb_config {
	int bits;                 /* 0: not quantized; 4 or 8 */
	enum tk_q4_type type;     /* 4-bit: bnb_4bit_quant_type */
	int double_quant;         /* bnb_4bit_use_double_quant */
	size_t blocksize;         /* 64 unless the quant states say otherwise */
	char compute_dtype[16];   /* bnb_4bit_compute_dtype: float32, float16, bfloat16 */
};

/* Reads quantization_config from dir/config.json (or the file path);
 * c->bits is 0 when there is none.  A quant_method other than bitsandbytes
 * (gptq, awq...) is TK_E_UNSUPPORTED naming it. */
int tk_bnb_config_read(const char *path, struct tk_bnb_config *c, struct tk_diag *d);

/* Reads the quantized weight name (e.g. "model.layers.0.mlp.up_proj.weight")
 * from st into q, which must come out [rows, cols].  Missing statistics
 * (absmax, quant_state...) or a shape that differs are TK_E_FORMAT naming
 * the tensor and what is missing. */
int tk_bnb_read_weight(const tk_safetensors_t *st, const char *name, int64_t rows, int64_t cols,
		       struct tk_qweight *q, struct tk_diag *d);

/* Options of tk-quantize (transformers' BitsAndBytesConfig names). */
struct tk_bnb_opts {
	int bits;                 /* 4 or 8 */
	enum tk_q4_type type;
	int double_quant;
	size_t blocksize;         /* 64 */
	char compute_dtype[16];   /* recorded in quantization_config */
	int torch_threads;        /* torch's thread count for the double-quant mean */
	/* (optional) called before the first tensor (name NULL, done 0) and
	 * after each tensor with the input bytes handled so far */
	void (*progress)(void *arg, const char *name, uint64_t done, uint64_t total);
	void *progress_arg;
	/* (optional) checks the input directory once its config.json and
	 * tensors have passed tk_bnb_quantize_dir's own checks and before
	 * anything is written: nonzero (with d set) stops the run */
	int (*check)(const char *in, struct tk_diag *d);
};

/* Sets transformers' BitsAndBytesConfig defaults for a 4-bit load: bits
 * 4, NF4, no double quantization, blocksize 64, compute dtype float32, and
 * torch's thread count (the online CPUs); no progress. */
void tk_bnb_opts_init(struct tk_bnb_opts *o);

/* Checks o: bits 4 or 8, a known type, a blocksize bitsandbytes accepts
 * (tk_q4_blocksize_ok), compute_dtype empty or float32/float16/bfloat16.
 * Returns 0 or TK_E_INVAL saying what is wrong. */
int tk_bnb_check_opts(const struct tk_bnb_opts *o, struct tk_diag *d);

/* Quantizes the model directory in into out (a new directory with
 * model.safetensors, config.json with quantization_config, and the
 * tokenizer and generation files copied), as transformers + bitsandbytes
 * write it after from_pretrained(in, quantization_config=...) and
 * save_pretrained: the weights of every Linear / Conv1D (2-D ".weight"
 * tensors other than embeddings and lm_head) are quantized after a cast
 * to the model dtype (config.json dtype/torch_dtype, else the first
 * floating-point tensor's); other floating-point tensors are cast to that
 * dtype; GPT-2 Conv1D weights are transposed first.  4-bit double
 * quantization subtracts tk_q4_torch_mean(absmax, n, o->torch_threads).
 * 8-bit rounds to fp16 first, then code = round(w * (127 / rowmax)).
 * The output is one model.safetensors whatever the input's sharding.
 * An input that is already quantized is TK_E_INVAL; a non-finite weight is
 * TK_E_FORMAT naming it; existing output without force is TK_E_EXISTS;
 * nothing partial is left. */
int tk_bnb_quantize_dir(const char *in, const char *out, const struct tk_bnb_opts *o, int force,
			struct tk_diag *d);

#endif

/* model.h - the decoder: one model for GPT-2 and the Llama family.
 *
 * struct tk_model_config (config.h) decides everything: LayerNorm or
 * RMSNorm, learned or rotary positions, GELU-tanh MLP or SwiGLU, which
 * projections have biases, grouped-query attention, tied or untied lm head.
 * There is one forward and one hand-written backward for all of them, and
 * they call the backend ops table (backend.h) only.
 *
 * Parameters live in one fp32 arena (m->params) and their gradients in a
 * second one of the same layout (m->grads).  m->tensors names every
 * parameter with its Hugging Face name ("transformer.h.0.attn.c_attn.weight",
 * "model.layers.0.self_attn.q_proj.weight", ...) and its shape as stored in
 * a checkpoint.  Matrices are kept [out, in] (as nn.Linear) in the arenas;
 * GPT-2's Conv1D weights, stored [in, out] on disk, are transposed when
 * loaded and saved (t->conv1d), never during a step.  Tied models have no
 * lm_head tensor: the head uses the token embedding.
 *
 * Sequences: ids [B, T] row-major, b-th sequence at ids + b*T, positions
 * 0..T-1 in each.  Loss targets are aligned with the positions that predict
 * them: targets[b*T + t] is the token that position t should predict, or
 * any negative value (HF uses -100) to ignore it.  Hugging Face models take
 * labels == input_ids and shift inside; tk_model_shift_labels() does that
 * shift, so that tk_model_forward on its output gives HF's loss exactly.
 *
 * A model is used by one thread at a time; the backend parallelises each op.
 */
#ifndef TK_MODEL_H
#define TK_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "compute/backend.h"
#include "formats/config.h"
#include "model/lora.h"
#include "base/quant.h"
#include "formats/safetensors.h"
#include "base/tk.h"

struct tk_model_tensor {
	char name[128];    /* Hugging Face name */
	int ndim;          /* 1 or 2 */
	int64_t shape[2];  /* as stored in a checkpoint (Conv1D: [in, out]) */
	size_t off;        /* offset in floats into m->params and m->grads */
	size_t voff;       /* offset in the layout without quantized tensors
			      taken out (== off in a model without any) */
	size_t n;          /* elements */
	int conv1d;        /* [in, out] on disk, [out, in] in the arenas */
	int decay;         /* weight decay applies: matrices and embeddings, not
			      biases and norm weights (as HF's Trainer) */
	int trainable;     /* gets a gradient: every tensor, until LoRA adapters
			      freeze the base (lora.h) */
	struct tk_qweight *q; /* non-NULL: held quantized (frozen); the arenas
				 have no room for it and off is unused */
};

/* Loss of one forward pass. */
struct tk_model_loss {
	float loss;        /* sum / count (HF's mean); NaN when count is 0 */
	double sum;        /* summed cross-entropy of the counted positions */
	long count;        /* positions with a target >= 0 */
};

struct tk_model_run; /* activations saved for the backward pass (private) */

struct tk_model {
	struct tk_model_config cfg;
	struct tk_backend *be;        /* not owned */
	float *params;                /* n_params floats, backend memory */
	float *grads;                 /* NULL until a forward with want_grad */
	size_t n_params;              /* arena length (with alignment padding) */
	struct tk_model_tensor *tensors;
	int n_tensors;
	struct tk_model_run *run;
	struct tk_lora *lora;         /* adapters (lora.h), NULL when none */
	int n_quantized;              /* tensors held quantized */
	/* NEFTune: a forward with want_grad adds uniform noise in [-a, a),
	 * a = neftune_alpha / sqrt(T * hidden), to the token embeddings (as
	 * transformers' hook on get_input_embeddings(), before GPT-2's
	 * position embeddings), drawn from the stream (noise_seed,
	 * noise_step); 0 (the default): none.  Never in evaluation or
	 * generation. */
	float neftune_alpha;
	uint64_t noise_seed, noise_step;
};

/* A parameter an optimizer updates: a base tensor (t set; p and g in the
 * arena layout, tk_model_export gives the checkpoint layout) or an adapter
 * matrix (t NULL; p and g row-major in shape). */
struct tk_param {
	const char *name;   /* HF tensor name, or the PEFT key of A or B */
	float *p, *g;
	size_t n;
	int decay;
	const struct tk_model_tensor *t;
	int ndim;
	int64_t shape[2];
};

/* Loads a Hugging Face model directory: config.json (tk_config_load) and
 * model.safetensors or its shards (tk_safetensors_open), F32/F16/BF16 converted to
 * fp32.  GPT-2 names are accepted with or without the "transformer."
 * prefix; attn.bias / attn.masked_bias buffers, rotary inv_freq buffers and
 * a tied model's lm_head.weight are ignored.  A missing tensor is
 * TK_E_FORMAT naming it; a tensor of the wrong shape is TK_E_FORMAT naming
 * it with the expected and the found shape.  A directory quantized by
 * bitsandbytes (config.json quantization_config, bnb.h) keeps its
 * quantized linear weights quantized in memory (t->q), frozen; the rest
 * loads as fp32.  On failure *m is left empty (safe to tk_model_free). */
int tk_model_load(struct tk_model *m, const char *dir, struct tk_backend *be,
		  struct tk_diag *d);

/* tk_model_load's flags (tk_model_load_ex). */
enum {
	/* For inference on the CPU backend (ignored elsewhere): the weight
	 * matrices the file stores as F16 or BF16 (linear layers, the
	 * embedding, the lm head) stay 16-bit in memory (t->q, a half
	 * tk_qweight: frozen), widened to fp32 in the matmuls, which is exact:
	 * the model computes what it would with them loaded as fp32, from
	 * half the memory and half the bytes read per decode step.  Training
	 * such a model trains adapters only (as a quantized one). */
	TK_LOAD_HALF = 1u << 0,
	/* For inference on the CPU backend (ignored elsewhere): the 4-bit
	 * weights quantized with double quantization hold their blocks'
	 * absmax as fp32 (tk_qweight_flatten_absmax: the same values, so the
	 * same results), 3 more bytes per block of 64 weights, and the
	 * decode loops read them instead of decoding each (6-12% faster
	 * 4-bit products on a 2-core Zen 3). */
	TK_LOAD_ABSMAX_F32 = 1u << 1,
};

/* tk_model_load with flags (TK_LOAD_*). */
int tk_model_load_ex(struct tk_model *m, const char *dir, struct tk_backend *be, unsigned flags,
		     struct tk_diag *d);

/* The token embedding's tensor (the lm head's too when tied). */
const struct tk_model_tensor *tk_model_embedding(const struct tk_model *m);

/* Checks a model directory as tk_model_load would load it, reading no
 * weights: config.json describes a model tk runs, and the safetensors
 * hold each of its tensors with the shape the config gives and a
 * floating-point dtype (the first that does not is named in d).  For a
 * tool that passes the weights on without loading them (tk-quantize). */
int tk_model_check_dir(const char *dir, struct tk_diag *d);

/* A fresh model for a configuration, initialised as transformers'
 * _init_weights does: Linear/Conv1D weights and embeddings normal(0,
 * initializer_range), biases 0, norm weights 1 (LayerNorm biases 0), GPT-2's
 * attn.c_proj and mlp.c_proj weights normal(0, initializer_range /
 * sqrt(2 * n_layer)), the padding row of a Llama-family embedding zero.
 * The random numbers are tk's own (xoshiro256** seeded from seed, Box-Muller),
 * not torch's: the same seed gives the same model in tk on every machine and
 * thread count, but not the model torch.manual_seed(seed) would give. */
int tk_model_init(struct tk_model *m, const struct tk_model_config *c, uint64_t seed,
		  struct tk_backend *be, struct tk_diag *d);

/* A random model whose linear-layer weights are quantized (type NF4 or
 * FP4, blocks of 64, double quantization when nested) as they are drawn,
 * never held whole in fp32: for benchmarks and tests of shapes too large
 * for fp32 memory (a 7B model).  Linear weights are uniform with the
 * standard deviation initializer_range (not tk_model_init's normal draws),
 * the rest as tk_model_init; seeded, the same on every machine. */
int tk_model_init_quantized(struct tk_model *m, const struct tk_model_config *c,
			    enum tk_q4_type type, int nested, uint64_t seed,
			    struct tk_backend *be, struct tk_diag *d);

/* Writes dir/model.safetensors (F32, Hugging Face names and layouts, tied
 * lm_head omitted as save_pretrained does, metadata format=pt) and
 * dir/config.json (torch_dtype float32), creating dir if needed; each file
 * atomically.  Without force, an existing model.safetensors or config.json
 * is TK_E_EXISTS and nothing is written. */
int tk_model_save(const struct tk_model *m, const char *dir, int force, struct tk_diag *d);

/* The parameters training updates, in a fixed order (adapter matrices
 * first, then trainable base tensors in table order), with their gradient
 * buffers (allocated and zeroed here if they were not).  The array belongs
 * to the model and stays valid until adapters are attached, merged or
 * detached, or the model is freed. */
int tk_model_trainable(struct tk_model *m, const struct tk_param **out, int *n,
		       struct tk_diag *d);

/* The optimizer state over tk_model_trainable's parameters, from the
 * shapes alone (the memory plan asks before the gradients exist):
 * returns the floats of one fp32 arena, each parameter starting 16-float
 * (64-byte) aligned, as tk_train_run lays out exp_avg and exp_avg_sq;
 * *bytes8 (may be NULL) gets bitsandbytes' 8-bit AdamW state
 * (tk_adamw8_state_bytes, 8-bit where tk_adamw8_eight says). */
size_t tk_model_opt_floats(const struct tk_model *m, size_t *bytes8);

/* Sum of the element counts of every tensor (quantized ones included), and
 * of the adapters' matrices when m has adapters: peft's "all params". */
uint64_t tk_model_count_params(const struct tk_model *m);

/* Replaces every quantized tensor by its fp32 dequantization in the
 * arena (the arena grows).  0 at once for a model without any. */
int tk_model_dequantize(struct tk_model *m, struct tk_diag *d);

/* tk_model_dequantize for the half tensors only (TK_LOAD_HALF): they
 * become fp32 in the arena, exactly their values; 4-bit and int8 ones stay
 * quantized.  0 at once for a model without any. */
int tk_model_widen_half(struct tk_model *m, struct tk_diag *d);

/* tk_model_save writing the weights as dtype (TK_DT_F32, TK_DT_F16 or
 * TK_DT_BF16, round to nearest even; config.json's torch_dtype says so).
 * A model with quantized tensors is TK_E_UNSUPPORTED. */
int tk_model_save_dtype(const struct tk_model *m, const char *dir, enum tk_dtype dtype,
			int force, struct tk_diag *d);

/* Releases everything the model holds (not the backend); *m is zeroed. */
void tk_model_free(struct tk_model *m);

/* The tensor with this Hugging Face name, NULL if none. */
const struct tk_model_tensor *tk_model_find(const struct tk_model *m, const char *name);

/* Copies tensor t of arena (m->params or m->grads) into dst in the layout
 * of a checkpoint (shape t->shape; Conv1D transposed back). */
void tk_model_export(const struct tk_model *m, const struct tk_model_tensor *t,
		     const float *arena, float *dst);

/* The inverse of tk_model_export: src in the layout of a checkpoint into
 * tensor t of arena (optimizer state, imported gradients). */
void tk_model_import(const struct tk_model *m, const struct tk_model_tensor *t,
		     const float *src, float *arena);

/* HF's label shift: targets[b*T + t] = labels[b*T + t + 1] and
 * targets[b*T + T-1] = -100, for each of the B rows. */
void tk_model_shift_labels(const int32_t *labels, int B, int T, int32_t *targets);

/* Runs the model on ids [B, T] (each < vocab_size; T <= max positions for
 * learned positions).  With targets (see above) it fills *loss; targets may
 * be NULL (then loss is NULL too, and want_grad must be 0).
 *
 * With want_grad it also keeps what the backward needs and already
 * accumulates the lm head's weight gradient into m->grads (the logits are
 * computed in chunks of rows and never held for all B*T positions at once);
 * the gradient is that of sum / grad_div, where grad_div <= 0 means count
 * (the gradient of the mean, as model(ids, labels=...).loss.backward()) and
 * a caller accumulating several batches passes their total count instead,
 * as HF's Trainer does with num_items_in_batch.  m->grads is allocated
 * (zeroed) the first time.  Returns 0, TK_E_INVAL for ids or shapes out of
 * range (named), TK_E_NOMEM, or a backend error. */
int tk_model_forward(struct tk_model *m, const uint32_t *ids, const int32_t *targets, int B,
		     int T, int want_grad, double grad_div, struct tk_model_loss *loss,
		     struct tk_diag *d);

/* Completes the backward pass of the last forward (which must have had
 * want_grad), accumulating every parameter's gradient into m->grads.
 * TK_E_INVAL when there is no such forward. */
int tk_model_backward(struct tk_model *m, struct tk_diag *d);

/* Sets m->grads to zero (allocating it if needed). */
int tk_model_zero_grad(struct tk_model *m, struct tk_diag *d);

/* Gradient checkpointing, as transformers' gradient_checkpointing_enable():
 * with on, a forward keeps only each layer's input (the residual stream
 * entering it) and one layer's activations, which every layer overwrites
 * in turn, and tk_model_backward recomputes a layer's activations from its
 * input just before back-propagating through it.  That is one more forward
 * through the layers per step for n_layer - 1 fewer sets of activations.
 * The recomputation runs the same ops on the same inputs, so the loss and
 * the gradients are bit-identical to those without it.  Takes effect at
 * the next tk_model_forward (a backward follows the mode of its forward);
 * the memory of the other mode is given back then.  Off by default. */
void tk_model_set_checkpointing(struct tk_model *m, int on);

/* Bytes of the activation and scratch buffers tk_model_forward allocates
 * for a B x T batch in the current checkpointing mode (0 for an empty
 * shape).  Parameters, gradients and optimizer state are not counted. */
size_t tk_model_run_bytes(const struct tk_model *m, int B, int T);
/* As tk_model_run_bytes with checkpointing ckpt (0 or 1) whatever the
 * current mode: what a run in that mode would allocate (lib/model/memplan.h). */
size_t tk_model_act_bytes(const struct tk_model *m, int B, int T, int ckpt);

/* Logits of rows row0 .. row0+nrows-1 (row = b*T + t) of the last forward,
 * into out [nrows, vocab_size].  For inspection and sampling. */
int tk_model_logits(struct tk_model *m, int row0, int nrows, float *out, struct tk_diag *d);

#endif

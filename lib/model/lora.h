/* lora.h - LoRA adapters on the decoder's linear layers, as peft's LoRA.
 *
 * An adapter on a linear layer W [out, in] adds scale * B A x to W x, with
 * A [r, in] and B [out, r] trained and W frozen; scale is alpha / r, or
 * alpha / sqrt(r) with rsLoRA.  GPT-2's fused c_attn gets one adapter
 * whose B rows cover q, k and v in turn, as peft's adapter on the Conv1D
 * does.  With dropout p the adapter sees dropout(x) (peft's lora_dropout;
 * the base path never does); tk draws the masks from a counter-based hash
 * of (seed, step, layer, module, element) so the backward pass needs no
 * stored mask.
 *
 * Attaching freezes the base model: afterwards only the adapters' A and B,
 * the base tensors of modules_to_save and, per `bias`, base biases get
 * gradients (struct tk_model_tensor.trainable); tk_model_trainable() lists
 * what an optimizer updates.  Base weights may be quantized (tk_qweight).
 */
#ifndef TK_LORA_H
#define TK_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "base/options.h"
#include "base/tk.h"

struct tk_model;
struct tk_model_tensor;

#define TK_LORA_MAX_TARGETS 16
#define TK_LORA_NAME 64

enum tk_lora_bias { TK_LORA_BIAS_NONE = 0, TK_LORA_BIAS_ALL, TK_LORA_BIAS_LORA_ONLY };

/* peft's LoraConfig, the fields tk implements. */
struct tk_lora_config {
	int r;                    /* rank, > 0 (peft default 8) */
	double alpha;             /* lora_alpha, > 0 (peft default 8) */
	double dropout;           /* lora_dropout in [0, 1) (default 0) */
	/* target_modules: module names matched as peft matches a list (the
	 * whole module path, or its last component(s) after a '.'), or the one
	 * entry "all-linear" (every linear layer but the lm head).  None: peft's
	 * default for the architecture (GPT-2 c_attn; Llama family q_proj,
	 * v_proj; Phi-3 has none in peft: tk_lora_attach refuses, as peft). */
	char targets[TK_LORA_MAX_TARGETS][TK_LORA_NAME];
	int n_targets;
	enum tk_lora_bias bias;   /* default none */
	int use_rslora;
	/* use_dora: DoRA (peft's use_dora), see "DoRA" below */
	int use_dora;
	/* modules_to_save: base modules trained in full and saved with the
	 * adapter ("lm_head", "embed_tokens", "wte"...), matched as peft
	 * does: every module whose path ends with the name ("norm" takes
	 * input_layernorm and post_attention_layernorm too) */
	char modules_to_save[TK_LORA_MAX_TARGETS][TK_LORA_NAME];
	int n_modules_to_save;
	/* ensure_weight_tying (peft's): a saved token embedding that the lm
	 * head is tied to is trained as one tensor for both, the head included.
	 * Without it peft trains a copy for the input only and keeps the head
	 * on the original weights, which tk does not do: tk_lora_attach
	 * refuses that case rather than train something else. */
	int ensure_weight_tying;
	int fan_in_fan_out;       /* set by tk_lora_attach: 1 for GPT-2 (Conv1D) */
	char base_model[1024];    /* base_model_name_or_path ("" when unknown) */
};

/* One adapted module. */
struct tk_lora_adapter {
	char module[128];         /* HF module path: "model.layers.0.self_attn.q_proj" */
	int layer;
	int in, out;              /* A [r, in], B [out, r] */
	size_t a_off, b_off;      /* floats into lora->params and lora->grads */
	size_t m_off;             /* DoRA: the magnitude [out], likewise (0 without) */
	const struct tk_model_tensor *base; /* the weight it adapts */
};

struct tk_lora_run;           /* forward/backward scratch (private) */

struct tk_lora {
	struct tk_lora_config cfg;
	float scale;
	struct tk_lora_adapter *ad;
	int n_ad;
	float *params, *grads;    /* [n_params]; grads NULL until needed */
	size_t n_params;
	uint64_t seed;            /* dropout masks */
	uint64_t step;            /* forwards with gradients so far (dropout masks) */
	int training;             /* the last forward kept gradients: dropout applies */
	struct tk_lora_run *run;
};

/* peft's defaults: r 8, alpha 8, dropout 0, no targets (the architecture's
 * default), bias none, no rsLoRA, nothing to save. */
void tk_lora_config_init(struct tk_lora_config *c);

/* peft's bias words ("none", "all", "lora_only") with their value, for a
 * CHOICE option. */
extern const struct tk_opt_choice tk_lora_biases[];

/* Parses "none", "all" or "lora_only". 0 or TK_E_INVAL. */
int tk_lora_bias_parse(const char *s, enum tk_lora_bias *b);
const char *tk_lora_bias_name(enum tk_lora_bias b);

/* Attaches adapters per c to every matching linear layer of m (which has
 * none yet): A Kaiming-uniform as peft initialises it (bound 1/sqrt(in),
 * drawn from tk's generator seeded with seed: not the numbers torch would
 * draw), B zero, so the model computes what it did before.  Freezes the
 * base as described above.  TK_E_INVAL for r <= 0, alpha <= 0, dropout out
 * of range, a target or module to save that matches nothing (the message
 * lists the model's module names), or a model that has adapters. */
int tk_lora_attach(struct tk_model *m, const struct tk_lora_config *c, uint64_t seed,
		   struct tk_diag *d);

/* The adapter of module (HF path), NULL if none. */
const struct tk_lora_adapter *tk_lora_find(const struct tk_lora *l, const char *module);

/* 1 when the base tensor of this name belongs to a module to save. */
int tk_lora_saves(const struct tk_lora *l, const char *tensor_name);

/* Merges weight * scale * B A into the base weights (dequantizing a
 * quantized base to fp32 first, tk_model_dequantize) and removes the
 * adapters; modules_to_save stay as trained.  The base is trainable again
 * afterwards.  weight 1 is peft's merge_and_unload.  With DoRA each row of
 * W + scale * B A is then multiplied by m / its norm (peft's merge); a
 * weight other than 1 is TK_E_UNSUPPORTED there (peft defines none). */
int tk_lora_merge(struct tk_model *m, double weight, struct tk_diag *d);

/* Removes the adapters without merging; the base is trainable again. */
void tk_lora_detach(struct tk_model *m);

/* DoRA (use_dora, peft's DoraLinearLayer): each adapter also has a
 * magnitude m [out], and the layer computes
 *     y = (m / n) * (W x + scale * B A x) + bias,
 *     n = the norm of each row of W + scale * B A (over the input dim),
 * with n detached as peft detaches it: no gradient flows through it, so m
 * gets sum(dy * (W x + scale B A x)) / n and A, B their LoRA gradients
 * with dy scaled by m / n.  With dropout in training the adapter path and
 * the W x that m scales both see dropout(x), while the base output W x is
 * still computed from x (peft's base_result recomputed from dropout(x)).
 * m starts as n (so a fresh adapter changes nothing).  GPT-2's Conv1D is
 * held [out, in] like any linear layer, so its rows are peft's transposed
 * columns.  A quantized W is dequantized to compute n.  DoRA runs on the
 * CPU backend only: tk_lora_attach refuses it on another
 * (TK_E_UNSUPPORTED). */

/* Dropout applies in forwards that keep gradients (tk_model_forward with
 * want_grad), with new masks in each; never in inference or evaluation. */

#endif

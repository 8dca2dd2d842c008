/* config.h - Hugging Face model configurations (config.json).
 *
 * One description covers every decoder tk runs: GPT-2 (LayerNorm, learned
 * positions, GELU-tanh MLP, biases, Conv1D weights stored [in, out]) and the
 * Llama family (Llama, Mistral, Qwen2, Qwen3, SmolLM3, Phi-3: RMSNorm,
 * rotary positions with the scalings of transformers' modeling_rope_utils,
 * SwiGLU, grouped-query attention, Qwen2's attention biases, Qwen3's
 * per-head q/k norms, Phi-3's fused projections and partial rotary) with
 * Gemma-2/3's additions (the fields below).  The model code reads only
 * this struct, never model_type.
 */
#ifndef TK_CONFIG_H
#define TK_CONFIG_H

#include <stdint.h>

#include "base/tk.h"

enum tk_arch { TK_ARCH_GPT2 = 0, TK_ARCH_LLAMA, TK_ARCH_MISTRAL, TK_ARCH_QWEN2, TK_ARCH_QWEN3,
	       TK_ARCH_SMOLLM3, TK_ARCH_PHI3, TK_ARCH_GEMMA2, TK_ARCH_GEMMA3, TK_ARCH_N };
enum tk_norm { TK_NORM_LAYER = 0, TK_NORM_RMS };
enum tk_pos { TK_POS_LEARNED = 0, TK_POS_ROPE };
enum tk_mlp { TK_MLP_GELU = 0 /* fc -> gelu_new -> proj */, TK_MLP_SWIGLU,
	      TK_MLP_GEGLU /* gelu_pytorch_tanh(gate) * up, Gemma */ };

/* rope_type of rope_parameters (rope_scaling in 4.x). */
enum tk_rope_type { TK_ROPE_DEFAULT = 0, TK_ROPE_LINEAR, TK_ROPE_DYNAMIC, TK_ROPE_YARN,
		    TK_ROPE_LONGROPE, TK_ROPE_LLAMA3 };

/* Most rotary pairs (head_dim / 2) tk takes. */
#define TK_ROPE_MAX_PAIRS 512

/* Most layers tk takes. */
#define TK_MAX_LAYERS 1024

/* The rotary scaling: what model/rope.h needs to compute transformers'
 * inverse frequencies and attention scaling.  The numbers are kept as
 * config.json gives them (doubles: transformers derives some in Python
 * floats before rounding to fp32); a key that was absent is 0 here and is
 * not written back (has says which were given). */
struct tk_rope_config {
	enum tk_rope_type type;
	double factor;           /* linear, dynamic, yarn, llama3; longrope: 0 absent */
	double low_freq_factor, high_freq_factor;   /* llama3 */
	double beta_fast, beta_slow;                /* yarn, 0: absent (32, 1) */
	double attention_factor;                    /* yarn, longrope, 0: absent */
	double mscale, mscale_all_dim;              /* yarn, 0: absent */
	int truncate;                               /* yarn (default true) */
	/* original_max_position_embeddings (llama3, yarn, longrope): from the
	 * top level of config.json (as Phi-3 has it), else from the rope
	 * parameters, else max_position_embeddings */
	int orig_max_pos;
	unsigned has;                               /* TK_ROPE_HAS_* */
	int n_factors;                              /* longrope: rotary_dim / 2 */
	float long_factor[TK_ROPE_MAX_PAIRS], short_factor[TK_ROPE_MAX_PAIRS];
};
enum { TK_ROPE_HAS_ORIG = 1, TK_ROPE_HAS_ORIG_TOP = 2, TK_ROPE_HAS_TRUNCATE = 4 };

struct tk_model_config {
	enum tk_arch arch;
	char model_type[32];     /* as in config.json */
	int vocab_size;
	int hidden;              /* n_embd / hidden_size */
	int n_layer;
	int n_head;
	int n_kv_head;           /* == n_head without GQA */
	int head_dim;            /* hidden / n_head unless config.json says */
	int intermediate;        /* MLP width (GPT-2: n_inner or 4*hidden) */
	int max_pos;             /* n_positions / max_position_embeddings */
	enum tk_norm norm;
	float norm_eps;          /* layer_norm_epsilon / rms_norm_eps */
	enum tk_pos pos;
	float rope_theta;
	/* The width of each head that RoPE rotates, its first rotary_dim
	 * numbers (pairs (i, i + rotary_dim / 2)); the rest pass through.
	 * head_dim but where Phi-3's partial_rotary_factor p makes it
	 * int(head_dim * p), as transformers does; 0 without rotary
	 * positions. */
	int rotary_dim;
	double partial_rotary;   /* partial_rotary_factor as read; 0: absent */
	struct tk_rope_config rope;
	enum tk_mlp mlp;
	int attn_bias;           /* q/k/v (and GPT-2 output) projections have biases */
	int attn_out_bias;       /* output projection has a bias */
	int mlp_bias;
	int qk_norm;             /* Qwen3: RMSNorm over each head of q and k before RoPE */
	/* Phi-3: q, k and v are the rows of one qkv_proj (in that order), the
	 * gate and up projections the two halves of one gate_up_proj */
	int fused;
	/* SmolLM3's no_rope_layers, inverted: 1 where layer l has no rotary
	 * embedding (its attention sees no positions); all 0 elsewhere */
	unsigned char no_rope[TK_MAX_LAYERS];
	int no_rope_interval;    /* SmolLM3's no_rope_layer_interval, written back */
	int tie_embeddings;      /* lm_head shares the token embedding */
	float initializer_range;
	int scale_attn_by_inverse_layer_idx; /* GPT-2 option; unsupported when set */
	/* Dropout probabilities as config.json gives them, kept so that a saved
	 * model carries them on: GPT-2's resid_pdrop, embd_pdrop, attn_pdrop
	 * (transformers' default 0.1 each; Phi-3's resid_pdrop and
	 * embd_pdrop, default 0); the Llama family's attention_dropout in
	 * [2] (default 0).  tk applies no dropout. */
	float dropout[3];
	/* config.json's sliding_window, written back.  Mistral, Phi-3: 0 when
	 * attention is fully causal (null, or at least max_pos, where the
	 * window never excludes a position).  Qwen2, Qwen3, SmolLM3: the
	 * window of the layers layer_types calls "sliding_attention", 0 when
	 * the key is null or (Qwen2, Qwen3) use_sliding_window is false
	 * (transformers' config then holds None; SmolLM3's keeps its window).
	 * The model reads layer_window, never this. */
	int sliding_window;
	int use_sliding_window;  /* Qwen2, Qwen3, SmolLM3: as read, written back */
	int max_window_layers;   /* Qwen2, Qwen3: as read (default 28), written back */
	/* The sliding window of each layer, 0 for full causal attention: query
	 * i of layer l sees keys j with i - layer_window[l] < j <= i
	 * (transformers' sliding-window mask; a window of at least the
	 * sequence length is full attention).  Mistral: sliding_window on
	 * every layer.  Qwen2/Qwen3: sliding_window on the layers layer_types
	 * names "sliding_attention", which transformers derives, when absent,
	 * as the layers l >= max_window_layers when use_sliding_window.
	 * SmolLM3: the same from layer_types (whatever use_sliding_window, as
	 * its eager mask does), derived as its NoPE layers when
	 * use_sliding_window.  Gemma-2/3: the local layers (sliding_window),
	 * 0 on the global ones.  Saving writes layer_types back from it (a
	 * layer slides where its window is not 0). */
	int layer_window[TK_MAX_LAYERS];
	/* Gemma-2 and Gemma-3 (all 0 elsewhere).  norm_offset: RMSNorm
	 * multiplies by (norm_offset + weight) in fp32, Gemma's 1.  embed_scale:
	 * the token embeddings are multiplied by it (sqrt(hidden) rounded to
	 * fp32, as transformers' normalizer in an fp32 model).  sandwich_norm:
	 * four norms a layer: input_layernorm, post_attention_layernorm on the
	 * attention output before the residual add, pre_feedforward_layernorm
	 * before the MLP, post_feedforward_layernorm on its output.
	 * query_pre_attn_scalar: scores are scaled by its -0.5th power (0:
	 * 1/sqrt(head_dim)).  attn_softcap and final_softcap: scores and final
	 * logits x become cap * tanh(x / cap) (0: none).  rope_local_theta:
	 * Gemma-3's sliding layers (layer_window[l] > 0) rotate by plain RoPE
	 * of this theta, the full ones by rope_theta and rope (0: all by
	 * those). */
	float norm_offset;
	float embed_scale;
	int sandwich_norm;
	float query_pre_attn_scalar;
	float attn_softcap, final_softcap;
	float rope_local_theta;
	int64_t bos_id, eos_id, pad_id;      /* -1 when absent */
	char torch_dtype[16];    /* "float32", "bfloat16"... ("" when absent) */
};

/* Reads config.json (path: the file or its directory).  Unknown model_type
 * is TK_E_UNSUPPORTED with a message listing the supported ones; options
 * tk does not implement are TK_E_UNSUPPORTED naming the key: a rope_type
 * other than default, linear, dynamic, yarn, longrope and llama3 (in
 * rope_scaling or rope_parameters; phi3: default and longrope, and its
 * older su and yarn as longrope, as Phi3Config does), a
 * partial_rotary_factor other than 1 outside phi3 (phi3: one that
 * rotates an odd number of each head; TK_E_FORMAT outside (0, 1]), an
 * activation other than gelu_new /
 * gelu_pytorch_tanh (GPT-2), silu (Llama family) or, as Gemma's
 * hidden_activation, gelu_pytorch_tanh, Gemma's use_bidirectional_attention, GPT-2's
 * scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn,
 * add_cross_attention or scale_attn_weights=false, and a layer_types entry
 * other than "full_attention" and "sliding_attention" (Qwen2, Qwen3,
 * SmolLM3; SmolLM3's no_rope_layers must have one 0 or 1 per layer).
 * Sliding windows (Mistral's and Phi-3's sliding_window; Qwen2's, Qwen3's
 * and SmolLM3's use_sliding_window, sliding_window, max_window_layers and
 * layer_types) are read into layer_window as transformers derives them; a
 * layer_types list that is not one entry per layer, or that names a
 * sliding layer while the config has no window (use_sliding_window false
 * or sliding_window null, where transformers fails), is TK_E_FORMAT.
 * Phi-3's resid_pdrop and embd_pdrop are kept in dropout[0] and [1], as
 * GPT-2's.  A rope scaling without the keys transformers reads for it
 * (factor; llama3's low_freq_factor and high_freq_factor; longrope's
 * long_factor and short_factor of rotary_dim / 2 numbers) is TK_E_FORMAT
 * naming the key.  Keys that are absent take transformers' class
 * defaults (5.x); both the 4.x (rope_theta, rope_scaling, torch_dtype) and
 * 5.x (rope_parameters, dtype) spellings are read.  An eos_token_id list
 * gives its first id.
 *
 * Values the forward pass cannot use are TK_E_FORMAT naming the key: a
 * size that is not an integer from 1 to tk's limit for it (vocabulary
 * 4194304, width 65536, MLP width 262144, 1024 layers, heads and
 * head_dim, 16777216 positions; beyond any released model, and small
 * enough that no size derived from them overflows), an explicit head_dim
 * or num_key_value_heads of 0, a width that the heads do not divide, an
 * odd head_dim with rotary positions, rope_theta or a norm epsilon that
 * is not a positive number a float holds (0, negative, 1e-50, 1e39). */
int tk_config_load(struct tk_model_config *c, const char *path, struct tk_diag *d);

/* Parses a config.json text (name is used in messages). */
int tk_config_parse(struct tk_model_config *c, const char *json, const char *name,
		    struct tk_diag *d);

/* Writes config.json for c (atomically) so that transformers' AutoConfig
 * (4.x and 5.x) reads the same model: keys sorted, two-space indent, as
 * save_pretrained writes; rope_theta both at the top and in
 * rope_parameters (with the scaling's keys as they were read), the dtype
 * as torch_dtype.  extra is a JSON object text
 * whose keys are added or replace the generated ones (may be NULL; not an
 * object is TK_E_INVAL). */
int tk_config_save(const struct tk_model_config *c, const char *path, const char *extra,
		   int force, struct tk_diag *d);

/* The largest of c->dropout: the dropout transformers would train with. */
float tk_config_max_dropout(const struct tk_model_config *c);

/* Number of parameters the config implies (tied weights counted once), as
 * sum(p.numel() for p in model.parameters()) of the transformers model. */
uint64_t tk_config_n_params(const struct tk_model_config *c);

#endif

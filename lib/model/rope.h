/* rope.h - the rotary inverse frequencies and attention scaling of a
 * configuration, as transformers computes them (modeling_rope_utils.py,
 * 5.x): plain RoPE and the linear, dynamic (NTK), YaRN, LongRoPE and
 * Llama-3 scalings.  The tables are made on the host, in the fp32
 * operations and order torch performs, and both backends rotate by them
 * (tk_rope takes the table), so the CPU and the GPU share one table.
 */
#ifndef TK_ROPE_H
#define TK_ROPE_H

#include "formats/config.h"

/* What transformers' rotary embedding module holds between forwards:
 * dynamic NTK recomputes its table when a forward reaches past the longest
 * sequence it has seen (max_seq_len_cached), and goes back to the original
 * table when one is shorter than max_position_embeddings again; LongRoPE
 * picks its long or short factors by each forward's length.  Zeroed is
 * "not yet initialised". */
struct tk_rope_state {
	int ready;
	int cached;                       /* max_seq_len_cached (dynamic) */
	float scale;                      /* attention_scaling */
	float inv[TK_ROPE_MAX_PAIRS];     /* inv_freq */
};

/* The table for sequences of seq_len positions (0: the one transformers
 * computes at init, rope_init_fn(config) without seq_len), rotary_dim / 2
 * floats into inv, and the attention scaling into *scale.  seq_len is
 * what dynamic (NTK, computed as torch does with a tensor seq_len) and
 * LongRoPE (long factors past original_max_position_embeddings) read; the
 * other types ignore it. */
void tk_rope_table(const struct tk_model_config *c, int seq_len, float *inv, float *scale);

/* Before a forward whose largest position is seq_len - 1: updates st as
 * transformers' dynamic_rope_update does and returns the table that
 * forward rotates by (st->inv; st->scale its scaling). */
const float *tk_rope_update(struct tk_rope_state *st, const struct tk_model_config *c,
			    int seq_len);

/* Gemma-3's table for its sliding layers: plain RoPE of theta
 * c->rope_local_theta (transformers' local rotary embedding, attention
 * scaling 1), head_dim / 2 floats into inv. */
void tk_rope_local_table(const struct tk_model_config *c, float *inv);

#endif

/* model-int.h - what lib/model.c (tensors, load, save, init) and
 * lib/model-run.c (forward, backward) share.  Not for other modules.
 */
#ifndef TK_MODEL_INT_H
#define TK_MODEL_INT_H

#include "model.h"

/* Where one layer's parameters are: offsets in floats into the arenas, -1
 * for a parameter this configuration does not have.  GPT-2's fused c_attn
 * is one tensor whose [out, in] rows are q, k, v in turn, so q_w/k_w/v_w
 * (and the biases) point into it. */
struct tk_layer_off {
	long ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
	long ln2_w, ln2_b, fc_w, fc_b, up_w, up_b, dn_w, dn_b;
};

/* Activations of one layer kept for the backward pass. */
struct tk_layer_act {
	float *ln1, *ln1_mean, *ln1_rstd; /* [N, C], [N], [N] */
	float *q, *k, *v;                 /* after RoPE: [N, Q], [N, Kd], [N, Kd] */
	float *att, *lse;                 /* [N, Q], [B, H, T] */
	float *mid;                       /* residual after attention [N, C] */
	float *ln2, *ln2_mean, *ln2_rstd;
	float *h1, *h2, *act;             /* fc or gate, up (SwiGLU), activation [N, F] */
};

struct tk_model_run {
	/* layout (fixed when the model is made) */
	struct tk_layer_off *lo;          /* [n_layer] */
	long emb, pos, lnf_w, lnf_b, head; /* head == emb when tied */
	int q_dim, kv_dim;                /* n_head*head_dim, n_kv_head*head_dim */

	/* activations, carved for B*T rows out of one block that grows as
	 * needed (and is made again when the checkpointing mode changes) */
	void *mem;                        /* one block, backend memory */
	size_t cap_bytes;                 /* its size */
	int mem_ckpt;                     /* the mode it was sized for */
	int ckpt;                         /* gradient checkpointing (set by the caller) */
	int B, T, have_fwd, have_grad;
	float *res;                       /* [n_layer + 1][N, C] residual stream */
	struct tk_layer_act *la;          /* [n_layer]; with ckpt all alias one set */
	float *lnf, *lnf_mean, *lnf_rstd; /* final norm */
	float *dlnf;                      /* d loss / d lnf, from the lm head */
	float *dres, *dtmp, *dq, *dk, *dv, *datt, *dh1, *dh2, *dact; /* backward scratch */
	float *chunk;                     /* lm head rows [CHUNK, V] */
	uint32_t *pos_ids;                /* [N]: t of row b*T + t */
	uint32_t *ids;                    /* [N]: the last forward's ids */
};

/* lm head rows at a time.  Each chunk repacks the [V, C] head matrix in
 * OpenBLAS: 64 rows gave 2500 tokens/s and 128 rows 3000 on a 7M-parameter
 * GPT-2 with its 50257-token vocabulary (B 4, T 256, 2 threads), for 12 MB
 * more of logits. */
#define TK_MODEL_CHUNK 128

#endif

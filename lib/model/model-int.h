/* model-int.h - what lib/model/model.c (tensors, load, save, init) and
 * lib/model/model-run.c (forward, backward) share.  Not for other modules.
 */
#ifndef TK_MODEL_INT_H
#define TK_MODEL_INT_H

#include <math.h>

#include "model/model.h"
#include "model/rope.h"

/* Returns the error of x, if any, from the function it is in. */
#define CHECK(x)                  \
	do {                      \
		int err_ = (x);   \
		if (err_)         \
			return err_; \
	} while (0)

/* Where one layer's parameters are: offsets in floats into the arenas, -1
 * for a parameter this configuration does not have.  GPT-2's fused c_attn
 * is one tensor whose [out, in] rows are q, k, v in turn, so q_w/k_w/v_w
 * (and the biases) point into it. */
struct tk_layer_off {
	long ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
	long ln2_w, ln2_b, fc_w, fc_b, up_w, up_b, dn_w, dn_b;
	long qn_w, kn_w;                  /* Qwen3's q_norm, k_norm [head_dim] */
	/* Gemma's post_attention_layernorm and post_feedforward_layernorm
	 * (sandwich_norm; ln2 is then pre_feedforward_layernorm), else -1 */
	long pa_w, pf_w;
};

/* The seven linear layers of a decoder layer.  GPT-2's c_attn is three
 * slices (Q, K, V) of one tensor; GPT-2 has no UP. */
enum tk_lin_slot { TK_LIN_Q = 0, TK_LIN_K, TK_LIN_V, TK_LIN_O, TK_LIN_FC, TK_LIN_UP, TK_LIN_DN,
		   TK_LIN_N };

/* One linear layer (or slice of one): y[rows, out] = x[rows, in] W^T + b
 * with W rows row0 .. row0+out-1 of tensor tw (arena [out, in] layout or
 * quantized), bias rows row0.. of tensor tb, plus its LoRA adapter (ad:
 * index into m->lora->ad, -1 none; B rows row0..). */
struct tk_lin {
	int tw, tb;                       /* tensor indices, -1: none */
	long w, b;                        /* virtual offsets of the slice, -1: none */
	int row0, in, out;
	int ad;
};

/* Activations of one layer kept for the backward pass. */
struct tk_layer_act {
	float *ln1, *ln1_mean, *ln1_rstd; /* [N, C], [N], [N] */
	float *q, *k, *v;                 /* after RoPE: [N, Q], [N, Kd], [N, Kd] */
	float *qp, *kp, *qr, *kr;         /* qk_norm: q, k before it, its rstd [N*H], [N*KVH] */
	float *att, *lse;                 /* [N, Q], [B, H, T] */
	float *mid;                       /* residual after attention [N, C] */
	float *ao, *pa_rstd;              /* sandwich_norm: o_proj's output [N, C], */
	float *fo, *pf_rstd;              /* down_proj's, their post-norm rstd [N] */
	float *ln2, *ln2_mean, *ln2_rstd;
	float *h1, *h2, *act;             /* fc or gate, up (SwiGLU), activation [N, F] */
};

struct tk_model_run {
	/* layout (fixed when the model is made) */
	struct tk_layer_off *lo;          /* [n_layer] */
	struct tk_lin (*lin)[TK_LIN_N];   /* [n_layer]; slot absent: tw -1 */
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
	struct tk_rope_state rope;        /* the rotary table between forwards (rope.h) */
	float rope_inv[TK_ROPE_MAX_PAIRS]; /* the table of the last forward, */
	float rope_scale;                 /* which its backward rotates by */
	float rope_local[TK_ROPE_MAX_PAIRS]; /* Gemma-3's sliding layers' table */
	uint32_t *ids;                    /* [N]: the last forward's ids */
	float *qtile;                     /* dequantized weight tile (tk_qtile_floats) */
	size_t qtile_cap;                 /* floats qtile holds */
	struct tk_param *tp;              /* tk_model_trainable's list, NULL: to make */
	int n_tp;
	char *tp_names;                   /* the adapters' PEFT keys */
};

/* Floats of the tile quantized weights are dequantized into, at least. */
#define TK_QTILE (1u << 20)
/* Rows per tile, at least, for weights up to TK_QTILE_WIDE columns: each
 * tile is one GEMM, which packs the whole of x again, so a tile of a few
 * rows spends its time packing.  Measured (bench/ops.c qlora, 2 threads
 * of a Xeon Ice Lake, NF4, x of 512 rows): with TK_QTILE floats of rows
 * (256 rows of 4096, 95 of 11008) the forward ran at 57-95% of one SGEMM
 * of the same shape and dx at 78-86%; with 1024 rows at 97-107% and
 * 82-98%. */
#define TK_QTILE_ROWS 1024
#define TK_QTILE_WIDE 65536

/* How the queries of layer l attend, for the attention ops: the layer's
 * sliding window (layer_window; 0: full causal), scale 1/sqrt(head_dim) or
 * Gemma's query_pre_attn_scalar^-0.5, Gemma-2's attn_logit_softcapping.  Training, evaluation and decoding all take it from
 * here, so they mask the same keys. */
static inline struct tk_attn_opts tk_layer_attn(const struct tk_model_config *c, int l)
{
	/* Gemma: query_pre_attn_scalar^-0.5, a Python float transformers'
	 * fp32 scores are multiplied by */
	float sc = c->query_pre_attn_scalar > 0 ? (float)pow((double)c->query_pre_attn_scalar,
							     -0.5) : 0.0f;
	struct tk_attn_opts ao = { sc, c->layer_window[l], c->attn_softcap, 0 };
	return ao;
}

/* Rows of a quantized weight with `in` columns dequantized per tile. */
static inline int tk_qtile_rows(int in)
{
	size_t n = TK_QTILE / (size_t)in;
	if (n < TK_QTILE_ROWS && in <= TK_QTILE_WIDE)
		n = TK_QTILE_ROWS;
	return n > 0 ? (int)n : 1;
}

/* Floats of the tile for weights of at most max_in columns (the widest
 * needs the most: TK_QTILE, or TK_QTILE_ROWS rows of max_in). */
static inline size_t tk_qtile_floats(int max_in)
{
	size_t n = (size_t)tk_qtile_rows(max_in) * (size_t)max_in;
	return n > TK_QTILE ? n : TK_QTILE;
}

/* Offsets in struct tk_layer_off, struct tk_lin and the run's emb, pos,
 * lnf and head fields are virtual: offsets into the layout that holds every
 * tensor in fp32.  Quantized tensors take no room in the arenas, so the
 * real place of a virtual offset is found through its tensor. */

/* The tensor whose virtual range holds voff, or NULL (voff < 0). */
struct tk_model_tensor *tk_model_tensor_at(const struct tk_model *m, long voff);

/* arena + real offset of voff (arena m->params or m->grads); NULL for voff
 * < 0, a quantized tensor or a NULL arena. */
float *tk_model_at(const struct tk_model *m, float *arena, long voff);

/* The gradient of voff's tensor, or NULL when it is frozen or voff < 0. */
float *tk_model_grad_at(const struct tk_model *m, long voff);

/* Forward of linear slot s of layer l on x [rows, in] into y [rows, out]:
 * base (dequantizing quantized weights tile by tile), bias, and the
 * adapter (keeping x A^T for the backward pass when training; u_scratch
 * [rows, r] is used instead when not NULL, as inference does). */
int tk_lin_fwd(struct tk_model *m, int l, int s, float *y, const float *x, int rows,
	       float *u_scratch);

/* tk_lin_fwd of count (<= TK_GEMV_GROUP_MAX) slots sl[] of layer l on the
 * same x [rows, in] into y[j]: for a few rows (a decode step) the base
 * products in one call of the backend's matmul_group when it takes them
 * (the same bits as one by one), then each slot's bias and adapter; else
 * tk_lin_fwd slot by slot. */
int tk_lin_fwd_group(struct tk_model *m, int l, const int *sl, float *const *y, int count,
		     const float *x, int rows, float *u_scratch);

/* The base part of slot L alone, no bias, no adapter: y [rows, out] = x
 * W^T (tk_lin_base_fwd), or dx [rows, in] = dy W (beta 0) or += (beta 1)
 * (tk_lin_base_bwd); quantized weights dequantized tile by tile. */
int tk_lin_base_fwd(struct tk_model *m, const struct tk_lin *L, float *y, const float *x,
		    int rows);
int tk_lin_base_bwd(struct tk_model *m, const struct tk_lin *L, float *dx, float beta,
		    const float *dy, int rows);

/* Backward of linear slot s of layer l: weight and bias gradients of what
 * is trainable accumulate, the adapter's A and B gradients accumulate, and
 * dx = dy W' (dx_beta 0) or dx += dy W' (dx_beta 1), W' the effective
 * weight. */
int tk_lin_bwd(struct tk_model *m, int l, int s, float *dx, float dx_beta, const float *dy,
	       const float *x, int rows);

/* Sizes the LoRA scratch for a forward of rows rows (training). */
int tk_lora_reserve(struct tk_model *m, int rows, struct tk_diag *d);

/* Allocates (zeroed) the gradients of what is trainable, if not yet. */
int tk_model_zero_grad_alloc(struct tk_model *m, struct tk_diag *d);

/* Forgets the list tk_model_trainable made (adapters came or went). */
void tk_model_params_changed(struct tk_model *m);

/* Frees what tk_lora_attach allocated (m->lora becomes NULL). */
void tk_lora_free(struct tk_model *m);

/* The rotary table layer l rotates by and its scaling (*scale): Gemma-3's
 * sliding layers have their own (run->rope_local, scaling 1), the others
 * the model's (glob, gscale). */
static inline const float *tk_layer_rope(const struct tk_model *m, int l, const float *glob,
					 float gscale, float *scale)
{
	int loc = m->cfg.rope_local_theta > 0 && m->cfg.layer_window[l] > 0;
	*scale = loc ? 1.0f : gscale;
	return loc ? m->run->rope_local : glob;
}

/* lm head rows at a time: each chunk's logits [rows, V] are one buffer.
 * Each chunk repacks the [V, C] head matrix in the GEMM (all of it, for
 * each of the forward, dW and dx products), so the more rows the less of
 * the time goes to packing: 64 rows gave 2500 tokens/s and 128 rows 3000
 * on a 7M-parameter GPT-2 (B 4, T 256, 2 threads); the whole GPT-2 124M
 * head of 1024 rows took 4.1 s of CPU in chunks of 128 and 3.5 s in
 * chunks of 256 or 512 (one thread, AMD Zen 5, OpenBLAS SkylakeX
 * kernels); at 2 threads (AMD Zen 3, OpenBLAS Zen kernels, three runs)
 * its forward and input-gradient products took 1089-1145 ms in chunks of
 * 256, 980-1066 in 512 and 960-1015 in one chunk of 1024, a tenth of a
 * LoRA step's time less.  So the chunk grows to the power of two whose
 * logits fit TK_MODEL_CHUNK_BYTES, between TK_MODEL_CHUNK and
 * TK_MODEL_CHUNK_MAX rows: 1024 for GPT-2's 50257 tokens and Llama-2's
 * 32000, 256 for Llama-3's 128256, 128 for Gemma's 262144; never more
 * than the n rows of the batch.  (transformers holds the logits of the
 * whole batch, and their gradient.) */
#define TK_MODEL_CHUNK 128
#define TK_MODEL_CHUNK_MAX 1024
#define TK_MODEL_CHUNK_BYTES ((size_t)256 << 20)

static inline int tk_model_chunk_rows(int vocab, size_t n)
{
	int rows = TK_MODEL_CHUNK;
	while (rows < TK_MODEL_CHUNK_MAX &&
	       (size_t)rows * 2 * (size_t)vocab * sizeof(float) <= TK_MODEL_CHUNK_BYTES)
		rows *= 2;
	return n && n < (size_t)rows ? (int)n : rows;
}

#endif

/* lora-int.h - what lib/model/lora.c shares with the model's linear layers
 * (lib/model/model-linear.c, lib/model/model-run.c, lib/model/model-infer.c).  Not for other
 * modules. */
#ifndef TK_LORA_INT_H
#define TK_LORA_INT_H

#include "model/lora.h"
#include "model/model-int.h"

struct tk_lora_run {
	float *u;           /* [n_ad][rows, r]: x A^T of the last forward */
	size_t u_cap;       /* floats */
	int rows;
	float *du;          /* [rows, r] */
	float *xd, *tmp;    /* [rows, max in]: dropped input, dx before the mask */
	size_t s_rows;      /* rows the scratch has room for */
	float *iu;          /* inference: [rows, r] */
	size_t iu_cap;
	struct tk_dora_run *dora; /* DoRA's scratch (dora.c), NULL without */
};

/* The adapter part of tk_lin_fwd / tk_lin_bwd (L->ad >= 0): y =
 * scale u B^T (beta 0) or += (beta 1); the gradients of A and B
 * accumulate and dx = du A (dx_beta 0) or += (dx_beta 1).  With DoRA,
 * beta must be 1 and y hold the base's result and bias. */
int tk_lora_lin_fwd(struct tk_model *m, const struct tk_lin *L, int l, float *y, const float *x,
		    int rows, float *u_scratch, float beta);
int tk_lora_lin_bwd(struct tk_model *m, const struct tk_lin *L, int l, float *dx, float dx_beta,
		    const float *dy, const float *x, int rows);

/* The floats of the training scratch tk_lora_reserve(m, rows) allocates:
 * u [n_ad][rows, r], du [rows, r], and with dropout xd and tmp [rows, the
 * largest adapter input] each (xd 0 without dropout).  memplan.c counts
 * them too. */
struct tk_lora_scratch {
	size_t u, du, xd;
	size_t dora;        /* DoRA: two [rows, the largest adapter output] */
};
void tk_lora_scratch_size(const struct tk_lora *l, size_t rows, struct tk_lora_scratch *s);

/* A [rows, r] buffer for inference's adapter products (NULL: no memory). */
float *tk_lora_infer_u(struct tk_model *m, int rows);

/* Allocates (zeroed) the adapters' gradients if needed. */
int tk_lora_grads(struct tk_model *m, struct tk_diag *d);

/* Dropout of adapter ad's input in this step (see lora.c): xd = x * keep
 * / (1 - p), in place allowed. */
void tk_lora_dropout(const struct tk_lora *l, int ad, const float *x, float *xd, size_t n);

/* DoRA (lib/model/dora.c, see "DoRA" in lora.h). */

/* Sets every adapter's magnitude to the row norms of W + scale * B A (at
 * attach, as peft initialises it).  0, TK_E_NOMEM or the backend's error. */
int tk_dora_init(struct tk_model *m, struct tk_diag *d);

/* The end of tk_lora_lin_fwd with DoRA: y holds W x + bias of slot L, u
 * [rows, r] the adapter's x A^T (dropout(x) A^T when training with
 * dropout); adds the DoRA terms.  infer: u is inference's scratch (the
 * norms are computed once and kept until the next forward that is not
 * inference's). */
int tk_dora_lin_fwd(struct tk_model *m, const struct tk_lin *L, float *y, const float *x,
		    int rows, const float *u, int infer);

/* tk_lora_lin_bwd with DoRA: the gradients of A, B and m accumulate, dx +=
 * the adapter's part (the base's dy W is the caller's). */
int tk_dora_lin_bwd(struct tk_model *m, const struct tk_lin *L, float *dx, const float *dy,
		    const float *x, int rows);

/* Merges adapter a into its fp32 base W [out, in] (arena): W = (m / n) *
 * (W + scale B A), n the row norms of W + scale B A. */
int tk_dora_merge(struct tk_model *m, const struct tk_lora_adapter *a, float *W);

/* Frees the DoRA scratch of l's run. */
void tk_dora_free(struct tk_model *m);

#endif

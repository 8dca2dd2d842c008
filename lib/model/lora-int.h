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
};

/* The adapter part of tk_lin_fwd / tk_lin_bwd (L->ad >= 0). */
int tk_lora_lin_fwd(struct tk_model *m, const struct tk_lin *L, int l, float *y, const float *x,
		    int rows, float *u_scratch);
int tk_lora_lin_bwd(struct tk_model *m, const struct tk_lin *L, int l, float *dx,
		    const float *dy, const float *x, int rows);

/* The floats of the training scratch tk_lora_reserve(m, rows) allocates:
 * u [n_ad][rows, r], du [rows, r], and with dropout xd and tmp [rows, the
 * largest adapter input] each (xd 0 without dropout).  memplan.c counts
 * them too. */
struct tk_lora_scratch {
	size_t u, du, xd;
};
void tk_lora_scratch_size(const struct tk_lora *l, size_t rows, struct tk_lora_scratch *s);

/* A [rows, r] buffer for inference's adapter products (NULL: no memory). */
float *tk_lora_infer_u(struct tk_model *m, int rows);

/* Allocates (zeroed) the adapters' gradients if needed. */
int tk_lora_grads(struct tk_model *m, struct tk_diag *d);

#endif

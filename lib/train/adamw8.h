/* adamw8.h - the state of bitsandbytes' AdamW with 8-bit state
 * (optim="adamw_8bit" / "paged_adamw_8bit"), held for a training run.
 *
 * transformers' Trainer builds bnb.optim.AdamW(optim_bits=8) and, for
 * every nn.Embedding, overrides optim_bits to 32.  bitsandbytes then keeps
 * a parameter's exp_avg and exp_avg_sq as 8-bit codes in blocks of 256,
 * with an fp32 absmax per block, when it has at least 4096 elements
 * (min_8bit_size) and is not an embedding; the others keep fp32 state
 * and take its 32-bit update (base/adamw8-common.h).  Paging
 * (paged_adamw_8bit) only moves the state between GPU and host memory
 * under pressure: the numbers are the same.
 *
 * The state lives in the backend's memory; the 8-bit codes are blocked in
 * the order of the checkpoint tensor (GPT-2's Conv1D [in, out]), the fp32
 * state in the arena order of the parameter.  In optimizer.safetensors
 * (__metadata__ optimizer "adamw_8bit") each parameter NAME has
 * NAME.state1 and NAME.state2 (U8 codes, or F32 for 32-bit state, in its
 * checkpoint shape) and, for 8-bit state, NAME.absmax1 and NAME.absmax2
 * (F32, one per block): bitsandbytes' state_dict names.  Which parameters
 * get 8-bit state: tk_adamw8_eight (base/adamw8-common.h).
 */
#ifndef TK_TRAIN_ADAMW8_H
#define TK_TRAIN_ADAMW8_H

#include <stddef.h>
#include <stdint.h>

#include "base/adamw8-common.h"
#include "base/tk.h"
#include "compute/backend.h"
#include "formats/safetensors.h"
#include "model/model.h"

/* One parameter's state. */
struct tk_adamw8_slot {
	int eight;              /* 8-bit state (else fp32) */
	size_t n, nb;           /* elements, blocks of 256 */
	size_t rows, cols;      /* held transposed: checkpoint shape; else 0 */
	uint8_t *q1, *q2;       /* 8-bit: codes [n] */
	float *absmax1, *absmax2; /* 8-bit: [nb] */
	float *m, *v;           /* fp32 state [n], arena order */
};

struct tk_adamw8_state {
	struct tk_backend *be;  /* whose memory the buffers are */
	int n;
	struct tk_adamw8_slot *s; /* [n], one per trainable parameter */
	void *mem;              /* one backend allocation for all */
	size_t bytes;           /* its size */
};

/* Allocates zeroed state for the n_tp parameters tp (what
 * tk_model_trainable gives) in be's memory.  Returns 0 or TK_E_NOMEM;
 * *o is left safe to tk_adamw8_state_free either way. */
int tk_adamw8_state_init(struct tk_adamw8_state *o, struct tk_backend *be,
			 const struct tk_param *tp, int n_tp, struct tk_diag *d);

/* One step (step from 1) of every parameter, weight decay where
 * tp[i].decay.  Returns 0, or the backend's error with d naming the
 * parameter. */
int tk_adamw8_state_step(struct tk_adamw8_state *o, const struct tk_param *tp, double lr, double beta1,
		   double beta2, double eps, double weight_decay, int step, struct tk_diag *d);

/* Adds the state's tensors to w (the layout above; the data is referenced
 * until commit: do not step before then).  *tmp gets a buffer the caller
 * frees after the commit (the fp32 state of transposed parameters).
 * Returns 0, or TK_E_NOMEM. */
int tk_adamw8_state_save(const struct tk_adamw8_state *o, const struct tk_model *m, const struct tk_param *tp,
		   tk_safetensors_writer_t *w, float **tmp, struct tk_diag *d);

/* Reads the state back from st (path for messages), as strictly as the
 * fp32 AdamW state: exactly the tensors of the layout above for these
 * parameters, of their dtypes and shapes, absmax and fp32 state finite,
 * absmax and the second state not negative.  Returns 0 or TK_E_FORMAT
 * (d names the file and the tensor). */
int tk_adamw8_state_load(struct tk_adamw8_state *o, const struct tk_model *m, const struct tk_param *tp,
		   const tk_safetensors_t *st, const char *path, struct tk_diag *d);

/* Releases the state (o may be zeroed already). */
void tk_adamw8_state_free(struct tk_adamw8_state *o);

#endif

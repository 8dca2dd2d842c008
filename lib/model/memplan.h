/* memplan.h - the backend memory a training run will hold, planned before
 * it allocates its gradients, optimizer state and activations.
 *
 * The plan is computed from the loaded model (its config, its arenas, its
 * adapters, which tensors are trainable or quantized) by the size
 * arithmetic the allocations themselves use: the arenas' float counts,
 * tk_model_trainable's 16-float-aligned optimizer layout, the activation
 * carving of lib/model/model-run.c (tk_model_act_bytes), the LoRA scratch of
 * tk_lora_reserve, the dequantization tile, and on the CPU backend the
 * attention workspace.  It counts what the backend's alloc holds
 * (struct tk_mem_info.in_use), not host memory the loop mallocs.
 */
#ifndef TK_MEMPLAN_H
#define TK_MEMPLAN_H

#include <stddef.h>

#include "compute/backend.h"
#include "model/model.h"
#include "base/tk.h"

/* Bytes, by what they hold. */
struct tk_memplan {
	size_t weights;     /* parameters: fp32 arenas, adapters, quantized
			       weights held by the backend */
	size_t grads;       /* gradient arenas */
	size_t optimizer;   /* AdamW exp_avg + exp_avg_sq (fp32, or with optim8
			       bitsandbytes' 8-bit blocks: about 2 bytes a
			       parameter instead of 8) */
	size_t activations; /* what the forward keeps for the backward, the
			       backward's buffers, the LoRA scratch */
	size_t scratch;     /* backend workspace, dequantization tile */
	size_t total;
	int batch, seq_len, ckpt; /* what it was planned for */
};

struct tk_memplan_args {
	int batch;      /* per-device training batch */
	int eval_batch; /* the evaluation batch, 0 when nothing is evaluated */
	int seq_len;
	int ckpt;       /* gradient checkpointing */
	int opt_shards; /* processes the optimizer state is sharded over
			   (ZeRO-1); 0 or 1: all of it here */
	int prec;       /* enum tk_prec of the matmuls: other than fp32, the
			   CPU backend rounds their operands into its
			   workspace (planned as an upper bound) */
	int optim8;     /* optim adamw_8bit: bitsandbytes' 8-bit state
			   (train/adamw8.h's layout, tk_adamw8_state_bytes) */
};

/* Fills *p for training m on be with a.  m must be loaded (adapters
 * attached) but may hold no gradients yet.  Returns 0, or TK_E_INVAL for
 * a batch or seq_len below 1. */
int tk_memplan_train(const struct tk_model *m, const struct tk_backend *be,
		      const struct tk_memplan_args *a, struct tk_memplan *p);

/* The plan (into *p when p is not NULL) checked against be's limit
 * (tk_memplan_limit: TK_DEVICE_MEMORY_LIMIT, on CUDA the device's free
 * memory, on the CPU without either the host's).  Returns 0 when it fits or no limit is known; TK_E_NOMEM
 * when it does not, with d (path: dev, e.g. "cuda:0") saying how much it
 * needs, of what, and what would fit: gradient checkpointing (with its
 * activations) and the largest batch that fits, as tk-train options. */
int tk_memplan_check(const struct tk_model *m, struct tk_backend *be,
		      const struct tk_memplan_args *a, const char *dev, struct tk_memplan *p,
		      struct tk_diag *d);

/* What a model of configuration c holds at least, from the configuration
 * alone, before any of it is allocated (no tensor table, no arena): the
 * fp32 parameter arena as tk_model_load / tk_model_init lay it out and,
 * with full (every base tensor trained: full fine-tuning), the gradient
 * arena and the AdamW state (split over opt_shards processes when above
 * 1; with optim8 bitsandbytes' 8-bit state instead, unsharded).
 * quantized: the blocks' linear weights are 4- or 8-bit (only the
 * rest of the arena is counted).  Adapters, activations and scratch are
 * not counted (they depend on what is loaded and on the data): a lower
 * bound of tk_memplan_train's total, equal to its weights, grads and
 * optimizer for an unquantized model trained in full.  Fills *p
 * (activations and scratch 0); TK_E_INVAL for a configuration with a
 * size below 1. */
int tk_memplan_model(const struct tk_model_config *c, int full, int quantized, int opt_shards,
		      int optim8, struct tk_memplan *p);

/* tk_memplan_model checked against be's limit, as tk_memplan_check:
 * 0 when it fits or no limit is known, TK_E_NOMEM with d (path dev) saying
 * what the model needs and what to do. */
int tk_memplan_check_model(const struct tk_model_config *c, int full, int quantized,
			    int opt_shards, int optim8, struct tk_backend *be, const char *dev,
			    struct tk_diag *d);

/* The limit a plan is checked against: be's (tk_backend_mem_info), or on
 * the CPU backend without one the host's: the smallest of ulimit -v
 * (RLIMIT_AS), ulimit -d (RLIMIT_DATA) and RAM plus swap.  *what gets the
 * words before the amount in a message ("TK_DEVICE_MEMORY_LIMIT allows",
 * "ulimit -v allows"...) and *after those after it (" are free" or "").
 * 0: none known. */
size_t tk_memplan_limit(struct tk_backend *be, const char **what, const char **after);

/* Writes "1.5 GiB" / "312.4 MiB" / "12.0 KiB" for bytes into buf. */
void tk_memplan_fmt(char *buf, size_t size, size_t bytes);

#endif

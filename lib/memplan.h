/* memplan.h - the backend memory a training run will hold, planned before
 * it allocates its gradients, optimizer state and activations.
 *
 * The plan is computed from the loaded model (its config, its arenas, its
 * adapters, which tensors are trainable or quantized) by the size
 * arithmetic the allocations themselves use: the arenas' float counts,
 * tk_model_trainable's 16-float-aligned optimizer layout, the activation
 * carving of lib/model-run.c (tk_model_act_bytes), the LoRA scratch of
 * tk_lora_reserve, the dequantization tile, and on the CPU backend the
 * attention workspace.  It counts what the backend's alloc holds
 * (struct tk_mem_info.in_use), not host memory the loop mallocs.
 */
#ifndef TK_MEMPLAN_H
#define TK_MEMPLAN_H

#include <stddef.h>

#include "backend.h"
#include "model.h"
#include "tk.h"

/* Bytes, by what they hold. */
struct tk_mem_plan {
	size_t weights;     /* parameters: fp32 arenas, adapters, quantized
			       weights held by the backend */
	size_t grads;       /* gradient arenas */
	size_t optimizer;   /* AdamW exp_avg + exp_avg_sq */
	size_t activations; /* what the forward keeps for the backward, the
			       backward's buffers, the LoRA scratch */
	size_t scratch;     /* backend workspace, dequantization tile */
	size_t total;
	int batch, seq_len, ckpt; /* what it was planned for */
};

struct tk_mem_plan_args {
	int batch;      /* per-device training batch */
	int eval_batch; /* the evaluation batch, 0 when nothing is evaluated */
	int seq_len;
	int ckpt;       /* gradient checkpointing */
	int opt_shards; /* processes the optimizer state is sharded over
			   (ZeRO-1); 0 or 1: all of it here */
	int prec;       /* enum tk_prec of the matmuls: other than fp32, the
			   CPU backend rounds their operands into its
			   workspace (planned as an upper bound) */
};

/* Fills *p for training m on be with a.  m must be loaded (adapters
 * attached) but may hold no gradients yet.  Returns 0, or TK_E_INVAL for
 * a batch or seq_len below 1. */
int tk_mem_plan_train(const struct tk_model *m, const struct tk_backend *be,
		      const struct tk_mem_plan_args *a, struct tk_mem_plan *p);

/* The plan (into *p when p is not NULL) checked against be's limit
 * (tk_backend_mem_info: TK_DEVICE_MEMORY_LIMIT, or on CUDA the device's
 * free memory).  Returns 0 when it fits or no limit is known; TK_E_NOMEM
 * when it does not, with d (path: dev, e.g. "cuda:0") saying how much it
 * needs, of what, and what would fit: gradient checkpointing (with its
 * activations) and the largest batch that fits, as tk-train options. */
int tk_mem_plan_check(const struct tk_model *m, struct tk_backend *be,
		      const struct tk_mem_plan_args *a, const char *dev, struct tk_mem_plan *p,
		      struct tk_diag *d);

/* Writes "1.5 GiB" / "312.4 MiB" / "12.0 KiB" for bytes into buf. */
void tk_mem_fmt(char *buf, size_t size, size_t bytes);

#endif

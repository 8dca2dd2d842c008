/* adamw8.cuh - the launchers of kernels/adamw8.cu: bitsandbytes' AdamW with
 * 8-bit state (lib/base/adamw8-common.h), the adamw8 and adamw8_f32 slots
 * of kernels/backend-cuda.cu.
 *
 * Each launcher enqueues one kernel on st and returns the launch status;
 * every pointer is device-accessible.  The results are meant to be bit for
 * bit those of the CPU backend (cpu_adamw8, cpu_adamw8_f32): the same
 * per-element functions, every operation rounded on its own except the
 * fmaf both take, the block's absmax a maximum (exact in any order), and
 * the same code lookup (tk_q8_index).
 */
#ifndef TK_ADAMW8_CUH
#define TK_ADAMW8_CUH

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "base/adamw8-common.h"

/* One step of a parameter of n elements with 8-bit state: codes q1, q2 [n]
 * and absmax1, absmax2 [ceil(n / 256)] in the checkpoint order, p and g at
 * tk_adamw8_at(i, rows, cols).  One thread block per block of 256. */
cudaError_t cu_adamw8(cudaStream_t st, float *p, const float *g, uint8_t *q1, uint8_t *q2,
		      float *absmax1, float *absmax2, size_t n, size_t rows, size_t cols,
		      struct tk_adamw8_k k);

/* One step of a parameter of n elements with bitsandbytes' 32-bit state
 * m, v [n]. */
cudaError_t cu_adamw8_f32(cudaStream_t st, float *p, const float *g, float *m, float *v,
			  size_t n, struct tk_adamw8_k k);

#endif

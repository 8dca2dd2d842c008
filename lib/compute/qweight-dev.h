/* qweight-dev.h - quantized weights (base/quant.h) in a backend's memory.
 *
 * A struct tk_qweight starts as malloc'd host memory; a backend with a
 * dequant_rows slot (CUDA) reads it faster where it computes, so the model
 * moves each frozen quantized weight there once after loading.  The weight
 * then owns backend memory: its release hook frees through the backend, so
 * tk_qweight_free stays the one way to free it.
 */
#ifndef TK_QWEIGHT_DEV_H
#define TK_QWEIGHT_DEV_H

#include "base/quant.h"
#include "base/tk.h"

struct tk_backend;

/* Moves q's buffers into be's memory (tk_backend_alloc, copy, free the old
 * ones) so that be's dequant_rows reads them where they are, and makes be
 * their owner (q->release frees through tk_backend_free_mem).  Does
 * nothing, and returns 0, when be computes in host memory (the CPU
 * backend, whose dequant_rows reads the host buffers where they are), when
 * it has no dequant_rows slot, or when q is already be's.  Returns 0,
 * or TK_E_NOMEM with q left as it was.  be must outlive q (tk_qweight_free
 * frees through it). */
int tk_qweight_to_backend(struct tk_qweight *q, struct tk_backend *be, struct tk_diag *d);

/* The backend whose memory q's buffers are (tk_qweight_to_backend), or
 * NULL when they are malloc'd. */
struct tk_backend *tk_qweight_backend(const struct tk_qweight *q);

#endif

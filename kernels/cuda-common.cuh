/* cuda-common.cuh - the checked boundary between tk and the CUDA runtime.
 *
 * Every cuda* call goes through TK_CUDA_CHECK, which on failure records the
 * statement, file, line and CUDA's error text in a struct tk_diag and
 * returns TK_E_DEVICE (TK_E_NOMEM for cudaErrorMemoryAllocation) from the
 * enclosing function.  Nothing here exits, so the caller can still save
 * its work.
 */
#ifndef TK_CUDA_COMMON_CUH
#define TK_CUDA_COMMON_CUH

#include <cuda_runtime.h>

extern "C" {
#include "base/tk.h"
}

/* Records a failed CUDA call in d; returns the tk error for it. */
static inline int tk_cuda_fail(cudaError_t e, const char *stmt, const char *file, int line,
			       struct tk_diag *d)
{
	int err = e == cudaErrorMemoryAllocation ? TK_E_NOMEM : TK_E_DEVICE;
	tk_diag_set(d, err, NULL, -1, "%s:%d: %s: %s (%s)", file, line, stmt,
		    cudaGetErrorString(e), cudaGetErrorName(e));
	return err;
}

#define TK_CUDA_CHECK(stmt, d)                                                     \
	do {                                                                       \
		cudaError_t tk_e_ = (stmt);                                        \
		if (tk_e_ != cudaSuccess) {                                        \
			(void)cudaGetLastError(); /* clear the sticky-free error */ \
			return tk_cuda_fail(tk_e_, #stmt, __FILE__, __LINE__, (d)); \
		}                                                                  \
	} while (0)

#endif

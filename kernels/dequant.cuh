/* dequant.cuh - the launchers of kernels/dequant.cu: NF4, FP4 and int8
 * weights to fp32 on the GPU, for the dequant_rows slot of
 * kernels/backend-cuda.cu.
 *
 * Each launcher enqueues one kernel on st and returns the launch status;
 * every pointer is device-accessible.  The results are bit for bit those
 * of lib/base/quant.c tk_qweight_rows: the same code books
 * (lib/base/quant-common.h) and every product and sum rounded on its own
 * (__fmul_rn, __fadd_rn: nvcc must not fuse them into an fma).
 */
#ifndef TK_DEQUANT_CUH
#define TK_DEQUANT_CUH

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

/* out[e - e0] = code[q_e] * absmax_of(e / blocksize) for the elements
 * e0 <= e < e1 of a flattened 4-bit matrix (fp4: the FP4 table, else NF4).
 * Slices of the buffers, not the buffers: data = the packed bytes from byte
 * e0 / 2 on; absmax (not nested) = the absmax values from block
 * e0 / blocksize on; nested: qabsmax from block e0 / blocksize on,
 * nested_absmax from nested block (e0 / blocksize) / 256 on, and
 * absmax = dynamic_code[qabsmax] * nested_absmax + offset.  blocksize: a
 * power of two >= 32. */
cudaError_t cu_dequant4(cudaStream_t st, float *out, const uint8_t *data, const float *absmax,
			const uint8_t *qabsmax, const float *nested_absmax, float offset,
			int fp4, size_t blocksize, size_t e0, size_t e1);

/* out[r, c] = (float)codes[r, c] * (scb[r] * (float)(1.0 / 127)) for r < n,
 * c < cols: codes and scb are the slices of the rows asked for. */
cudaError_t cu_dequant8(cudaStream_t st, float *out, const int8_t *codes, const float *scb,
			size_t n, size_t cols);

#endif

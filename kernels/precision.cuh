/* precision.cuh - fp32 matrices to the 16-bit codes cuBLAS reads (mixed
 * precision matmul, enum tk_prec in lib/compute/backend.h).
 *
 * The rounding is lib/base/math-common.h's (tk_bf16_code, tk_f16_code), the
 * same integer arithmetic the CPU backend's emulation uses, so a GPU GEMM
 * reads bit for bit the operands the CPU reference rounds to.  UNVERIFIED:
 * compiled, never run on a GPU in this project (tests/gpu/test-cuda-prec.c).
 */
#ifndef TK_CONVERT_CUH
#define TK_CONVERT_CUH

#include <cuda_runtime.h>

/* dst[rows, cols] (packed, row stride cols) = the codes of src [rows, cols]
 * (row stride ld >= cols): bf16 codes when bf16, else IEEE half codes.
 * Device-accessible pointers; enqueued on st, returns the launch status. */
cudaError_t cu_round_codes(cudaStream_t st, unsigned short *dst, const float *src, int rows,
			   int cols, int ld, int bf16);

/* dst[rows, cols] (packed) = src [rows, cols] (row stride ld) rounded to
 * TF32 (tk_round_tf32: nearest even, 10 mantissa bits), as fp32 values:
 * a TF32 tensor core then reads them unchanged, however it rounds. */
cudaError_t cu_round_tf32(cudaStream_t st, float *dst, const float *src, int rows, int cols,
			  int ld);

#endif

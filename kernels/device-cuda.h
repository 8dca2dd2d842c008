/* device-cuda.h - the CUDA halves of lib/compute/device.c, implemented in
 * kernels/device.cu.  Plain C: included by the CPU side and by nvcc. */
#ifndef TK_DEVICE_CUDA_H
#define TK_DEVICE_CUDA_H

#include <stddef.h>

#include "compute/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each returns 0 or a negative tk_err with d filled (see lib/compute/device.h). */
int tk_cuda_count(int *n, struct tk_diag *d);
int tk_cuda_info(int index, struct tk_device_info *info, struct tk_diag *d);

#ifdef __cplusplus
}
#endif

#endif

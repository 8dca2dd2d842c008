/* device.cu - CUDA device queries for lib/compute/device.c.
 *
 * These are the C-callable halves of tk_device_* for CUDA devices; see
 * lib/compute/device.h for the contracts.  A machine without a driver or without a
 * GPU reports zero devices rather than an error.
 */
#include "cuda-common.cuh"

#include <stdio.h>
#include <string.h>

#include "device-cuda.h"

int tk_cuda_count(int *n, struct tk_diag *d)
{
	int count = 0;
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
		(void)cudaGetLastError();
		*n = 0;
		return TK_OK;
	}
	TK_CUDA_CHECK(e, d);
	*n = count;
	return TK_OK;
}

int tk_cuda_info(int index, struct tk_device_info *info, struct tk_diag *d)
{
	cudaDeviceProp p;
	TK_CUDA_CHECK(cudaGetDeviceProperties(&p, index), d);
	TK_CUDA_CHECK(cudaSetDevice(index), d);
	size_t free_b = 0, total_b = 0;
	TK_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b), d);
	memset(info, 0, sizeof(*info));
	info->dev.kind = TK_DEVICE_CUDA;
	info->dev.index = index;
	snprintf(info->name, sizeof(info->name), "%.*s", (int)sizeof(p.name), p.name);
	info->total_mem = total_b;
	info->free_mem = free_b;
	info->cc_major = p.major;
	info->cc_minor = p.minor;
	info->multiprocessors = p.multiProcessorCount;
	return TK_OK;
}

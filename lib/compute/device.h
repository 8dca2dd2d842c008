/* device.h - which device computes.
 *
 * Tools take `--device auto|cpu|cuda[:N]`.  The CPU is always there; CUDA
 * devices exist only in a build made with nvcc (TK_USE_CUDA) on a machine
 * whose driver reports them.  Everything here returns an error instead of
 * failing hard when no GPU is present, so a CUDA build runs on the CPU.
 */
#ifndef TK_DEVICE_H
#define TK_DEVICE_H

#include <stddef.h>

#include "base/tk.h"

enum tk_device_kind { TK_DEVICE_CPU = 0, TK_DEVICE_CUDA = 1 };

struct tk_device {
	enum tk_device_kind kind;
	int index; /* CUDA ordinal; 0 for the CPU */
};

struct tk_device_info {
	struct tk_device dev;
	char name[256];
	size_t total_mem, free_mem; /* bytes; CPU: physical memory */
	int cc_major, cc_minor;     /* CUDA compute capability */
	int multiprocessors;        /* CUDA SMs; CPU: online cores */
};

/* Whether this build has CUDA support compiled in. */
int tk_device_cuda_built(void);

/* Number of CUDA devices the driver reports.  0 with TK_OK when the driver
 * reports none (or there is no driver); TK_E_UNSUPPORTED in a build without
 * CUDA; TK_E_DEVICE for any other failure (message names the CUDA error). */
int tk_device_cuda_count(int *n, struct tk_diag *d);

/* Resolves "auto", "cpu", "cuda" or "cuda:N" into *dev.  "auto" is CUDA
 * device 0 when one is present, else the CPU (with *fell_back set when the
 * build has CUDA but no device was found; fell_back may be NULL).  An
 * unknown spec is TK_E_INVAL; a CUDA device that is not present is
 * TK_E_DEVICE, or TK_E_UNSUPPORTED in a build without CUDA. */
int tk_device_parse(const char *spec, struct tk_device *dev, int *fell_back,
		    struct tk_diag *d);

/* Describes a device. */
int tk_device_info(struct tk_device dev, struct tk_device_info *info, struct tk_diag *d);

#endif

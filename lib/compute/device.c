/* device.c - see device.h.  The CUDA halves live in kernels/device.cu. */
#include "compute/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/options.h"

#ifdef TK_USE_CUDA
#include "../../kernels/device-cuda.h"
#endif

static __attribute__((unused)) int no_cuda(struct tk_diag *d)
{
	return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
			   "this build of tk has no CUDA support (rebuild with nvcc on PATH)");
}

int tk_device_cuda_built(void)
{
#ifdef TK_USE_CUDA
	return 1;
#else
	return 0;
#endif
}

int tk_device_cuda_count(int *n, struct tk_diag *d)
{
	*n = 0;
#ifdef TK_USE_CUDA
	return tk_cuda_count(n, d);
#else
	return no_cuda(d);
#endif
}

int tk_device_parse(const char *spec, struct tk_device *dev, int *fell_back,
		    struct tk_diag *d)
{
	int n = 0, rc;
	long long idx = 0;
	if (fell_back)
		*fell_back = 0;
	dev->kind = TK_DEVICE_CPU;
	dev->index = 0;
	if (!strcmp(spec, "cpu"))
		return 0;
	if (!strcmp(spec, "auto")) {
		if (!tk_device_cuda_built())
			return 0;
		if ((rc = tk_device_cuda_count(&n, d)))
			return rc;
		if (n > 0)
			dev->kind = TK_DEVICE_CUDA;
		else if (fell_back)
			*fell_back = 1;
		return 0;
	}
	if (strncmp(spec, "cuda", 4) || (spec[4] && spec[4] != ':') ||
	    (spec[4] == ':' && tk_options_parse_ll(spec + 5, 0, 1023, &idx)))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "unknown device '%s' (use auto, cpu, cuda or cuda:N)", spec);
	if ((rc = tk_device_cuda_count(&n, d)))
		return rc;
	if (idx >= n)
		return tk_diag_set(d, TK_E_DEVICE, NULL, -1,
				   "no CUDA device %lld (the driver reports %d): use --device cpu",
				   idx, n);
	dev->kind = TK_DEVICE_CUDA;
	dev->index = (int)idx;
	return 0;
}

int tk_device_info(struct tk_device dev, struct tk_device_info *info, struct tk_diag *d)
{
	if (dev.kind == TK_DEVICE_CUDA) {
#ifdef TK_USE_CUDA
		return tk_cuda_info(dev.index, info, d);
#else
		return no_cuda(d);
#endif
	}
	memset(info, 0, sizeof(*info));
	info->dev = dev;
	snprintf(info->name, sizeof(info->name), "cpu");
	long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
	long psz = sysconf(_SC_PAGESIZE);
	info->total_mem = pages > 0 ? (size_t)pages * (size_t)psz : 0;
	info->free_mem = avail > 0 ? (size_t)avail * (size_t)psz : 0;
	info->multiprocessors = (int)sysconf(_SC_NPROCESSORS_ONLN);
	return 0;
}

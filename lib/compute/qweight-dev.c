/* qweight-dev.c - quantized weights moved into a backend's memory (see
 * qweight-dev.h). */
#include "compute/qweight-dev.h"

#include <stdlib.h>
#include <string.h>

#include "compute/backend.h"

/* q->release of a weight in a backend's memory: owner is the backend. */
static void release_backend(void *owner, void *p)
{
	tk_backend_free_mem(owner, p);
}

struct tk_backend *tk_qweight_backend(const struct tk_qweight *q)
{
	return q->release == release_backend ? q->owner : NULL;
}

int tk_qweight_to_backend(struct tk_qweight *q, struct tk_backend *be, struct tk_diag *d)
{
	void **p[TK_QWEIGHT_NBUF], *np[TK_QWEIGHT_NBUF] = { 0 };
	size_t bytes[TK_QWEIGHT_NBUF];
	int i;

	/* the CPU backend's memory is the host's: a copy would only double
	 * the weight for a moment and change nothing */
	if (!be || !be->i || !be->i->dequant_rows || be->i->host_memory ||
	    tk_qweight_backend(q) == be)
		return 0;
	tk_qweight_bufs(q, p, bytes);
	for (i = 0; i < TK_QWEIGHT_NBUF; i++) {
		if (!*p[i])
			continue;
		np[i] = tk_backend_alloc(be, bytes[i]);
		if (!np[i]) {
			while (i-- > 0)
				if (np[i])
					tk_backend_free_mem(be, np[i]);
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1,
					   "out of device memory for a quantized weight");
		}
		if (bytes[i])
			memcpy(np[i], *p[i], bytes[i]);
	}
	for (i = 0; i < TK_QWEIGHT_NBUF; i++)
		if (*p[i]) {
			if (q->release)
				q->release(q->owner, *p[i]);
			else
				free(*p[i]);
			*p[i] = np[i];
		}
	q->release = release_backend;
	q->owner = be;
	return 0;
}

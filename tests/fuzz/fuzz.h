/* fuzz.h - helpers shared by the fuzz targets. */
#ifndef TK_FUZZ_H
#define TK_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* Puts size bytes into an anonymous in-memory file and its name into path
 * (/proc/self/fd/N), for readers that take a path.  Returns the descriptor
 * to close afterwards, or -1 (skip the input) if that failed. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, const char *name,
			       char *path, size_t n)
{
	int fd = memfd_create(name, 0);
	if (fd < 0)
		return -1;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	snprintf(path, n, "/proc/self/fd/%d", fd);
	return fd;
}

#endif

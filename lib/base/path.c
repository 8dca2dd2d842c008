/* path.c - see path.h. */
#include "base/path.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The separator between dir and a name: none when dir ends in a slash. */
static const char *sep(const char *dir)
{
	size_t n = strlen(dir);
	return n && dir[n - 1] == '/' ? "" : "/";
}

int tk_path_join(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s%s%s", dir, sep(dir), name);
	return n < 0 || (size_t)n >= size ? TK_E_INVAL : 0;
}

char *tk_path_dup_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s%s", dir, sep(dir), name);
	return p;
}

int tk_path_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

int tk_path_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int tk_path_inside(const char *path, const char *dir)
{
	struct stat sd, sp;
	if (stat(dir, &sd) || !S_ISDIR(sd.st_mode))
		return 0;
	char *real = realpath(path, NULL);
	if (!real)
		return errno == ENOMEM ? TK_E_NOMEM : 0;
	int inside = 0;
	/* the file itself (a directory given as input), then each ancestor */
	for (char *slash = real + strlen(real);; slash = strrchr(real, '/')) {
		if (slash != real + strlen(real))
			slash[slash == real] = '\0'; /* "/a/b" -> "/a", "/a" -> "/" */
		if (!stat(real, &sp) && sp.st_dev == sd.st_dev && sp.st_ino == sd.st_ino) {
			inside = 1;
			break;
		}
		if (!strcmp(real, "/"))
			break;
	}
	free(real);
	return inside;
}

int tk_path_check_outside(const char *input, const char *out, struct tk_diag *d)
{
	int rc = tk_path_inside(input, out);
	if (rc == 1)
		return tk_diag_set(d, TK_E_INVAL, input, -1,
				   "input lies inside the output directory %s, which --force would "
				   "replace (write the output elsewhere)", out);
	return rc < 0 ? tk_diag_set(d, rc, input, -1, "out of memory") : 0;
}

int tk_path_mkdir_parents(const char *path, struct tk_diag *d)
{
	char p[PATH_MAX];
	size_t n = strlen(path);
	if (n >= sizeof(p))
		return tk_diag_set(d, TK_E_INVAL, path, -1, "path too long");
	memcpy(p, path, n + 1);
	while (n > 0 && p[n - 1] != '/') /* the parent: up to the last '/' */
		n--;
	while (n > 1 && p[n - 1] == '/')
		n--;
	p[n] = 0;
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != 0)
			continue;
		char c = p[i];
		p[i] = 0;
		struct stat st;
		if (stat(p, &st)) {
			if (errno != ENOENT || (mkdir(p, 0777) && errno != EEXIST))
				return tk_diag_sys(d, p, "cannot create directory");
		} else if (!S_ISDIR(st.st_mode)) {
			return tk_diag_set(d, TK_E_IO, p, -1, "not a directory");
		}
		p[i] = c;
	}
	return 0;
}

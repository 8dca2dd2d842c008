/* afile.c - see afile.h. */
#include "afile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Temporaries to remove if a signal kills us: files first, then dirs. */
#define MAX_TEMPS 64
static char *temps[MAX_TEMPS];
static int temp_is_dir[MAX_TEMPS];
static volatile sig_atomic_t handlers_set;

static void on_signal(int sig)
{
	for (int i = MAX_TEMPS - 1; i >= 0; i--)
		if (temps[i] && !temp_is_dir[i])
			unlink(temps[i]);
	for (int i = MAX_TEMPS - 1; i >= 0; i--)
		if (temps[i] && temp_is_dir[i])
			rmdir(temps[i]);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void track(char *path, int is_dir)
{
	if (!handlers_set) {
		int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
			struct sigaction sa;
			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = on_signal;
			sigaction(sigs[i], &sa, NULL);
		}
		handlers_set = 1;
	}
	for (int i = 0; i < MAX_TEMPS; i++)
		if (!temps[i]) {
			temp_is_dir[i] = is_dir;
			temps[i] = path;
			return;
		}
}

static void untrack(const char *path)
{
	for (int i = 0; i < MAX_TEMPS; i++)
		if (temps[i] == path)
			temps[i] = NULL;
}

static char *tmp_name(const char *path)
{
	size_t n = strlen(path) + 32;
	char *t = malloc(n);
	if (t)
		snprintf(t, n, "%s.tmp-%ld", path, (long)getpid());
	return t;
}

int tk_afile_open(struct tk_afile *f, const char *path, int force, struct tk_diag *d)
{
	memset(f, 0, sizeof(*f));
	if (!strcmp(path, "-")) {
		f->fp = stdout;
		return 0;
	}
	struct stat st;
	int exists = stat(path, &st) == 0;
	if (exists && S_ISDIR(st.st_mode))
		return tk_diag_set(d, TK_E_INVAL, path, -1, "is a directory");
	if (exists && !S_ISREG(st.st_mode)) {
		/* A device or FIFO (/dev/null, a named pipe): there is nothing to
		 * replace atomically, and a rename would put a file in its place. */
		if (!(f->fp = fopen(path, "wb")))
			return tk_diag_sys(d, path, "cannot open for writing");
		f->direct = 1;
		return 0;
	}
	if (!force && exists)
		return tk_diag_set(d, TK_E_EXISTS, path, -1,
				   "already exists (use --force to overwrite)");
	f->path = strdup(path);
	f->tmp = tmp_name(path);
	if (!f->path || !f->tmp) {
		tk_afile_abort(f);
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	}
	int fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int rc = tk_diag_sys(d, path, "cannot create output");
		free(f->path);
		free(f->tmp);
		memset(f, 0, sizeof(*f));
		return rc;
	}
	track(f->tmp, 0);
	f->fp = fdopen(fd, "wb");
	if (!f->fp) {
		close(fd);
		int rc = tk_diag_sys(d, path, "cannot create output");
		tk_afile_abort(f);
		return rc;
	}
	return 0;
}

int tk_afile_commit(struct tk_afile *f, struct tk_diag *d)
{
	int rc = 0;
	if (f->direct) {
		if (fflush(f->fp) || ferror(f->fp))
			rc = tk_diag_sys(d, NULL, "write failed");
		if (fclose(f->fp) && !rc)
			rc = tk_diag_sys(d, NULL, "write failed");
		memset(f, 0, sizeof(*f));
		return rc;
	}
	if (!f->path) {
		if (fflush(f->fp) || ferror(f->fp))
			rc = tk_diag_sys(d, "<stdout>", "write failed");
		memset(f, 0, sizeof(*f));
		return rc;
	}
	if (fflush(f->fp) || ferror(f->fp) || fsync(fileno(f->fp)))
		rc = tk_diag_sys(d, f->path, "write failed");
	if (fclose(f->fp) && !rc)
		rc = tk_diag_sys(d, f->path, "write failed");
	f->fp = NULL;
	if (!rc && rename(f->tmp, f->path))
		rc = tk_diag_sys(d, f->path, "cannot rename %s into place", f->tmp);
	if (rc)
		unlink(f->tmp);
	untrack(f->tmp);
	free(f->tmp);
	free(f->path);
	memset(f, 0, sizeof(*f));
	return rc;
}

void tk_afile_abort(struct tk_afile *f)
{
	if (f->direct && f->fp)
		fclose(f->fp);
	else if (f->path) {
		if (f->fp)
			fclose(f->fp);
		unlink(f->tmp);
		untrack(f->tmp);
	}
	free(f->tmp);
	free(f->path);
	memset(f, 0, sizeof(*f));
}

int tk_rmtree(const char *path)
{
	struct stat st;
	if (lstat(path, &st))
		return errno == ENOENT ? 0 : TK_E_IO;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) ? TK_E_IO : 0;
	DIR *dp = opendir(path);
	if (!dp)
		return TK_E_IO;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(dp))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		size_t n = strlen(path) + strlen(e->d_name) + 2;
		char *sub = malloc(n);
		if (!sub) {
			rc = TK_E_NOMEM;
			break;
		}
		snprintf(sub, n, "%s/%s", path, e->d_name);
		if (tk_rmtree(sub))
			rc = TK_E_IO;
		free(sub);
	}
	closedir(dp);
	if (rmdir(path))
		rc = TK_E_IO;
	return rc;
}

int tk_adir_open(struct tk_adir *dir, const char *path, int force, struct tk_diag *d)
{
	memset(dir, 0, sizeof(*dir));
	struct stat st;
	if (!force && stat(path, &st) == 0)
		return tk_diag_set(d, TK_E_EXISTS, path, -1,
				   "already exists (use --force to overwrite)");
	dir->path = strdup(path);
	dir->tmp = tmp_name(path);
	if (!dir->path || !dir->tmp) {
		tk_adir_abort(dir);
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	}
	tk_rmtree(dir->tmp); /* left over from a killed run with our pid */
	if (mkdir(dir->tmp, 0755)) {
		int rc = tk_diag_sys(d, path, "cannot create output directory");
		free(dir->path);
		free(dir->tmp);
		memset(dir, 0, sizeof(*dir));
		return rc;
	}
	track(dir->tmp, 1);
	return 0;
}

char *tk_adir_file(const struct tk_adir *dir, const char *name)
{
	size_t n = strlen(dir->tmp) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir->tmp, name);
	return p;
}

int tk_adir_commit(struct tk_adir *dir, struct tk_diag *d)
{
	int rc = 0;
	struct stat st;
	char *old = NULL;
	int fd = open(dir->tmp, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	if (stat(dir->path, &st) == 0) {
		size_t n = strlen(dir->path) + 32;
		old = malloc(n);
		if (!old) {
			rc = tk_diag_set(d, TK_E_NOMEM, dir->path, -1, "out of memory");
			goto out;
		}
		snprintf(old, n, "%s.old-%ld", dir->path, (long)getpid());
		if (rename(dir->path, old)) {
			rc = tk_diag_sys(d, dir->path, "cannot move the old output aside");
			goto out;
		}
	}
	if (rename(dir->tmp, dir->path)) {
		rc = tk_diag_sys(d, dir->path, "cannot rename %s into place", dir->tmp);
		if (old)
			rename(old, dir->path);
		goto out;
	}
	if (old)
		tk_rmtree(old);
out:
	free(old);
	if (rc)
		tk_rmtree(dir->tmp);
	untrack(dir->tmp);
	free(dir->tmp);
	free(dir->path);
	memset(dir, 0, sizeof(*dir));
	return rc;
}

void tk_adir_abort(struct tk_adir *dir)
{
	if (dir->tmp) {
		tk_rmtree(dir->tmp);
		untrack(dir->tmp);
	}
	free(dir->tmp);
	free(dir->path);
	memset(dir, 0, sizeof(*dir));
}

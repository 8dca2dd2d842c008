/* afile.c - see afile.h. */
#include "base/afile.h"
#include "base/path.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------- cleanup on a signal ------------------------- *
 *
 * Each temporary (file or directory) is registered while it is written;
 * on SIGINT, SIGTERM, SIGHUP or SIGPIPE the handler removes them all, puts
 * back an old output directory that a commit had moved aside, then
 * re-raises the signal with the default action so the exit status is the
 * signal's.  The handler uses only async-signal-safe calls on paths
 * computed before it ran: unlink, rename, openat, unlinkat, lseek, close,
 * sigaction, raise, pause, and getdents64 through syscall(2) (opendir and
 * readdir may allocate, so they are not allowed there; getdents64 is a
 * bare system call into a buffer on the handler's stack).  The entries are
 * published through a state word with atomic stores, so the handler never
 * sees a half-filled one. */

enum { T_FREE = 0, T_BUSY, T_LIVE };
enum { T_FILE, T_DIR, T_RESTORE };

#define MAX_TEMPS 64
static struct temp {
	int state;        /* T_FREE, T_BUSY (being filled), T_LIVE */
	int kind;         /* T_FILE, T_DIR, or T_RESTORE (rename from back to path) */
	const char *path; /* owned by the caller, unregistered before it is freed */
	const char *from;
} temps[MAX_TEMPS];
static int handlers_set, cleaning;

#ifdef __linux__
#include <sys/syscall.h>

static void rm_at(int dfd, const char *name, int depth);

/* Removes everything in the directory open as fd. */
static void empty_dir(int fd, int depth)
{
	char buf[2048] __attribute__((aligned(8)));
	/* entries removed while reading may make getdents skip others: read
	 * again until a pass finds nothing (or nothing it can remove) */
	for (int pass = 0; pass < 4; pass++) {
		long n, seen = 0;
		if (lseek(fd, 0, SEEK_SET) < 0)
			return;
		while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
			for (long off = 0; off < n;) {
				struct {
					uint64_t ino;
					int64_t off;
					unsigned short reclen;
					unsigned char type;
					char name[];
				} *e = (void *)(buf + off);
				off += e->reclen;
				if (e->name[0] == '.' && (!e->name[1] ||
							  (e->name[1] == '.' && !e->name[2])))
					continue;
				rm_at(fd, e->name, depth);
				seen++;
			}
		}
		if (!seen)
			return;
	}
}

static void rm_at(int dfd, const char *name, int depth)
{
	if (unlinkat(dfd, name, 0) == 0 || (errno != EISDIR && errno != EPERM) || depth > 16)
		return;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		empty_dir(fd, depth + 1);
		close(fd);
	}
	unlinkat(dfd, name, AT_REMOVEDIR);
}

static void rmtree_signal_safe(const char *path)
{
	rm_at(AT_FDCWD, path, 0);
}
#else
static void rmtree_signal_safe(const char *path)
{
	rmdir(path); /* holds only registered files, removed first */
}
#endif

static void on_signal(int sig)
{
	if (__atomic_exchange_n(&cleaning, 1, __ATOMIC_SEQ_CST)) {
		for (;;) /* another thread cleans up and then ends the process */
			pause();
	}
	for (int pass = T_FILE; pass <= T_RESTORE; pass++) {
		for (int i = MAX_TEMPS - 1; i >= 0; i--) {
			struct temp *t = &temps[i];
			if (__atomic_load_n(&t->state, __ATOMIC_SEQ_CST) != T_LIVE || t->kind != pass)
				continue;
			if (pass == T_FILE)
				unlink(t->path);
			else if (pass == T_DIR)
				rmtree_signal_safe(t->path);
			else
				rename(t->from, t->path);
		}
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(sig, &sa, NULL);
	raise(sig); /* blocked until the handler returns, then kills */
}

static const int cleanup_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };

static void set_handlers(void)
{
	if (__atomic_exchange_n(&handlers_set, 1, __ATOMIC_SEQ_CST))
		return;
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(cleanup_signals) / sizeof(cleanup_signals[0]); i++)
		sigaddset(&sa.sa_mask, cleanup_signals[i]);
	for (size_t i = 0; i < sizeof(cleanup_signals) / sizeof(cleanup_signals[0]); i++) {
		/* a signal the parent ignores (nohup, a background job's SIGINT)
		 * stays ignored, and a handler someone else set is left alone */
		if (sigaction(cleanup_signals[i], NULL, &old) || old.sa_handler != SIG_DFL ||
		    (old.sa_flags & SA_SIGINFO))
			continue;
		sigaction(cleanup_signals[i], &sa, NULL);
	}
}

/* Registers path (and from, for T_RESTORE) for removal on a signal; both
 * must stay valid until untrack(path).  With all slots taken the output
 * is still written, only not cleaned up on a signal. */
static void track(const char *path, const char *from, int kind)
{
	set_handlers();
	for (int i = 0; i < MAX_TEMPS; i++) {
		int want = T_FREE;
		if (__atomic_compare_exchange_n(&temps[i].state, &want, T_BUSY, 0,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			temps[i].kind = kind;
			temps[i].path = path;
			temps[i].from = from;
			__atomic_store_n(&temps[i].state, T_LIVE, __ATOMIC_SEQ_CST);
			return;
		}
	}
}

static void untrack(const char *path)
{
	for (int i = 0; i < MAX_TEMPS; i++)
		if (__atomic_load_n(&temps[i].state, __ATOMIC_SEQ_CST) == T_LIVE &&
		    temps[i].path == path)
			__atomic_store_n(&temps[i].state, T_FREE, __ATOMIC_SEQ_CST);
}

/* ----------------------------- stale debris ----------------------------- */

/* The directory part of path ("." when none) in a malloc'ed string, and a
 * pointer to its last component (trailing slashes cut) in *base. */
static char *split_path(const char *path, char **base)
{
	size_t n = strlen(path);
	char *p = malloc(n + 3);
	if (!p)
		return NULL;
	memcpy(p, path, n + 1);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	char *slash = strrchr(p, '/');
	if (!slash) { /* "name": directory "." */
		memmove(p + 2, p, n + 1);
		p[0] = '.';
		p[1] = '\0';
		*base = p + 2;
	} else if (slash == p) { /* "/name" */
		memmove(p + 2, p + 1, n);
		p[1] = '\0';
		*base = p + 2;
	} else {
		*slash = '\0';
		*base = slash + 1;
	}
	return p;
}

/* The pid of NAME.tmp-PID or NAME.old-PID for the given base, else 0. */
static long debris_pid(const char *entry, const char *base)
{
	size_t n = strlen(base);
	if (!*base || strncmp(entry, base, n) || (strncmp(entry + n, ".tmp-", 5) &&
						   strncmp(entry + n, ".old-", 5)))
		return 0;
	const char *p = entry + n + 5;
	long pid = 0;
	if (!*p)
		return 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || pid > 0x7fffffffL / 10)
			return 0;
		pid = pid * 10 + (*p - '0');
	}
	return pid;
}

int tk_afile_clean_stale(const char *path)
{
	char *base;
	char *dir = split_path(path, &base);
	if (!dir)
		return TK_E_NOMEM;
	int removed = 0, rc = 0;
	DIR *dp = opendir(dir);
	struct dirent *e;
	while (dp && (e = readdir(dp))) {
		long pid = debris_pid(e->d_name, base);
		if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char *p = tk_path_dup_join(dir, e->d_name);
		if (!p) {
			rc = TK_E_NOMEM;
			break;
		}
		if (tk_afile_rmtree(p))
			rc = TK_E_IO;
		else
			removed++;
		free(p);
	}
	if (dp)
		closedir(dp);
	free(dir);
	return rc ? rc : removed;
}

/* fsyncs the directory that holds path, so a rename into it is durable.
 * A directory that cannot be opened for reading (mode 0300) or a file
 * system that cannot sync directories is no error. */
static int sync_parent(const char *path, struct tk_diag *d)
{
	char *base;
	char *dir = split_path(path, &base);
	if (!dir)
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	int rc = 0, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) && errno != EINVAL && errno != EROFS && errno != EBADF)
			rc = tk_diag_sys(d, path, "cannot sync the directory %s", dir);
		close(fd);
	}
	free(dir);
	return rc;
}

/* ------------------------------- outputs ------------------------------- */

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
	tk_afile_clean_stale(path);
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
	track(f->tmp, NULL, T_FILE);
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
	if (!rc)
		rc = sync_parent(f->path, d);
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

int tk_afile_copy(const char *src, const char *dst, struct tk_diag *d)
{
	struct tk_buf b = { 0 };
	struct tk_afile f;
	int rc = tk_read_file(src, &b, d);
	if (rc)
		return rc;
	if (!(rc = tk_afile_open(&f, dst, 1, d))) {
		if (b.len && fwrite(b.data, 1, b.len, f.fp) != b.len) {
			rc = tk_diag_sys(d, dst, "write failed");
			tk_afile_abort(&f);
		} else
			rc = tk_afile_commit(&f, d);
	}
	tk_buf_free(&b);
	return rc;
}

int tk_afile_rmtree(const char *path)
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
		char *sub = tk_path_dup_join(path, e->d_name);
		if (!sub) {
			rc = TK_E_NOMEM;
			break;
		}
		if (tk_afile_rmtree(sub))
			rc = TK_E_IO;
		free(sub);
	}
	closedir(dp);
	if (rmdir(path))
		rc = TK_E_IO;
	return rc;
}

int tk_afile_dir_open(struct tk_afile_dir *dir, const char *path_in, int force,
		      struct tk_diag *d)
{
	memset(dir, 0, sizeof(*dir));
	struct stat st;
	if (!force && stat(path_in, &st) == 0)
		return tk_diag_set(d, TK_E_EXISTS, path_in, -1,
				   "already exists (use --force to overwrite)");
	/* "blocks/" is "blocks": with the slash, the temporary directory and
	 * the old output's new name would lie inside the output itself */
	char *path = strdup(path_in);
	if (!path)
		return tk_diag_set(d, TK_E_NOMEM, path_in, -1, "out of memory");
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = 0;
	int rc0 = tk_path_mkdir_parents(path, d);
	if (rc0) {
		free(path);
		return rc0;
	}
	tk_afile_clean_stale(path);
	dir->path = path;
	dir->tmp = tmp_name(path);
	if (!dir->path || !dir->tmp) {
		tk_afile_dir_abort(dir);
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	}
	tk_afile_rmtree(dir->tmp); /* left over from a killed run with our pid */
	if (mkdir(dir->tmp, 0755)) {
		int rc = tk_diag_sys(d, path, "cannot create output directory");
		free(dir->path);
		free(dir->tmp);
		memset(dir, 0, sizeof(*dir));
		return rc;
	}
	track(dir->tmp, NULL, T_DIR);
	return 0;
}

char *tk_afile_dir_file(const struct tk_afile_dir *dir, const char *name)
{
	return tk_path_dup_join(dir->tmp, name);
}

int tk_afile_dir_commit(struct tk_afile_dir *dir, struct tk_diag *d)
{
	int rc = 0;
	struct stat st;
	char *old = NULL;
	int fd = open(dir->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	if (lstat(dir->path, &st) == 0) {
		size_t n = strlen(dir->path) + 32;
		old = malloc(n);
		if (!old) {
			rc = tk_diag_set(d, TK_E_NOMEM, dir->path, -1, "out of memory");
			goto out;
		}
		snprintf(old, n, "%s.old-%ld", dir->path, (long)getpid());
		/* a signal from here on puts the old output back */
		track(dir->path, old, T_RESTORE);
		if (rename(dir->path, old)) {
			rc = tk_diag_sys(d, dir->path, "cannot move the old output aside");
			untrack(dir->path);
			goto out;
		}
	}
	if (rename(dir->tmp, dir->path)) {
		rc = tk_diag_sys(d, dir->path, "cannot rename %s into place", dir->tmp);
		if (old)
			rename(old, dir->path);
		if (old)
			untrack(dir->path);
		goto out;
	}
	if (old) {
		track(old, NULL, T_DIR); /* the new output is in place */
		untrack(dir->path);
		tk_afile_rmtree(old);
		untrack(old);
	}
	rc = sync_parent(dir->path, d);
out:
	free(old);
	if (rc)
		tk_afile_rmtree(dir->tmp);
	untrack(dir->tmp);
	free(dir->tmp);
	free(dir->path);
	memset(dir, 0, sizeof(*dir));
	return rc;
}

void tk_afile_dir_abort(struct tk_afile_dir *dir)
{
	if (dir->tmp) {
		tk_afile_rmtree(dir->tmp);
		untrack(dir->tmp);
	}
	free(dir->tmp);
	free(dir->path);
	memset(dir, 0, sizeof(*dir));
}


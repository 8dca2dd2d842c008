/* afile.h - outputs that appear whole or not at all.
 *
 * A file is written to "PATH.tmp-PID" and renamed onto PATH by
 * tk_afile_commit() after fflush and fsync; tk_afile_abort() removes the
 * temporary.  A directory output is built under "DIR.tmp-PID" and renamed
 * into place the same way, and the directory holding the output is
 * fsynced after the rename.  Temporaries (whole trees for directories) are
 * also removed if the process is killed by SIGINT, SIGTERM, SIGHUP or
 * SIGPIPE, after which the signal is raised again with its default action
 * (exit status 128 + signal); a signal the process inherited as ignored
 * stays ignored.  Debris of runs that died without cleaning up (SIGKILL, a
 * crash) is removed when the same output is written again, see
 * tk_afile_clean_stale().  So a failed or interrupted run leaves nothing
 * partial behind.  The path "-" means stdout, and an
 * existing path that is not a regular file (a device such as /dev/null, a
 * named pipe) is opened and written directly: neither can be replaced
 * atomically, and a rename would put a file in the device's place.
 */
#ifndef TK_AFILE_H
#define TK_AFILE_H

#include <stdio.h>

#include "base/tk.h"

struct tk_afile {
	char *path;  /* final name (NULL for stdout) */
	char *tmp;   /* temporary name */
	FILE *fp;    /* write here */
	int direct;  /* writing straight to a device or FIFO */
};

/* Opens an output.  Fails with TK_E_EXISTS if path is an existing regular
 * file and !force, TK_E_INVAL if it is a directory, and TK_E_IO if the
 * temporary cannot be created.  On success f->fp is ready. */
int tk_afile_open(struct tk_afile *f, const char *path, int force, struct tk_diag *d);

/* Flushes, fsyncs and renames the temporary onto the final name (for stdout:
 * flushes and checks for write errors).  On failure the temporary is
 * removed.  Always releases f. */
int tk_afile_commit(struct tk_afile *f, struct tk_diag *d);

/* Discards the output.  Always releases f.  Safe on a zeroed struct. */
void tk_afile_abort(struct tk_afile *f);

struct tk_afile_dir {
	char *path;
	char *tmp;
};

/* Creates the temporary directory for an output directory.  Fails with
 * TK_E_EXISTS if path exists and !force. */
int tk_afile_dir_open(struct tk_afile_dir *dir, const char *path, int force, struct tk_diag *d);

/* Joins name onto the temporary directory; returns a malloc'ed path. */
char *tk_afile_dir_file(const struct tk_afile_dir *dir, const char *name);

/* Renames the temporary directory into place (replacing an existing one
 * only if opened with force).  Always releases dir. */
int tk_afile_dir_commit(struct tk_afile_dir *dir, struct tk_diag *d);

/* Removes the temporary directory and its files.  Always releases dir. */
void tk_afile_dir_abort(struct tk_afile_dir *dir);

/* Removes a directory tree (no symlinks followed).  Returns 0 or TK_E_IO. */
int tk_afile_rmtree(const char *path);

/* Removes the debris of dead runs beside an output: PATH.tmp-PID and
 * PATH.old-PID (files or trees) whose PID is not a live process (kill(PID,
 * 0) fails with ESRCH; a live PID, ours or another user's, is kept).
 * tk_afile_open() and tk_afile_dir_open() call it before writing, so a tool
 * need not.  Returns the number removed, TK_E_IO if one could not be, or
 * TK_E_NOMEM.  (A process of another PID namespace or host writing the
 * same output into a shared directory looks dead from here.) */
int tk_afile_clean_stale(const char *path);

/* Copies the file src to dst whole or not at all: written as a
 * tk_afile_open(dst, force) output (an existing dst is replaced) and
 * renamed into place.  Returns 0, or the error of reading src or of
 * writing dst, with d set. */
int tk_afile_copy(const char *src, const char *dst, struct tk_diag *d);

#endif

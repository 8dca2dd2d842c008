/* path.h - path names: joining, testing, and the directories above an
 * output.  No file is written here; atomic outputs are afile.h's. */
#ifndef TK_PATH_H
#define TK_PATH_H

#include <stddef.h>

#include "base/tk.h"

/* Writes "dir/name" into buf (size bytes), with no second slash when dir
 * already ends in one ("out/" + "x" is "out/x"; "" + "x" is "/x").
 * Returns 0, or TK_E_INVAL when it does not fit (buf then holds as much as
 * fits, NUL-terminated). */
int tk_path_join(char *buf, size_t size, const char *dir, const char *name);

/* The same join in a malloc'd string the caller frees; NULL when out of
 * memory. */
char *tk_path_dup_join(const char *dir, const char *name);

/* 1 if path exists (symlinks followed: a dangling one does not), 0 if
 * not or if it cannot be stat'ed. */
int tk_path_exists(const char *path);

/* 1 if path is a directory (symlinks followed), 0 if not or if it does not
 * exist. */
int tk_path_is_dir(const char *path);

/* 1 if path (symlinks resolved) is dir or lies anywhere under it, judged
 * by device and inode of each ancestor, so "a/../b", symlinks and bind
 * mounts are seen through; 0 if not or if either does not exist;
 * TK_E_NOMEM. */
int tk_path_inside(const char *path, const char *dir);

/* For a tool about to replace the directory out (--force): TK_E_INVAL,
 * naming input, when input lies inside out (tk_path_inside), since the
 * replacement would delete it; TK_E_NOMEM; else 0. */
int tk_path_check_outside(const char *input, const char *out, struct tk_diag *d);

/* Creates the directories above path that do not exist (mkdir -p of its
 * parent; as the umask allows), so that -o a/b/c works where a/b is new
 * for an output directory (files keep the plain open's error).
 * 0; TK_E_INVAL when path is too long; TK_E_IO when one of them is not a
 * directory or cannot be made (errno kept).  tk_afile_dir_open calls it. */
int tk_path_mkdir_parents(const char *path, struct tk_diag *d);

#endif

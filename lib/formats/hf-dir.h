/* hf-dir.h - the side files of a Hugging Face model directory.
 *
 * Besides config.json and the weights, a model directory holds the files
 * its tokenizer, generation defaults and chat template live in.  They go
 * along with the model wherever tk writes one: tk-train's checkpoints and
 * output, tk-merge's merged model, tk-quantize's quantized one.  This is
 * the one list of them.
 */
#ifndef TK_HF_DIR_H
#define TK_HF_DIR_H

#include "base/tk.h"

/* The side files, NULL-terminated.  Bit i of the masks below stands for
 * tk_hf_side_files[i]; tk-train records the names of a mask in this order
 * (trainer_state.json), so new names go at the end or where order does
 * not matter to old records. */
extern const char *const tk_hf_side_files[];

/* A mask of every side file. */
#define TK_HF_SIDE_ALL (~0u)

/* The index of name in tk_hf_side_files, -1 when it is not one. */
int tk_hf_side_index(const char *name);

/* The mask of the side files dir holds as regular files (symlinks
 * followed); 0 for none, or when dir does not exist. */
unsigned tk_hf_side_present(const char *dir);

/* Copies the side files of mask want that src holds (tk_hf_side_present)
 * into dst, each with tk_afile_copy (a file already in dst is replaced);
 * those src lacks are skipped.  Returns 0, TK_E_INVAL when a path does not
 * fit in PATH_MAX, or the error of a copy, with d set. */
int tk_hf_copy_side_files(const char *src, const char *dst, unsigned want, struct tk_diag *d);

#endif

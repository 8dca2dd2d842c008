/* safetensors.h - Hugging Face safetensors files: read (mmap) and write.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON
 * ({"__metadata__": {...}, "NAME": {"dtype": "F32", "shape": [...],
 * "data_offsets": [BEGIN, END]}, ...}) and the tensor bytes, offsets counted
 * from the end of the header.  A model directory holds model.safetensors or
 * shards model-0000N-of-0000M.safetensors listed in
 * model.safetensors.index.json ({"weight_map": {"NAME": "FILE"}}).
 *
 * Readers mmap the files and validate every header before use: JSON
 * syntax, known dtypes, shapes whose element count times the dtype size
 * equals the byte range, ranges inside the file, no two tensors
 * overlapping, the data area fully covered (as the safetensors library
 * requires), and sane limits on header size and rank.
 */
#ifndef TK_SAFETENSORS_H
#define TK_SAFETENSORS_H

#include <stdint.h>

#include "base/tk.h"

enum tk_dtype {
	TK_DT_F32 = 0, TK_DT_F16, TK_DT_BF16, TK_DT_F64,
	TK_DT_I8, TK_DT_U8, TK_DT_I16, TK_DT_U16, TK_DT_I32, TK_DT_U32,
	TK_DT_I64, TK_DT_U64, TK_DT_BOOL,
	TK_DT_COUNT
};

#define TK_ST_MAX_DIMS 8

/* Name as in the safetensors header ("F32", "BF16"...) and size in bytes. */
const char *tk_dtype_name(enum tk_dtype t);
size_t tk_dtype_size(enum tk_dtype t);
/* Parses a dtype name; returns 0 or TK_E_FORMAT. */
int tk_dtype_parse(const char *name, enum tk_dtype *t);

struct tk_tensor_info {
	const char *name;
	enum tk_dtype dtype;
	int ndim;
	int64_t shape[TK_ST_MAX_DIMS];
	uint64_t nelem;
	const void *data;     /* in the mmapped file */
	uint64_t nbytes;
	const char *file;     /* the file it lives in (for messages) */
};

typedef struct tk_st tk_safetensors_t;

/* Opens path: a .safetensors file, a model directory (model.safetensors,
 * else model.safetensors.index.json and its shards) or an index file.
 * Errors name the file and what is wrong (with the byte offset for a
 * malformed header). */
int tk_safetensors_open(tk_safetensors_t **st, const char *path, struct tk_diag *d);
void tk_safetensors_close(tk_safetensors_t *st);

/* Tensors in file order (shards by file name), each file's in header order. */
size_t tk_safetensors_count(const tk_safetensors_t *st);
const struct tk_tensor_info *tk_safetensors_at(const tk_safetensors_t *st, size_t i);
/* NULL when absent. */
const struct tk_tensor_info *tk_safetensors_find(const tk_safetensors_t *st, const char *name);
/* A __metadata__ value of the first file, NULL when absent. */
const char *tk_safetensors_metadata(const tk_safetensors_t *st, const char *key);

/* Converts n = t->nelem elements of t (F32, F16, BF16 or F64) to fp32 into
 * dst, then drops t's mapped pages from the process's resident memory (a
 * later read of t->data faults them back from the page cache), so that a
 * model converted tensor by tensor peaks near its fp32 size, not that plus
 * its file's.  Other dtypes are TK_E_UNSUPPORTED naming the tensor. */
int tk_safetensors_to_f32(const struct tk_tensor_info *t, float *dst, struct tk_diag *d);

/* Drops t's mapped pages from the process's resident memory, as
 * tk_safetensors_to_f32 does after converting: for a caller that copied
 * t->data itself.  t->data stays readable (the pages fault back in). */
void tk_safetensors_release(const struct tk_tensor_info *t);

/* Checks that name exists with this rank and shape (-1 in shape matches any
 * size); TK_E_FORMAT with a message naming the tensor, the expected and the
 * found shape otherwise. */
int tk_safetensors_expect(const tk_safetensors_t *st, const char *name, int ndim, const int64_t *shape,
		 const struct tk_tensor_info **out, struct tk_diag *d);

/* Writing: tensors are added (data copied or referenced until commit) and
 * the file is written atomically by tk_safetensors_writer_commit, with the header
 * keys sorted and padded with spaces to a multiple of 8 as the safetensors
 * library does, so the same tensors always give the same bytes. */
typedef struct tk_safetensors_writer tk_safetensors_writer_t;

int tk_safetensors_writer_new(tk_safetensors_writer_t **w);
/* data must stay valid until commit; nbytes must match dtype and shape. */
int tk_safetensors_writer_add(tk_safetensors_writer_t *w, const char *name, enum tk_dtype dtype, int ndim,
		     const int64_t *shape, const void *data, struct tk_diag *d);
int tk_safetensors_writer_metadata(tk_safetensors_writer_t *w, const char *key, const char *value);
/* Writes path (temporary name, fsync, rename); frees w either way. */
int tk_safetensors_writer_commit(tk_safetensors_writer_t *w, const char *path, int force, struct tk_diag *d);
void tk_safetensors_writer_free(tk_safetensors_writer_t *w);

/* fp16/bf16 <-> fp32 conversions (round to nearest even), bit for bit as
 * torch converts: NaN stays NaN (fp32 to bf16 gives 0x7fc0, fp32 to fp16
 * the sign and 0x7e00, fp16 to fp32 keeps the payload and sets the quiet
 * bit); fp32 above the fp16 range gives infinity. */
float tk_f16_to_f32(uint16_t h);
float tk_bf16_to_f32(uint16_t h);
uint16_t tk_f32_to_f16(float f);
uint16_t tk_f32_to_bf16(float f);

#endif

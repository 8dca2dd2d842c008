/* gguf.h - llama.cpp's GGUF files (v2 and v3): read, dequantize, write (v3), and turn
 * the tokenizer.ggml.* vocabulary into a Hugging Face tokenizer.json.
 *
 * A file is the magic "GGUF", a u32 version, u64 tensor and key/value
 * counts, the key/value pairs (string key, u32 type, value; arrays are a
 * u32 element type, a u64 count and the elements; strings a u64 length and
 * bytes), the tensor infos (name, u32 rank, u64 dims innermost first, u32
 * ggml type, u64 offset) and, at the next multiple of general.alignment
 * (default 32), the tensor data, offsets counted from there.  All little
 * endian (see docs/gguf.md in ggml).
 *
 * tk_gguf_open mmaps the file and validates everything before use: counts
 * and string or array lengths against the bytes left, known value and
 * tensor types, unique keys and tensor names, ranks up to 4, element counts
 * without overflow, dims a whole number of quantization blocks, offsets
 * aligned, tensor data inside the file and not overlapping.
 */
#ifndef TK_GGUF_H
#define TK_GGUF_H

#include <stdint.h>

#include "base/tk.h"

enum tk_gguf_vtype {
	TK_GGUF_U8 = 0, TK_GGUF_I8, TK_GGUF_U16, TK_GGUF_I16, TK_GGUF_U32, TK_GGUF_I32,
	TK_GGUF_F32, TK_GGUF_BOOL, TK_GGUF_STRING, TK_GGUF_ARRAY, TK_GGUF_U64, TK_GGUF_I64,
	TK_GGUF_F64,
	TK_GGUF_VTYPE_COUNT
};

/* ggml tensor types (the ids that matter here; others are known by size). */
enum tk_ggml_type {
	TK_GGML_F32 = 0, TK_GGML_F16 = 1, TK_GGML_Q4_0 = 2, TK_GGML_Q4_1 = 3,
	TK_GGML_Q5_0 = 6, TK_GGML_Q5_1 = 7, TK_GGML_Q8_0 = 8, TK_GGML_Q8_1 = 9,
	TK_GGML_Q2_K = 10, TK_GGML_Q3_K = 11, TK_GGML_Q4_K = 12, TK_GGML_Q5_K = 13,
	TK_GGML_Q6_K = 14, TK_GGML_Q8_K = 15, TK_GGML_BF16 = 30,
	TK_GGML_TYPE_COUNT = 40
};

/* A string inside the mapped file: n bytes at p, not NUL-terminated. */
struct tk_gguf_str {
	const char *p;
	uint64_t n;
};

struct tk_gguf_kv {
	const char *key;      /* NUL-terminated copy */
	int type;             /* enum tk_gguf_vtype */
	/* scalars */
	int64_t i;            /* integer and bool types (u64 above INT64_MAX is clamped) */
	uint64_t u;           /* integer types as unsigned (negative: 0) */
	double f;             /* F32, F64, and integers as doubles */
	const char *s;        /* STRING: NUL-terminated copy (may hold NULs: see sn) */
	uint64_t sn;
	/* arrays */
	int arr_type;         /* element type */
	uint64_t n;           /* element count */
	const void *data;     /* elements in the file (numeric types) */
	const struct tk_gguf_str *strs; /* elements of a string array */
};

struct tk_gguf_tensor {
	const char *name;     /* NUL-terminated copy */
	int type;             /* enum tk_ggml_type */
	int ndim;
	int64_t ne[4];        /* dims, innermost (row length) first */
	uint64_t nelem;
	uint64_t offset;      /* from the start of the data section */
	const void *data;     /* in the mapped file */
	uint64_t nbytes;
};

typedef struct tk_gguf tk_gguf_t;

/* Opens and validates path (see above).  TK_E_FORMAT with the byte offset
 * in d->offset and a message naming what lies (a count, a length, a
 * tensor); TK_E_UNSUPPORTED for other versions or unknown tensor types. */
int tk_gguf_open(tk_gguf_t **g, const char *path, struct tk_diag *d);
void tk_gguf_close(tk_gguf_t *g);

uint32_t tk_gguf_version(const tk_gguf_t *g);
const char *tk_gguf_path(const tk_gguf_t *g);

size_t tk_gguf_kv_count(const tk_gguf_t *g);
const struct tk_gguf_kv *tk_gguf_kv_at(const tk_gguf_t *g, size_t i);
/* NULL when absent. */
const struct tk_gguf_kv *tk_gguf_find(const tk_gguf_t *g, const char *key);

/* Typed lookups: absent keys leave *out = def and return 0; a value of the
 * wrong type is TK_E_FORMAT naming the key.  tk_gguf_get_str sets *out to
 * NULL when absent. */
int tk_gguf_get_int(const tk_gguf_t *g, const char *key, int64_t def, int64_t *out,
		    struct tk_diag *d);
int tk_gguf_get_float(const tk_gguf_t *g, const char *key, double def, double *out,
		      struct tk_diag *d);
int tk_gguf_get_str(const tk_gguf_t *g, const char *key, const char **out, struct tk_diag *d);

size_t tk_gguf_tensor_count(const tk_gguf_t *g);
const struct tk_gguf_tensor *tk_gguf_tensor_at(const tk_gguf_t *g, size_t i);
const struct tk_gguf_tensor *tk_gguf_tensor_find(const tk_gguf_t *g, const char *name);

/* Lowercase name of a ggml type ("q4_k", "bf16"), "unknown" for others;
 * elements per block and bytes per block (0 for unknown types). */
const char *tk_ggml_type_name(int type);
int tk_ggml_block_size(int type);
int tk_ggml_type_size(int type);
/* Whether tk_gguf_dequantize handles the type. */
int tk_ggml_can_dequantize(int type);

/* Dequantizes n values (a whole number of blocks) of the given type from
 * src into dst, exactly as the gguf Python package does.  Returns 0 or
 * TK_E_UNSUPPORTED. */
int tk_ggml_dequantize(int type, const void *src, float *dst, uint64_t n);

/* All t->nelem values of t as fp32 into dst; TK_E_UNSUPPORTED naming the
 * tensor and its type for types tk cannot dequantize. */
int tk_gguf_to_f32(const tk_gguf_t *g, const struct tk_gguf_tensor *t, float *dst,
		   struct tk_diag *d);

/* The file's tokenizer.ggml.* vocabulary as a Hugging Face tokenizer.json
 * (*tokenizer) and tokenizer_config.json (*config), cJSON trees the caller
 * frees with cJSON_Delete.  Model "gpt2": byte-level BPE whose
 * pre-tokenizer follows tokenizer.ggml.pre as llama.cpp does (gpt-2,
 * llama-bpe and the Llama-3 family, qwen2, smollm, starcoder...); model
 * "llama": SentencePiece-style BPE with byte fallback and merges recovered
 * from the scores as transformers does.  Control tokens become special
 * added tokens, user-defined ones plain added tokens; BOS/EOS come from
 * tokenizer.ggml.add_bos_token/add_eos_token (default as llama.cpp).
 * TK_E_UNSUPPORTED names an unknown model or pre-tokenizer type. */
struct cJSON;
int tk_gguf_tokenizer_json(const tk_gguf_t *g, struct cJSON **tokenizer, struct cJSON **config,
			   struct tk_diag *d);

/* Whether path names a GGUF file: it starts with the GGUF magic. */
int tk_gguf_is_gguf(const char *path);

/* ---- writing (gguf-write.c) ----
 *
 * A writer collects key/value pairs (in the order given) and tensors, and
 * tk_gguf_writer_commit writes a GGUF v3 file: the header, the pairs, the
 * tensor infos, then each tensor's data at the next multiple of 32 bytes
 * (general.alignment is not written: 32 is the default), atomically
 * (afile.h).  The add functions copy what they are given (keys, strings,
 * arrays); tensor data is referenced, or owned when own is set.  An
 * allocation failure is remembered and returned by commit. */
typedef struct tk_gguf_writer tk_gguf_writer_t;

/* A new empty writer, or NULL when out of memory. */
tk_gguf_writer_t *tk_gguf_writer_new(void);
/* Releases w and the tensor data it owns; w may be NULL. */
void tk_gguf_writer_free(tk_gguf_writer_t *w);

void tk_gguf_add_str(tk_gguf_writer_t *w, const char *key, const char *val);
void tk_gguf_add_u32(tk_gguf_writer_t *w, const char *key, uint32_t val);
void tk_gguf_add_f32(tk_gguf_writer_t *w, const char *key, float val);
void tk_gguf_add_bool(tk_gguf_writer_t *w, const char *key, int val);
/* An array of n numbers of type vtype (a numeric enum tk_gguf_vtype), in
 * little-endian element layout at data. */
void tk_gguf_add_arr(tk_gguf_writer_t *w, const char *key, int vtype, uint64_t n,
		     const void *data);
/* An array of n strings; len may be NULL (NUL-terminated strings). */
void tk_gguf_add_strs(tk_gguf_writer_t *w, const char *key, uint64_t n,
		      const char *const *strs, const size_t *len);
/* A tensor of ggml type with ndim (1..4) dims ne, innermost first, whose
 * data (nbytes, which must fit the type and dims) stays valid until commit
 * or free; with own the writer frees it. */
void tk_gguf_add_tensor(tk_gguf_writer_t *w, const char *name, int type, int ndim,
			const int64_t *ne, void *data, uint64_t nbytes, int own);

/* Writes path ("-" for stdout) and frees w.  TK_E_EXISTS when path exists
 * and !force; TK_E_INVAL for a duplicate key or tensor name or a tensor
 * whose bytes do not fit its type and dims (named); TK_E_NOMEM; TK_E_IO.
 * Nothing is left at path on failure. */
int tk_gguf_writer_commit(tk_gguf_writer_t *w, const char *path, int force, struct tk_diag *d);

/* Quantizes n values (a whole number of blocks) of src into dst as ggml
 * type F32, F16, BF16, Q8_0 or Q4_0, byte for byte as the gguf Python
 * package's quants.quantize (F16: round to nearest even; BF16: round to
 * nearest even, NaN kept quiet; Q8_0: scale amax/127, values rounded half
 * away from zero; Q4_0: scale max/-8 of the value of largest magnitude,
 * codes trunc(x/d + 8.5) clipped to 15, low nibbles first).  Returns 0 or
 * TK_E_UNSUPPORTED (other types, or n not a multiple of the block). */
int tk_ggml_quantize(int type, const float *src, void *dst, uint64_t n);

#endif

/* quant.h - bitsandbytes-compatible 4-bit blockwise quantization (NF4, FP4).
 *
 * Reproduces bitsandbytes' quantize_4bit / dequantize_4bit on the CPU bit
 * for bit: the input is cut into blocks of `blocksize` values (the last
 * block may be short); each block stores its absmax as fp32; each value is
 * scaled into [-1, 1] and mapped to the 4-bit code of the NF4 or FP4 table
 * whose bucket holds it (lib/base/quant-common.h); two codes share a byte, the
 * first element in the high nibble.  Double quantization (bitsandbytes'
 * compress_statistics) is in tk_q4_nest.
 */
#ifndef TK_QUANT_H
#define TK_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/options.h"
#include "base/tk.h"

enum tk_q4_type {
	TK_Q4_NF4 = 0,
	TK_Q4_FP4 = 1,
};

/* "nf4" and "fp4" with their type, for a CHOICE option. */
extern const struct tk_opt_choice tk_q4_types[];

/* Parses "nf4" or "fp4" into *type.  Returns 0, or TK_E_INVAL for any other
 * string (d->msg names it). */
int tk_q4_type_parse(const char *name, enum tk_q4_type *type, struct tk_diag *d);

/* Returns "nf4" or "fp4" (static). */
const char *tk_q4_type_name(enum tk_q4_type type);

/* The 16 dequantization values of type (static, index = code). */
const float *tk_q4_code(enum tk_q4_type type);

/* Returns 1 when blocksize is one bitsandbytes accepts for 4-bit
 * quantization (a power of two from 32 to 4096), else 0. */
int tk_q4_blocksize_ok(long long blocksize);

/* Number of absmax values for n inputs: ceil(n / blocksize). */
size_t tk_q4_nblocks(size_t n, size_t blocksize);

/* Number of packed bytes for n inputs: ceil(n / 2). */
size_t tk_q4_packed_size(size_t n);

/* Quantizes x[0..n) into packed[tk_q4_packed_size(n)] and
 * absmax[tk_q4_nblocks(n, blocksize)], exactly as bitsandbytes'
 * quantize_4bit does for an fp32 tensor on the CPU (fp16/bf16 weights:
 * convert to fp32 first, which is exact and what bitsandbytes does).  Full
 * blocks multiply by the fp32 reciprocal of max(absmax, 1e-38); a short last
 * block divides by max(absmax, 1e-38) and stores that clamped value.  An
 * odd n pads the last low nibble with the code of 0.0.
 * Returns 0; TK_E_INVAL for a bad blocksize or type, n == 0, or a NaN or
 * infinite input (d->offset is its index).  Outputs are undefined on error. */
int tk_q4_quantize(const float *x, size_t n, enum tk_q4_type type,
		   size_t blocksize, uint8_t *packed, float *absmax,
		   struct tk_diag *d);

/* tk_q4_quantize in parallel (OpenMP) over chunks of whole blocks: the
 * same bytes.  On a non-finite input, d->offset is the first such index. */
int tk_q4_quantize_parallel(const float *x, size_t n, enum tk_q4_type type, size_t blocksize,
			    uint8_t *packed, float *absmax, struct tk_diag *d);

/* Writes out[i] = code[q_i] * absmax[i / blocksize] for i < n, as
 * bitsandbytes' dequantize_4bit (fp32).  Returns 0, or TK_E_INVAL for a bad
 * blocksize or type, or n == 0. */
int tk_q4_dequantize(const uint8_t *packed, const float *absmax, size_t n,
		     enum tk_q4_type type, size_t blocksize, float *out,
		     struct tk_diag *d);

/* Blocks of absmax values per nested absmax in double quantization. */
#define TK_Q4_NESTED_BLOCKSIZE 256

/* torch.mean() of an fp32 vector on the CPU, summed in torch's order
 * (aten cascade_sum with 8-lane vector accumulators, as torch 2.15 ran on
 * an AVX512 CPU here; then one fp32 division by n).  torch splits vectors
 * of 32768 or more values over its threads; `threads` (>= 1) is that
 * thread count (torch.get_num_threads()), unused below 32768.  This is the
 * offset bitsandbytes subtracts before double quantization.  Returns 0 for
 * n == 0. */
float tk_q4_torch_mean(const float *x, size_t n, int threads);

/* Double quantization (bitsandbytes' compress_statistics): quantizes
 * absmax[i] - offset, i < n, with the 8-bit dynamic map in blocks of
 * TK_Q4_NESTED_BLOCKSIZE, as bitsandbytes' CPU quantize_blockwise.  Writes
 * qabsmax[n] and nested_absmax[ceil(n / 256)].  offset is normally
 * tk_q4_torch_mean(absmax, n, ...).  Returns 0, or TK_E_INVAL for n == 0
 * or a non-finite difference (d->offset is its index). */
int tk_q4_nest(const float *absmax, size_t n, float offset, uint8_t *qabsmax,
	       float *nested_absmax, struct tk_diag *d);

/* Undoes tk_q4_nest as bitsandbytes' dequantize_4bit does:
 * absmax[i] = dynamic_code[qabsmax[i]] * nested_absmax[i / 256] + offset
 * (a rounded product, then a rounded sum). */
void tk_q4_unnest(const uint8_t *qabsmax, const float *nested_absmax, size_t n,
		  float offset, float *absmax);

/* A frozen weight matrix [rows, cols] (nn.Linear's [out, in]; a GPT-2
 * Conv1D weight after transformers' transpose) held quantized in memory,
 * as bitsandbytes holds it: the model dequantizes a few rows at a time
 * inside its matmuls and never holds the whole matrix in fp32.
 *   4-bit (NF4, FP4): data = the packed codes of the row-major matrix
 *     (tk_q4_packed_size(rows*cols) bytes), blocks of `blocksize` elements
 *     counted over the flattened matrix; absmax per block, or with double
 *     quantization (nested) qabsmax per block + nested_absmax per 256 blocks
 *     + offset (absmax = tk_q4_unnest).
 *   int8 (LLM.int8 storage): data = rows*cols int8 codes, scb[rows] the
 *     row absmax; w = code * (scb[row] * (float)(1.0 / 127)), in fp32 as
 *     bitsandbytes' CPU training matmul (MatMul8bitFp) computes it.
 *   half (BF16, F16: a checkpoint's own 16-bit floats, kept for
 *     inference): data = rows*cols uint16 values, row-major; w is each
 *     value widened to fp32, which is exact, so the model computes what it
 *     would with the weight loaded as fp32, from half the bytes.
 * Every pointer is owned by the struct (tk_qweight_free): malloc'd, or,
 * when `release` is set, memory of `owner` that release(owner, p) frees
 * (compute/qweight-dev.h moves a weight into a backend's memory so). */
enum tk_qkind { TK_QK_NF4 = 0, TK_QK_FP4, TK_QK_INT8, TK_QK_BF16, TK_QK_F16 };

/* 1 for the 16-bit float kinds. */
static inline int tk_qkind_half(enum tk_qkind k)
{
	return k == TK_QK_BF16 || k == TK_QK_F16;
}

struct tk_qweight {
	enum tk_qkind kind;
	int64_t rows, cols;
	size_t blocksize;         /* 4-bit */
	uint8_t *data;
	float *absmax;            /* 4-bit, not nested; NULL otherwise */
	int nested;               /* 4-bit double quantization */
	uint8_t *qabsmax;         /* nested: one code per block */
	float *nested_absmax;     /* nested: ceil(nblocks / 256) */
	float offset;             /* nested */
	float *scb;               /* int8: rows */
	/* whose memory the buffers are; NULL release: malloc'd (free) */
	void (*release)(void *owner, void *p);
	void *owner;
};

/* The absmax of 4-bit block b of q: stored, or with double quantization
 * its 8-bit code through the dynamic map times the absmax of its group of
 * TK_Q4_NESTED_BLOCKSIZE blocks, plus the offset (a rounded product, then
 * a rounded sum, as bitsandbytes computes it).  q's buffers in host or
 * managed memory. */
float tk_qweight_absmax(const struct tk_qweight *q, size_t b);

/* For inference: a double-quantized 4-bit weight's 8-bit absmax codes and
 * their groups' absmax replaced by the fp32 values they decode to
 * (tk_qweight_absmax's, so every dequantized weight and product keeps its
 * bits), which the decode loops then load instead of decoding per block,
 * for 3 more bytes per block.  Needs q's buffers malloc'd (release NULL:
 * the CPU backend's).  Returns 0 (also when q has no double
 * quantization), TK_E_UNSUPPORTED (other memory) or TK_E_NOMEM (q
 * unchanged). */
int tk_qweight_flatten_absmax(struct tk_qweight *q);

/* Dequantizes rows row0 .. row0+n-1 into out [n, cols] (fp32), exactly as
 * bitsandbytes' dequantize_4bit to fp32 (then slicing; a bf16/fp16
 * quant_state dtype would round that further) or the int8 formula above
 * would.  Uses OpenMP threads over blocks (rows for int8) when the range
 * is large enough.  Returns 0, or TK_E_INVAL for rows outside the
 * matrix. */
int tk_qweight_rows(const struct tk_qweight *q, int64_t row0, int64_t n, float *out,
		    struct tk_diag *d);

/* Quantizes x [rows, cols] into a new 4-bit weight *q (NF4 or FP4, with
 * double quantization when nested, the offset from tk_q4_torch_mean with
 * `threads`), as bitsandbytes' quantize_4bit would.  Returns 0, TK_E_INVAL
 * (bad kind or block size, non-finite input) or TK_E_NOMEM; *q is left
 * zeroed on failure. */
int tk_qweight_quantize4(struct tk_qweight *q, const float *x, int64_t rows, int64_t cols,
			 enum tk_qkind kind, size_t blocksize, int nested, int threads,
			 struct tk_diag *d);

/* A half weight (kind TK_QK_BF16 or TK_QK_F16) [rows, cols] holding a
 * copy of src (rows*cols values of that kind, row-major, at any address;
 * transposed: src is [cols, rows], as GPT-2's Conv1D stores its weight).  Returns 0,
 * TK_E_INVAL (another kind, an empty shape) or TK_E_NOMEM; *q is left
 * zeroed on failure. */
int tk_qweight_half(struct tk_qweight *q, enum tk_qkind kind, const void *src, int64_t rows,
		    int64_t cols, int transposed, struct tk_diag *d);

/* Bytes the weight holds in memory (data + statistics). */
size_t tk_qweight_bytes(const struct tk_qweight *q);

/* The most buffers a tk_qweight owns. */
#define TK_QWEIGHT_NBUF 5

/* Points p[i] at q's buffer fields (data, absmax, qabsmax, nested_absmax,
 * scb; *p[i] NULL: absent) and sets bytes[i] to the size the buffer has
 * when present, from q's kind, shape and block size. */
void tk_qweight_bufs(struct tk_qweight *q, void **p[TK_QWEIGHT_NBUF],
		     size_t bytes[TK_QWEIGHT_NBUF]);

/* Frees what q owns (with q->release when set, else free) and zeroes it
 * (q may be zeroed already). */
void tk_qweight_free(struct tk_qweight *q);

#endif

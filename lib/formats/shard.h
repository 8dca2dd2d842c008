/* shard.h - token shards (.tks): the files and streams between tk tools.
 *
 * A shard holds records of token ids: documents (tk-tokenize) or training
 * blocks (tk-pack).  Each record may carry a loss mask (which tokens count in
 * the loss), a number of trailing padding tokens, and the offsets at which
 * packed documents start inside it.  The format is specified in
 * man/tk-shard.5: magic and version, a JSON header with the tokenizer's
 * fingerprint and vocab size, zstd-compressed checksummed chunks, and a
 * trailer with totals and a chunk index.  It can be written to and read
 * from a pipe; readers of a regular file can also jump to the trailer.
 */
#ifndef TK_SHARD_H
#define TK_SHARD_H

#include <stdint.h>
#include <stdio.h>

#include "base/tk.h"

#define TK_SHARD_VERSION 1

enum tk_shard_kind {
	TK_SHARD_DOCUMENTS = 0, /* one record per document */
	TK_SHARD_BLOCKS = 1,    /* fixed-length training blocks */
};

/* What the JSON header carries.  Unknown ids are -1. */
struct tk_shard_info {
	int version;
	enum tk_shard_kind kind;
	char fingerprint[17];   /* tokenizer fingerprint, 16 hex digits */
	uint32_t vocab_size;    /* ids are < vocab_size */
	int token_bytes;        /* 2 if vocab_size <= 65536, else 4 (derived) */
	int64_t bos_id, eos_id, pad_id;
	uint32_t seq_len;       /* blocks: tokens per block; documents: 0 */
	char split[16];         /* "", "train" or "eval" */
	int ended;              /* documents: each already ends as its producer
				 * meant (tk-tokenize's EOS policy applied), so
				 * a packer appends no EOS; header key "ended" */
};

/* One record.  Pointers stay owned by whoever filled the struct (for a
 * reader: valid until the next tk_shard_read or free). */
struct tk_record {
	const uint32_t *ids;
	uint64_t n;            /* number of tokens */
	const uint8_t *mask;   /* NULL: every token counts; else n bytes, 1 = in loss */
	uint32_t n_pad;        /* trailing padding tokens (also mask 0) */
	const uint32_t *seg;   /* start offsets of packed documents, ascending, */
	uint32_t n_seg;        /*   seg[0] == 0; NULL/0: one document */
	int ended;             /* a reader's copy of its shard's info.ended;
				  ignored by the writer */
};

/* Totals from the trailer. */
struct tk_shard_totals {
	uint64_t records;
	uint64_t tokens;
	uint64_t masked;       /* tokens with mask 0 (padding included) */
	uint64_t padding;
	uint64_t chunks;
};

/* Fills info with defaults: version 1, ids -1, token_bytes from vocab_size. */
void tk_shard_info_init(struct tk_shard_info *info, enum tk_shard_kind kind,
			const char *fingerprint, uint32_t vocab_size);

typedef struct tk_shard_writer tk_shard_writer_t;
typedef struct tk_shard_reader tk_shard_reader_t;

/* Starts a shard on fp (not closed by the writer); name is used in
 * messages.  Writes the magic and header at once. */
int tk_shard_writer_open(tk_shard_writer_t **w, FILE *fp, const char *name,
			 const struct tk_shard_info *info, struct tk_diag *d);

/* Appends a record.  Ids >= vocab_size are TK_E_INVAL. */
int tk_shard_write(tk_shard_writer_t *w, const struct tk_record *rec, struct tk_diag *d);

/* Flushes the last chunk and writes the trailer; frees w whatever happens. */
int tk_shard_writer_close(tk_shard_writer_t *w, struct tk_diag *d);

/* Frees a writer without finishing the shard (for failure paths). */
void tk_shard_writer_free(tk_shard_writer_t *w);

/* Sets the uncompressed size (bytes, clamped to [64, 64 MiB]) at which the
 * writer starts a new chunk; the default is 2 MiB.  For tests and tuning. */
void tk_shard_writer_set_chunk_size(tk_shard_writer_t *w, size_t bytes);

/* Reads the magic and header from fp (a file or pipe; not closed by the
 * reader).  name is used in messages ("<stdin>" for a pipe).  Errors name
 * the byte offset at which the data went wrong. */
int tk_shard_reader_open(tk_shard_reader_t **r, FILE *fp, const char *name,
			 struct tk_diag *d);

const struct tk_shard_info *tk_shard_reader_info(const tk_shard_reader_t *r);

/* Reads the next record into rec.  Returns 1 when a record was read, 0 at
 * the verified end of the shard, or a negative error (TK_E_CHECKSUM for a
 * damaged chunk, TK_E_FORMAT for a shard cut short or malformed). */
int tk_shard_read(tk_shard_reader_t *r, struct tk_record *rec, struct tk_diag *d);

/* Totals: after tk_shard_read returned 0, those of the trailer. */
const struct tk_shard_totals *tk_shard_reader_totals(const tk_shard_reader_t *r);

void tk_shard_reader_free(tk_shard_reader_t *r);

/* Stream offset of the next byte the reader will read (the shard's first
 * byte is at ftello() when the reader was opened, else 0 for a pipe). */
long long tk_shard_reader_offset(const tk_shard_reader_t *r);

/* Several shards may follow one another in a stream (`cat a.tks b.tks`).
 * After tk_shard_read returned 0 the reader has consumed exactly its shard,
 * so the caller frees it and, if tk_shard_more(fp) returns 1, opens another
 * reader on the same fp.  Returns 1 when at least one more byte follows, 0
 * at the end of the stream, TK_E_IO if reading failed. */
int tk_shard_more(FILE *fp, const char *name, struct tk_diag *d);

/* Reads only the header and trailer of a regular file (seeking to the
 * trailer), without decompressing the chunks. */
int tk_shard_stat(const char *path, struct tk_shard_info *info,
		  struct tk_shard_totals *totals, struct tk_diag *d);

/* Checks that a shard was made with the tokenizer whose fingerprint and
 * vocab size are given; TK_E_MISMATCH with a message naming both
 * otherwise. */
int tk_shard_check_tokenizer(const struct tk_shard_info *info, const char *name,
			     const char *fingerprint, uint32_t vocab_size,
			     struct tk_diag *d);

#endif

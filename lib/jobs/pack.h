/* pack.h - document shards to training blocks (the work behind tk-pack).
 *
 * Documents are read from token shards and turned into fixed-length blocks,
 * either packed as Hugging Face's run_clm group_texts does (documents
 * concatenated, each ended by EOS, cut every seq_len tokens, the remainder
 * dropped or padded) or one document per block (truncated or right-padded).
 * Documents can first be split into train and eval sets, optionally after a
 * seeded shuffle.  See man/tk-pack.1 for the user-facing description.
 */
#ifndef TK_PACK_H
#define TK_PACK_H

#include <stdint.h>
#include <stdio.h>

#include "formats/shard.h"
#include "base/tk.h"

struct tk_pack_opts {
	uint32_t seq_len;        /* tokens per block, 1..1<<20 */
	int pad;                 /* one document per block, padded */
	int keep_remainder;      /* pack mode: pad the last partial block */
	double eval_fraction;    /* 0 <= f < 1 */
	int64_t eval_docs;       /* > 0: this many eval documents (overrides fraction) */
	int shuffle;             /* shuffle documents before splitting and packing */
	uint64_t seed;
	uint64_t shard_blocks;   /* blocks per output shard file (directory output) */
	const char *output;      /* directory, or NULL for one train shard on out */
	int force;               /* replace an existing output directory */
	const char *tok_fingerprint; /* when set, inputs must match this tokenizer */
	uint32_t tok_vocab;
	/* (optional) called now and then with the number of documents read */
	void (*progress)(void *ctx, uint64_t docs);
	void *progress_ctx;
};

/* Sets the defaults: seq_len 1024, seed 42, 8192 blocks per shard. */
void tk_pack_opts_init(struct tk_pack_opts *o);

enum { TK_PACK_TRAIN = 0, TK_PACK_EVAL = 1 };

/* What a run did, per split where indexed by TK_PACK_TRAIN/EVAL. */
struct tk_pack_stats {
	uint64_t docs_in;        /* documents read */
	uint64_t docs_empty;     /* empty documents skipped */
	uint64_t tokens_in;      /* tokens in the documents read */
	uint64_t docs[2];        /* documents per split */
	uint64_t eos_added[2];   /* pack mode: EOS appended to documents */
	uint64_t blocks[2];
	uint64_t padding[2];     /* padding tokens in the blocks */
	uint64_t truncated[2];   /* pad mode: tokens cut off long documents */
	uint64_t truncated_docs[2];
	uint64_t masked_docs[2]; /* pad mode: documents with no token in the loss
				    after truncation, dropped as TRL drops them */
	uint64_t dropped[2];     /* pack mode: tokens of the dropped remainder */
	uint64_t shards[2];      /* shard files written */
	int held;                /* documents were held in memory */
};

/* Reads the document shards named in inputs (n of them; "-" is stdin,
 * n == 0 means stdin) and writes blocks: into o->output as train-NNNNN.tks
 * and eval-NNNNN.tks (built under a temporary name and renamed into place,
 * so nothing is left behind on failure), or, without o->output, one train
 * shard to out.  Fills st.  Errors: TK_E_FORMAT/TK_E_CHECKSUM for damaged
 * input (naming file and offset), TK_E_MISMATCH for inputs from different
 * tokenizers or a blocks shard, TK_E_INVAL for options that cannot work
 * (an eval split without a directory, an input inside the output directory
 * that o->force would replace), TK_E_UNSUPPORTED (no pad or EOS id to pad
 * with), TK_E_FORMAT (too little data for one block), TK_E_EXISTS,
 * TK_E_IO. */
int tk_pack_run(const struct tk_pack_opts *o, const char *const *inputs, int n, FILE *out,
		struct tk_pack_stats *st, struct tk_diag *d);

#endif

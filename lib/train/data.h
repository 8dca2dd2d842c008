/* data.h - training and evaluation blocks for tk-train.
 *
 * Loads the blocks that tk-pack wrote (DIR/train-*.tks or DIR/eval-*.tks,
 * in name order, or a stream of block shards) into memory, checks that
 * they belong together (one tokenizer fingerprint, one seq_len, blocks not
 * documents) and hands out batches.  Labels follow Hugging Face: labels =
 * input ids, -100 where the loss mask is 0 (prompt tokens, padding); the
 * model shifts them.  Each epoch visits the blocks in a seeded random
 * order (a permutation of its own, not torch's RandomSampler); the
 * position (epoch, batch) is all a resumed run needs to continue.
 */
#ifndef TK_DATA_H
#define TK_DATA_H

#include <stdint.h>
#include <stdio.h>

#include "formats/config.h"
#include "formats/shard.h"
#include "base/tk.h"

struct tk_data {
	struct tk_shard_info info;  /* of the first shard (fingerprint, seq_len...) */
	uint64_t n_blocks;
	uint32_t seq_len;
	uint32_t *ids;              /* n_blocks * seq_len */
	uint8_t *mask;              /* n_blocks * seq_len (1: in the loss); NULL: all */
	uint64_t n_shards;
	uint64_t tokens_in_loss;
};

/* Loads split ("train" or "eval") from path: a directory written by tk-pack
 * (its SPLIT-*.tks files; a directory without any is TK_E_FORMAT naming the
 * directory and the split), a single .tks file, or "-" (block shards on
 * stdin, copied to spill_path as they are read when spill_path is not NULL,
 * so that a resumed run finds the same data).  An eval split that does not
 * exist leaves d->n_blocks == 0 when optional is set. */
int tk_data_load(struct tk_data *dt, const char *path, const char *split, int optional,
		 const char *spill_path, struct tk_diag *d);
void tk_data_free(struct tk_data *dt);

/* The split that an eval path (tk-train --eval-data) is read as: for a
 * directory, "eval" when it has eval-*.tks, else "train" (a directory that
 * tk-pack wrote without an eval split: its blocks are evaluated; the
 * caller says so); "train" for a file or "-", whose blocks are read
 * whatever their name. */
const char *tk_data_eval_split(const char *path);

/* For a new model from config.json at path (tk-train --init, a file or its
 * directory) whose blocks come from tokenizer tok: when the config gives no
 * vocab_size, c->vocab_size becomes the tokenizer's length (largest id + 1,
 * added tokens included), as AutoConfig(..., vocab_size=len(tokenizer))
 * sets it in a notebook, and *taken is 1; else *taken is 0 and c is left
 * alone.  Returns 0, or the error of reading the config or the tokenizer. */
int tk_data_init_vocab(struct tk_model_config *c, const char *path, const char *tok, int *taken,
		       struct tk_diag *d);

/* Checks the blocks against the model they will train: the tokenizer
 * fingerprint (when fingerprint is not NULL) and every id below vocab_size.
 * TK_E_MISMATCH with a message naming both otherwise. */
int tk_data_check(const struct tk_data *dt, const char *name, const char *fingerprint,
		  uint32_t vocab_size, struct tk_diag *d);

/* The order of blocks in an epoch: order[i] for i < n_blocks, a seeded
 * permutation (Fisher-Yates over a splitmix64 stream seeded by seed and
 * epoch), or the identity when shuffle is 0. */
int tk_data_order(const struct tk_data *dt, uint64_t seed, uint64_t epoch, int shuffle,
		  uint64_t **order);

/* Fills ids[b*T..] and labels[b*T..] for the n blocks order[first..first+n)
 * (T = seq_len); labels are the ids, or -100 where the mask is 0. */
void tk_data_batch(const struct tk_data *dt, const uint64_t *order, uint64_t first, int n,
		   uint32_t *ids, int32_t *labels);

#endif

/* pack.c - see pack.h; the choices are described in man/tk-pack.1.
 *
 * Without --shuffle the documents stream through: each one is assigned to
 * train or eval by a seeded hash of its index (the eval set is the n_eval
 * indices with the smallest hashes, which needs the document count up front:
 * from the shard trailers of regular files, else the documents are held),
 * and appended to that split's block builder.  With --shuffle every
 * document is held, permuted with a seeded generator, and the first n_eval
 * of the permutation form the eval set, as datasets' train_test_split does.
 */
#include "jobs/pack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/afile.h"
#include "base/path.h"
#include "base/rng.h"

void tk_pack_opts_init(struct tk_pack_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->seq_len = 1024;
	o->seed = 42;
	o->shard_blocks = 8192;
}

/* The split hash of document i: a bijection of i for a given seed, so no
 * two documents tie. */
static uint64_t doc_hash(uint64_t seed, uint64_t i)
{
	return tk_splitmix64_hash(i ^ tk_splitmix64_hash(seed));
}

/* ---------------------------- input documents ---------------------------- */

struct input {
	const struct tk_pack_opts *o;
	const char *const *paths;
	int n, idx;
	FILE *fp;
	const char *name;
	tk_shard_reader_t *r;
	struct tk_shard_info first;
	char first_name[1024];
	int have_first;
};

static const char *in_name(const char *p)
{
	return strcmp(p, "-") ? p : "<stdin>";
}

static void in_close(struct input *in)
{
	tk_shard_reader_free(in->r);
	in->r = NULL;
	if (in->fp && in->fp != stdin)
		fclose(in->fp);
	in->fp = NULL;
}

/* Checks a newly opened shard against the options and the first input. */
static int in_check(struct input *in, struct tk_diag *d)
{
	const struct tk_shard_info *info = tk_shard_reader_info(in->r);
	if (info->kind != TK_SHARD_DOCUMENTS)
		return tk_diag_set(d, TK_E_MISMATCH, in->name, -1,
				   "holds training blocks, not documents (already packed by "
				   "tk-pack?)");
	if (in->o->tok_fingerprint) {
		int rc = tk_shard_check_tokenizer(info, in->name, in->o->tok_fingerprint,
						  in->o->tok_vocab, d);
		if (rc)
			return rc;
	}
	if (!in->have_first) {
		in->first = *info;
		snprintf(in->first_name, sizeof(in->first_name), "%s", in->name);
		in->have_first = 1;
	} else if (strcmp(info->fingerprint, in->first.fingerprint) ||
		   info->vocab_size != in->first.vocab_size) {
		return tk_diag_set(d, TK_E_MISMATCH, in->name, -1,
				   "tokenizer fingerprint %s (vocab %u) differs from %s's %s "
				   "(vocab %u); all inputs must come from one tokenizer",
				   info->fingerprint, info->vocab_size, in->first_name,
				   in->first.fingerprint, in->first.vocab_size);
	}
	return 0;
}

/* Next document of all inputs: 1 with rec filled, 0 at the end, or an error. */
static int in_next(struct input *in, struct tk_record *rec, struct tk_diag *d)
{
	for (;;) {
		int rc;
		if (!in->fp) {
			if (in->idx >= (in->n ? in->n : 1))
				return 0;
			const char *p = in->n ? in->paths[in->idx] : "-";
			in->idx++;
			in->name = in_name(p);
			in->fp = strcmp(p, "-") ? fopen(p, "rb") : stdin;
			if (!in->fp)
				return tk_diag_sys(d, p, "cannot open");
			if ((rc = tk_shard_reader_open(&in->r, in->fp, in->name, d)) ||
			    (rc = in_check(in, d)))
				return rc;
		}
		if (!in->r) {
			rc = tk_shard_more(in->fp, in->name, d);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				in_close(in);
				continue;
			}
			if ((rc = tk_shard_reader_open(&in->r, in->fp, in->name, d)) ||
			    (rc = in_check(in, d)))
				return rc;
		}
		rc = tk_shard_read(in->r, rec, d);
		if (rc)
			return rc;
		tk_shard_reader_free(in->r); /* end of one shard; more may follow */
		in->r = NULL;
	}
}

/* Total documents when every input is a regular file holding one shard;
 * -1 when that cannot be known without reading everything. */
static long long count_docs(const struct tk_pack_opts *o, const char *const *paths, int n)
{
	long long total = 0;
	if (n == 0)
		return -1;
	for (int i = 0; i < n; i++) {
		struct stat st;
		struct tk_shard_totals t;
		if (!strcmp(paths[i], "-") || stat(paths[i], &st) || !S_ISREG(st.st_mode) ||
		    tk_shard_stat(paths[i], NULL, &t, NULL))
			return -1;
		total += (long long)t.records;
	}
	return total;
}

/* ------------------------------ block output ------------------------------ */

struct packer {
	const struct tk_pack_opts *o;
	struct tk_pack_stats *st;
	int split;
	struct tk_shard_info info;
	struct tk_afile_dir *dir;   /* directory output, or NULL */
	FILE *out;             /* stdout output */
	FILE *fp;
	char *path;
	char name[1100];
	tk_shard_writer_t *w;
	uint64_t in_shard;
	uint32_t *ids, *seg;
	uint8_t *mask;
	uint32_t fill, nseg;
	int any_mask;
	int64_t pad_tok;
};

static int packer_close_shard(struct packer *p, struct tk_diag *d)
{
	int rc = 0;
	if (p->w) {
		rc = tk_shard_writer_close(p->w, d);
		p->w = NULL;
	}
	if (p->fp && p->fp != p->out) {
		if (fclose(p->fp) && !rc)
			rc = tk_diag_sys(d, p->name, "write failed");
	}
	p->fp = NULL;
	free(p->path);
	p->path = NULL;
	return rc;
}

static int packer_open_shard(struct packer *p, struct tk_diag *d)
{
	const char *split = p->split == TK_PACK_EVAL ? "eval" : "train";
	if (p->dir) {
		char file[64];
		snprintf(file, sizeof(file), "%s-%05llu.tks", split,
			 (unsigned long long)p->st->shards[p->split]);
		/* the name in messages: at worst cut short, as snprintf would */
		(void)tk_path_join(p->name, sizeof(p->name), p->dir->path, file);
		p->path = tk_afile_dir_file(p->dir, file);
		if (!p->path)
			return tk_diag_set(d, TK_E_NOMEM, p->name, -1, "out of memory");
		p->fp = fopen(p->path, "wb");
		if (!p->fp)
			return tk_diag_sys(d, p->name, "cannot create");
	} else {
		snprintf(p->name, sizeof(p->name), "<stdout>");
		p->fp = p->out;
	}
	p->in_shard = 0;
	p->st->shards[p->split]++;
	return tk_shard_writer_open(&p->w, p->fp, p->name, &p->info, d);
}

static int emit(struct packer *p, uint32_t n_pad, struct tk_diag *d)
{
	int rc;
	if (p->w && p->dir && p->in_shard >= p->o->shard_blocks &&
	    (rc = packer_close_shard(p, d)))
		return rc;
	if (!p->w && (rc = packer_open_shard(p, d)))
		return rc;
	struct tk_record rec = {
		.ids = p->ids,
		.n = p->o->seq_len,
		.mask = p->any_mask ? p->mask : NULL,
		.n_pad = n_pad,
		.seg = p->nseg > 1 ? p->seg : NULL,
		.n_seg = p->nseg > 1 ? p->nseg : 0,
	};
	if ((rc = tk_shard_write(p->w, &rec, d)))
		return rc;
	p->in_shard++;
	p->st->blocks[p->split]++;
	p->st->padding[p->split] += n_pad;
	p->fill = p->nseg = 0;
	p->any_mask = 0;
	return 0;
}

/* Appends n tokens to the block being built, emitting each block that fills. */
static int append(struct packer *p, const uint32_t *ids, const uint8_t *mask, uint64_t n,
		  int doc_start, struct tk_diag *d)
{
	uint32_t L = p->o->seq_len;
	for (uint64_t k = 0; k < n;) {
		if (p->fill == 0) {
			p->seg[0] = 0;
			p->nseg = 1;
		} else if (doc_start && k == 0) {
			p->seg[p->nseg++] = p->fill;
		}
		uint64_t take = n - k < L - p->fill ? n - k : L - p->fill;
		memcpy(p->ids + p->fill, ids + k, 4 * take);
		if (mask) {
			memcpy(p->mask + p->fill, mask + k, take);
			p->any_mask |= memchr(mask + k, 0, take) != NULL;
		} else {
			memset(p->mask + p->fill, 1, take);
		}
		p->fill += (uint32_t)take;
		k += take;
		if (p->fill == L) {
			int rc = emit(p, 0, d);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Pads the partial block to seq_len and emits it. */
static int pad_out(struct packer *p, struct tk_diag *d)
{
	uint32_t n_pad = p->o->seq_len - p->fill;
	for (uint32_t k = p->fill; k < p->o->seq_len; k++) {
		p->ids[k] = (uint32_t)p->pad_tok;
		p->mask[k] = 0;
	}
	p->fill = p->o->seq_len;
	return emit(p, n_pad, d);
}

static int pack_doc(struct packer *p, const struct tk_record *doc, struct tk_diag *d)
{
	struct tk_pack_stats *st = p->st;
	int s = p->split;
	st->docs[s]++;
	if (p->o->pad) {
		uint64_t m = doc->n < p->o->seq_len ? doc->n : p->o->seq_len;
		if (doc->n > m) {
			st->truncated[s] += doc->n - m;
			st->truncated_docs[s]++;
		}
		/* no token left in the loss (a prompt that fills the block, an
		 * assistant turn cut off): SFTTrainer without packing drops
		 * such an example after truncating it, so does tk */
		if (doc->mask && !memchr(doc->mask, 1, m)) {
			st->masked_docs[s]++;
			return 0;
		}
		int rc = append(p, doc->ids, doc->mask, m, 1, d);
		if (rc || p->fill == 0)
			return rc;
		return pad_out(p, d);
	}
	int rc = append(p, doc->ids, doc->mask, doc->n, 1, d);
	int64_t eos = p->info.eos_id;
	/* a document tk-tokenize already ended (EOS, or a conversation's own
	 * end as its template writes it) gets no EOS, as TRL adds none */
	if (!rc && eos >= 0 && !doc->ended && doc->ids[doc->n - 1] != (uint32_t)eos) {
		uint32_t e = (uint32_t)eos;
		st->eos_added[s]++;
		rc = append(p, &e, NULL, 1, 0, d);
	}
	return rc;
}

static int packer_finish(struct packer *p, struct tk_diag *d)
{
	int rc = 0;
	if (p->fill) {
		if (p->o->keep_remainder)
			rc = pad_out(p, d);
		else
			p->st->dropped[p->split] += p->fill;
		p->fill = 0;
	}
	if (!rc && p->st->blocks[p->split] == 0)
		rc = tk_diag_set(d, TK_E_FORMAT, NULL, -1,
				 "the %s split holds %llu documents, not enough for one block of "
				 "%u tokens (use --keep-remainder or a smaller --seq-len)",
				 p->split == TK_PACK_EVAL ? "eval" : "train",
				 (unsigned long long)p->st->docs[p->split], p->o->seq_len);
	if (!rc)
		rc = packer_close_shard(p, d);
	return rc;
}

static void packer_free(struct packer *p)
{
	tk_shard_writer_free(p->w);
	if (p->fp && p->fp != p->out)
		fclose(p->fp);
	free(p->path);
	free(p->ids);
	free(p->seg);
	free(p->mask);
}

static int packer_init(struct packer *p, const struct tk_pack_opts *o, struct tk_pack_stats *st,
		       int split, const struct tk_shard_info *in, struct tk_afile_dir *dir, FILE *out,
		       struct tk_diag *d)
{
	memset(p, 0, sizeof(*p));
	p->o = o;
	p->st = st;
	p->split = split;
	p->dir = dir;
	p->out = out;
	tk_shard_info_init(&p->info, TK_SHARD_BLOCKS, in->fingerprint, in->vocab_size);
	p->info.bos_id = in->bos_id;
	p->info.eos_id = in->eos_id;
	p->info.pad_id = in->pad_id;
	p->info.seq_len = o->seq_len;
	snprintf(p->info.split, sizeof(p->info.split), "%s", split == TK_PACK_EVAL ? "eval" : "train");
	p->pad_tok = in->pad_id >= 0 ? in->pad_id : in->eos_id;
	p->ids = tk_mallocn(o->seq_len, 4);
	p->seg = tk_mallocn(o->seq_len, 4);
	p->mask = tk_mallocn(o->seq_len, 1);
	if (!p->ids || !p->seg || !p->mask)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	return 0;
}

/* ---------------------------- held documents ---------------------------- */

struct held {
	uint32_t *ids;
	uint8_t *mask;
	size_t nids, cap_ids, nmask, cap_mask;
	struct hdoc {
		uint64_t start, n, mask; /* mask: offset in mask[], UINT64_MAX if none */
		int ended;
	} *docs;
	size_t ndocs, cap_docs;
};

static int hold(struct held *h, const struct tk_record *r)
{
	if (tk_grow(&h->docs, &h->cap_docs, h->ndocs + 1, sizeof(*h->docs)) ||
	    tk_grow(&h->ids, &h->cap_ids, h->nids + r->n, 4) ||
	    (r->mask && tk_grow(&h->mask, &h->cap_mask, h->nmask + r->n, 1)))
		return TK_E_NOMEM;
	struct hdoc *doc = &h->docs[h->ndocs++];
	doc->start = h->nids;
	doc->n = r->n;
	doc->mask = UINT64_MAX;
	doc->ended = r->ended;
	memcpy(h->ids + h->nids, r->ids, 4 * r->n);
	h->nids += r->n;
	if (r->mask) {
		doc->mask = h->nmask;
		memcpy(h->mask + h->nmask, r->mask, r->n);
		h->nmask += r->n;
	}
	return 0;
}

static void held_get(const struct held *h, size_t i, struct tk_record *r)
{
	const struct hdoc *doc = &h->docs[i];
	memset(r, 0, sizeof(*r));
	r->ids = h->ids + doc->start;
	r->n = doc->n;
	r->mask = doc->mask == UINT64_MAX ? NULL : h->mask + doc->mask;
	r->ended = doc->ended;
}

/* ------------------------------- splitting ------------------------------- */

/* The largest of the n_eval smallest split hashes among T documents (a
 * max-heap of n_eval entries): document i is eval iff doc_hash(i) <= it. */
static int eval_threshold(uint64_t seed, uint64_t T, uint64_t n_eval, uint64_t *thr)
{
	if (n_eval == 0) {
		*thr = 0;
		return 1; /* no document is eval */
	}
	uint64_t *hp = tk_mallocn(n_eval, 8);
	if (!hp)
		return TK_E_NOMEM;
	uint64_t n = 0;
	for (uint64_t i = 0; i < T; i++) {
		uint64_t v = doc_hash(seed, i);
		if (n < n_eval) { /* sift up */
			uint64_t k = n++;
			while (k && hp[(k - 1) / 2] < v) {
				hp[k] = hp[(k - 1) / 2];
				k = (k - 1) / 2;
			}
			hp[k] = v;
		} else if (v < hp[0]) { /* replace the root, sift down */
			uint64_t k = 0;
			for (;;) {
				uint64_t c = 2 * k + 1;
				if (c >= n)
					break;
				if (c + 1 < n && hp[c + 1] > hp[c])
					c++;
				if (hp[c] <= v)
					break;
				hp[k] = hp[c];
				k = c;
			}
			hp[k] = v;
		}
	}
	*thr = hp[0];
	free(hp);
	return 0;
}

static int n_eval_docs(const struct tk_pack_opts *o, uint64_t T, uint64_t *n_eval,
		       struct tk_diag *d)
{
	if (o->eval_docs > 0)
		*n_eval = (uint64_t)o->eval_docs;
	else /* as datasets' train_test_split: ceil(test_size * n) */
		*n_eval = (uint64_t)ceil(o->eval_fraction * (double)T);
	if (*n_eval && *n_eval >= T)
		return tk_diag_set(d, TK_E_FORMAT, NULL, -1,
				   "an eval split of %llu documents leaves none of the %llu for "
				   "training",
				   (unsigned long long)*n_eval, (unsigned long long)T);
	return 0;
}

/* --------------------------------- run --------------------------------- */

struct run {
	const struct tk_pack_opts *o;
	struct tk_pack_stats *st;
	struct input in;
	struct packer pk[2];
	int pk_ready[2];
	int split;            /* an eval split was asked for */
	struct tk_afile_dir dir;
	FILE *out;
};

static int ensure_packers(struct run *ru, struct tk_diag *d)
{
	if (ru->pk_ready[0])
		return 0;
	const struct tk_shard_info *in = &ru->in.first;
	if ((ru->o->pad || ru->o->keep_remainder) && in->pad_id < 0 && in->eos_id < 0)
		return tk_diag_set(d, TK_E_UNSUPPORTED, ru->in.first_name, -1,
				   "the tokenizer has no pad or EOS token to pad blocks with");
	for (int s = 0; s < 1 + ru->split; s++) {
		int rc = packer_init(&ru->pk[s], ru->o, ru->st, s, in,
				     ru->o->output ? &ru->dir : NULL, ru->out, d);
		ru->pk_ready[s] = 1;
		if (rc)
			return rc;
	}
	return 0;
}

static void note_doc(struct run *ru, const struct tk_record *rec)
{
	ru->st->docs_in++;
	ru->st->tokens_in += rec->n;
	if (ru->o->progress && (ru->st->docs_in & 4095) == 0)
		ru->o->progress(ru->o->progress_ctx, ru->st->docs_in);
}

static int feed(struct run *ru, int split, const struct tk_record *rec, struct tk_diag *d)
{
	if (rec->n == 0) {
		ru->st->docs_empty++;
		return 0;
	}
	return pack_doc(&ru->pk[split], rec, d);
}

/* Streaming: one pass, each document to its split as it arrives. */
static int run_stream(struct run *ru, long long T, struct tk_diag *d)
{
	uint64_t n_eval = 0, thr = 0;
	int none_eval = 1;
	int rc;
	if (ru->split) {
		if ((rc = n_eval_docs(ru->o, (uint64_t)T, &n_eval, d)))
			return rc;
		none_eval = eval_threshold(ru->o->seed, (uint64_t)T, n_eval, &thr);
		if (none_eval < 0)
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	struct tk_record rec;
	uint64_t i = 0;
	while ((rc = in_next(&ru->in, &rec, d)) == 1) {
		if ((rc = ensure_packers(ru, d)))
			return rc;
		note_doc(ru, &rec);
		int s = !none_eval && doc_hash(ru->o->seed, i) <= thr;
		i++;
		if ((rc = feed(ru, s, &rec, d)))
			return rc;
	}
	if (!rc && ru->split && i != (uint64_t)T)
		rc = tk_diag_set(d, TK_E_FORMAT, NULL, -1,
				 "the inputs held %llu documents, their trailers %lld",
				 (unsigned long long)i, T);
	return rc;
}

/* Held: read everything, then split (and shuffle) and pack. */
static int run_held(struct run *ru, struct tk_diag *d)
{
	struct held h = { 0 };
	uint64_t *order = NULL;
	struct tk_record rec;
	int rc;
	ru->st->held = 1;
	while ((rc = in_next(&ru->in, &rec, d)) == 1) {
		note_doc(ru, &rec);
		if (hold(&h, &rec)) {
			rc = tk_diag_set(d, TK_E_NOMEM, NULL, -1,
					 "out of memory holding %llu documents (without --shuffle, "
					 "tk-pack streams)",
					 (unsigned long long)h.ndocs);
			break;
		}
	}
	uint64_t T = h.ndocs, n_eval = 0, thr = 0;
	int none_eval = 1;
	if (!rc && ru->in.have_first)
		rc = ensure_packers(ru, d);
	if (!rc && ru->split && (rc = n_eval_docs(ru->o, T, &n_eval, d)) == 0 && !ru->o->shuffle) {
		none_eval = eval_threshold(ru->o->seed, T, n_eval, &thr);
		if (none_eval < 0)
			rc = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	if (!rc && !(order = tk_mallocn(T, 8)))
		rc = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	if (!rc) {
		for (uint64_t i = 0; i < T; i++)
			order[i] = i;
		if (ru->o->shuffle) { /* Fisher-Yates with a seeded splitmix64 stream */
			uint64_t state = ru->o->seed + TK_SPLITMIX64_GAMMA;
			for (uint64_t i = T; i > 1; i--) {
				uint64_t j = (uint64_t)(((unsigned __int128)tk_splitmix64(&state) * i) >> 64);
				uint64_t t = order[i - 1];
				order[i - 1] = order[j];
				order[j] = t;
			}
		}
	}
	for (uint64_t k = 0; !rc && k < T; k++) {
		uint64_t i = order[k];
		int s;
		if (ru->o->shuffle)
			s = k < n_eval;
		else
			s = !none_eval && doc_hash(ru->o->seed, i) <= thr;
		held_get(&h, i, &rec);
		rc = feed(ru, s, &rec, d);
	}
	free(order);
	free(h.ids);
	free(h.mask);
	free(h.docs);
	return rc;
}

int tk_pack_run(const struct tk_pack_opts *o, const char *const *inputs, int n, FILE *out,
		struct tk_pack_stats *st, struct tk_diag *d)
{
	memset(st, 0, sizeof(*st));
	int split = o->eval_docs > 0 || o->eval_fraction > 0;
	if (o->seq_len == 0 || o->seq_len > (1u << 20))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "--seq-len must be in [1, 1048576]");
	if (o->eval_fraction < 0 || o->eval_fraction >= 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "--eval-fraction must be in [0, 1)");
	if (split && !o->output)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "an eval split needs an output directory (use -o DIR)");
	if (o->output && o->shard_blocks == 0)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "--shard-size must be at least 1");
	struct run ru;
	memset(&ru, 0, sizeof(ru));
	ru.o = o;
	ru.st = st;
	ru.split = split;
	ru.out = out;
	ru.in.o = o;
	ru.in.paths = inputs;
	ru.in.n = n;
	int rc = 0;
	for (int i = 0; o->output && o->force && i < n; i++) {
		/* replacing the directory would delete this input with it */
		if (!strcmp(inputs[i], "-"))
			continue;
		if ((rc = tk_path_check_outside(inputs[i], o->output, d)))
			return rc;
	}
	rc = 0;
	if (o->output)
		rc = tk_afile_dir_open(&ru.dir, o->output, o->force, d);
	if (rc)
		return rc;
	long long T = split && !o->shuffle ? count_docs(o, inputs, n) : -1;
	if (o->shuffle || (split && T < 0))
		rc = run_held(&ru, d);
	else
		rc = run_stream(&ru, T, d);
	if (o->progress)
		o->progress(o->progress_ctx, st->docs_in);
	if (!rc && st->docs_in == 0)
		rc = tk_diag_set(d, TK_E_FORMAT, ru.in.first_name, -1,
				 "no documents in the input (an empty shard)");
	for (int s = 0; !rc && s < 1 + split; s++)
		rc = packer_finish(&ru.pk[s], d);
	in_close(&ru.in);
	for (int s = 0; s < 2; s++)
		if (ru.pk_ready[s])
			packer_free(&ru.pk[s]);
	if (o->output) {
		if (rc)
			tk_afile_dir_abort(&ru.dir);
		else
			rc = tk_afile_dir_commit(&ru.dir, d);
	}
	return rc;
}

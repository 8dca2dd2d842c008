/* tokenize.c - see tokenize.h.
 *
 * The calling thread reads examples into batches and writes finished
 * batches in order; worker threads encode.  Batches live in a ring of
 * 2 * threads + 2 slots: slot seq % RING holds batch seq, and the reader
 * waits for the oldest batch to be written before reusing its slot.
 */
#include "jobs/tokenize.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/shard.h"

#define BATCH_DOCS 512
#define BATCH_BYTES (1u << 20)

struct doc {
	size_t off, len, plen;
	long long line;
	int file;
	size_t id_off, n_ids, n_prompt;
	int chat, n_spans;      /* a conversation; its assistant spans */
	size_t span_off;        /* into batch.spans */
	int masked;             /* mask in batch.mask at id_off (assistant_only) */
};

enum { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

struct batch {
	int state;
	struct tk_buf text;
	struct doc *docs;
	size_t n, cap;
	struct tk_ids ids;
	struct tk_ids prompt;   /* scratch */
	size_t *spans;          /* conversations' spans, pairs */
	size_t n_spans, spans_cap;
	uint8_t *mask;          /* per id of ids, for docs with masked set */
	size_t mask_cap;
	uint64_t mismatch;
	int rc;
	struct tk_diag diag;
};

struct run {
	const tk_tokenizer_t *t;
	const struct tk_tokenize_opts *o;
	unsigned flags;
	int64_t eos;
	/* the pool */
	struct batch *ring;
	int n_ring;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	/* output */
	FILE *out;
	const char *out_name;
	tk_shard_writer_t *w;
	struct tk_buf line;
	uint8_t *mask;
	size_t mask_cap;
	struct tk_tokenize_stats *st;
	int blocks;             /* the shard being read holds blocks */
};

/* The number of leading tokens of the document's ids that encode
 * text[0 .. at) (encoded alone, no special tokens); *bad is set when that
 * encoding is not a prefix of the ids (the common part is returned). */
static int prefix_tokens(tk_encoder_t *e, struct batch *b, const struct doc *dc,
			 const char *text, size_t at, size_t *n, int *bad)
{
	const uint32_t *ids = b->ids.v + dc->id_off;
	size_t k = 0;

	b->prompt.n = 0;
	int rc = at ? tk_encode(e, text, at, 0, &b->prompt) : 0;
	if (rc)
		return rc;
	while (k < b->prompt.n && k < dc->n_ids && b->prompt.v[k] == ids[k])
		k++;
	*bad |= k < b->prompt.n;
	*n = k;
	return 0;
}

/* The assistant-only mask of a conversation: 1 on the tokens of its
 * spans.  TK_E_INVAL (in b->diag) when it has no assistant turn. */
static int chat_mask(tk_encoder_t *e, struct batch *b, struct doc *dc, const char *text)
{
	const size_t *sp = b->spans + dc->span_off;
	size_t need = dc->id_off + dc->n_ids, from, to;
	int bad = 0, rc = 0;

	if (!dc->n_spans)
		return tk_diag_set(&b->diag, TK_E_FORMAT, NULL, -1,
				   "a conversation without an assistant turn has nothing to "
				   "train on with --assistant-only-loss");
	if (need > b->mask_cap) {
		size_t cap = need > 2 * b->mask_cap ? need : 2 * b->mask_cap;
		uint8_t *m = realloc(b->mask, cap);
		if (!m)
			return tk_diag_set(&b->diag, TK_E_NOMEM, NULL, -1, "out of memory");
		b->mask = m;
		b->mask_cap = cap;
	}
	memset(b->mask + dc->id_off, 0, dc->n_ids);
	for (int k = 0; k < dc->n_spans && !rc; k++) {
		if (!(rc = prefix_tokens(e, b, dc, text, sp[2 * k], &from, &bad)) &&
		    !(rc = prefix_tokens(e, b, dc, text, sp[2 * k + 1], &to, &bad)) && to > from)
			memset(b->mask + dc->id_off + from, 1, to - from);
	}
	dc->masked = 1;
	b->mismatch += bad;
	return rc;
}

/* Encodes every document of b with encoder e; the result or the first
 * error stays in b. */
static void encode_batch(struct run *r, tk_encoder_t *e, struct batch *b)
{
	b->ids.n = 0;
	b->mismatch = 0;
	b->rc = 0;
	for (size_t i = 0; i < b->n; i++) {
		struct doc *dc = &b->docs[i];
		const char *text = b->text.data + dc->off;
		dc->id_off = b->ids.n;
		dc->masked = 0;
		if (dc->chat || r->o->assistant_only) {
			int rc = 0;
			const char *nm = r->o->inputs[dc->file];
			if (!dc->chat)
				rc = tk_diag_set(&b->diag, TK_E_FORMAT, NULL, -1,
						 "--assistant-only-loss needs conversations (a "
						 "\"messages\" field of JSONL)");
			if (!rc && (rc = tk_encode(e, text, dc->len, 0, &b->ids)))
				tk_diag_set(&b->diag, rc, NULL, -1, "cannot encode: %s",
					    tk_strerror(rc));
			dc->n_ids = b->ids.n - dc->id_off;
			dc->n_prompt = 0;
			if (!rc && dc->plen) { /* prompt-completion: TRL's common prefix */
				int bad = 0;
				rc = prefix_tokens(e, b, dc, text, dc->plen, &dc->n_prompt, &bad);
				b->mismatch += bad;
			}
			if (!rc && r->o->assistant_only)
				rc = chat_mask(e, b, dc, text);
			if (!rc && dc->masked) /* both masks, as TRL's collator applies both */
				memset(b->mask + dc->id_off, 0, dc->n_prompt);
			if (rc) {
				snprintf(b->diag.path, sizeof(b->diag.path), "%.1000s",
					 strcmp(nm, "-") ? nm : "<stdin>");
				b->diag.line = dc->line;
				b->rc = rc;
				return;
			}
			continue;
		}
		int rc = tk_encode(e, text, dc->len, r->flags, &b->ids);
		if (!rc && r->o->add_eos &&
		    (b->ids.n == dc->id_off || b->ids.v[b->ids.n - 1] != (uint32_t)r->eos))
			rc = tk_ids_push(&b->ids, (uint32_t)r->eos);
		dc->n_ids = b->ids.n - dc->id_off;
		dc->n_prompt = 0;
		if (!rc && dc->plen) {
			b->prompt.n = 0;
			rc = tk_encode(e, text, dc->plen, r->flags, &b->prompt);
			size_t np = b->prompt.n;
			if (np && (r->flags & TK_ENCODE_ADD_SPECIAL) && tk_tokenizer_adds_eos(r->t) &&
			    b->prompt.v[np - 1] == (uint32_t)r->eos)
				np--;
			if (np > dc->n_ids ||
			    memcmp(b->prompt.v, b->ids.v + dc->id_off, np * sizeof(uint32_t)))
				b->mismatch++;
			dc->n_prompt = np < dc->n_ids ? np : dc->n_ids;
		}
		if (rc) {
			const char *nm = r->o->inputs[dc->file];
			b->rc = tk_diag_set(&b->diag, rc, strcmp(nm, "-") ? nm : "<stdin>", dc->line,
					    "cannot encode: %s", tk_strerror(rc));
			return;
		}
	}
}

static void *worker(void *arg)
{
	struct run *r = arg;
	tk_encoder_t *e = NULL;
	int erc = tk_encoder_new(r->t, &e);
	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct batch *b = NULL;
		for (int i = 0; i < r->n_ring && !b; i++)
			if (r->ring[i].state == SLOT_QUEUED)
				b = &r->ring[i];
		if (!b) {
			if (r->stop)
				break;
			pthread_cond_wait(&r->cv, &r->mu);
			continue;
		}
		b->state = SLOT_BUSY;
		pthread_mutex_unlock(&r->mu);
		if (erc)
			b->rc = tk_diag_set(&b->diag, erc, NULL, -1, "cannot make an encoder");
		else
			encode_batch(r, e, b);
		pthread_mutex_lock(&r->mu);
		b->state = SLOT_DONE;
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	tk_encoder_free(e);
	return NULL;
}

/* ---- output ------------------------------------------------------------- */

static int put_ids(struct run *r, const uint32_t *ids, size_t n, const uint8_t *mask,
		   struct tk_diag *d)
{
	char num[16];
	r->line.len = 0;
	for (int pass = 0; pass < 1 + !!r->o->show_mask; pass++) {
		for (size_t i = 0; i < n; i++) {
			int k = pass ? snprintf(num, sizeof(num), i ? " %d" : "%d", mask ? mask[i] : 1)
				     : snprintf(num, sizeof(num), i ? " %u" : "%u", ids[i]);
			if (tk_buf_append(&r->line, num, (size_t)k))
				return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		}
		if (tk_buf_append(&r->line, "\n", 1))
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	if (fwrite(r->line.data, 1, r->line.len, r->out) != r->line.len)
		return tk_diag_sys(d, r->out_name, "write failed");
	return 0;
}

/* Writes one encoded document: its mask is given (dmask), or 0 on the
 * first n_prompt tokens and 1 after. */
static int put_doc(struct run *r, const uint32_t *ids, size_t n, size_t n_prompt,
		   const uint8_t *dmask, size_t bytes, struct tk_diag *d)
{
	const uint8_t *mask = dmask;
	size_t zeros = n_prompt;
	if (!dmask && (n_prompt || r->o->show_mask)) {
		if (n > r->mask_cap) {
			uint8_t *m = realloc(r->mask, n);
			if (!m)
				return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
			r->mask = m;
			r->mask_cap = n;
		}
		memset(r->mask, 0, n_prompt);
		memset(r->mask + n_prompt, 1, n - n_prompt);
		mask = r->mask;
	}
	if (dmask)
		for (size_t i = zeros = 0; i < n; i++)
			zeros += !dmask[i];
	r->st->documents++;
	r->st->tokens += n;
	r->st->bytes += bytes;
	r->st->masked += zeros;
	switch (r->o->mode) {
	case TK_TOKENIZE_SHARD: {
		struct tk_record rec = { .ids = ids, .n = n, .mask = zeros ? mask : NULL };
		return tk_shard_write(r->w, &rec, d);
	}
	case TK_TOKENIZE_IDS:
		return put_ids(r, ids, n, mask, d);
	default:
		return 0;
	}
}

static int write_batch(struct run *r, struct batch *b, struct tk_diag *d)
{
	if (b->rc) {
		*d = b->diag;
		return b->rc;
	}
	for (size_t i = 0; i < b->n; i++) {
		const struct doc *dc = &b->docs[i];
		int rc = put_doc(r, b->ids.v + dc->id_off, dc->n_ids, dc->n_prompt,
				 dc->masked ? b->mask + dc->id_off : NULL, dc->len, d);
		if (rc)
			return rc;
	}
	r->st->prompt_mismatch += b->mismatch;
	if (r->o->progress)
		r->o->progress(r->o->progress_arg, r->st);
	return 0;
}

/* ---- input -------------------------------------------------------------- */

/* Reads examples into b until it is full or the inputs end.  *in is the
 * open input (NULL: open inputs[*file]). */
static int fill_batch(struct run *r, struct batch *b, tk_input_t **in, int *file,
		      struct tk_diag *d)
{
	b->n = 0;
	b->text.len = 0;
	b->n_spans = 0;
	while (b->n < BATCH_DOCS && b->text.len < BATCH_BYTES && *file < r->o->n_inputs) {
		if (!*in) {
			int rc = tk_input_open(in, r->o->inputs[*file], &r->o->in, d);
			if (rc)
				return rc;
		}
		struct tk_example ex;
		int rc = tk_input_next(*in, &ex, d);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			tk_input_free(*in);
			*in = NULL;
			++*file;
			continue;
		}
		if (b->n == b->cap) {
			size_t cap = b->cap ? b->cap * 2 : 64;
			struct doc *v = tk_reallocn(b->docs, cap, sizeof(*v));
			if (!v)
				return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
			b->docs = v;
			b->cap = cap;
		}
		size_t off = b->text.len;
		if (tk_buf_append(&b->text, ex.text, ex.len + 1)) /* with its NUL */
			return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		size_t span_off = b->n_spans, ns = 2 * (size_t)ex.n_spans;
		if (ns && b->spans_cap - b->n_spans < ns) {
			size_t cap = b->n_spans + ns + 64;
			size_t *sp = tk_reallocn(b->spans, cap, sizeof(*sp));
			if (!sp)
				return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
			b->spans = sp;
			b->spans_cap = cap;
		}
		if (ns)
			memcpy(b->spans + b->n_spans, ex.spans, ns * sizeof(*ex.spans));
		b->n_spans += ns;
		b->docs[b->n++] = (struct doc){ .off = off, .len = ex.len, .plen = ex.prompt_len,
						.line = ex.line, .file = *file, .chat = ex.chat,
						.n_spans = ex.n_spans, .span_off = span_off };
	}
	return 0;
}

/* Marks a written batch's slot free (under the lock that workers scan the
 * ring with, when there are workers). */
static void slot_free(struct run *r, struct batch *b, int nt)
{
	if (nt > 1)
		pthread_mutex_lock(&r->mu);
	b->state = SLOT_FREE;
	if (nt > 1)
		pthread_mutex_unlock(&r->mu);
}

/* Reads, encodes and writes every text input through a pool of nt threads
 * (nt == 1: all in this thread). */
static int run_text(struct run *r, int nt, struct tk_diag *d)
{
	pthread_t *tid = NULL;
	tk_encoder_t *e = NULL;
	tk_input_t *in = NULL;
	int file = 0, started = 0, rc = 0, read_rc = 0;
	uint64_t next = 0, written = 0;
	struct tk_diag read_diag;

	r->n_ring = nt > 1 ? 2 * nt + 2 : 1;
	r->ring = calloc((size_t)r->n_ring, sizeof(*r->ring));
	if (!r->ring)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	if (nt == 1) {
		if ((rc = tk_encoder_new(r->t, &e)))
			return tk_diag_set(d, rc, NULL, -1, "cannot make an encoder");
	} else {
		pthread_mutex_init(&r->mu, NULL);
		pthread_cond_init(&r->cv, NULL);
		if (!(tid = calloc((size_t)nt, sizeof(*tid))))
			rc = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		for (; !rc && started < nt; started++)
			if (pthread_create(&tid[started], NULL, worker, r))
				rc = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "cannot start a thread");
	}
	while (!rc) {
		struct batch *b = &r->ring[next % (uint64_t)r->n_ring];
		/* Write finished batches in order; wait when the ring is full. */
		for (;;) {
			struct batch *old = &r->ring[written % (uint64_t)r->n_ring];
			if (written == next)
				break;
			if (nt > 1) {
				pthread_mutex_lock(&r->mu);
				while (next - written == (uint64_t)r->n_ring && old->state != SLOT_DONE)
					pthread_cond_wait(&r->cv, &r->mu);
				int done = old->state == SLOT_DONE;
				pthread_mutex_unlock(&r->mu);
				if (!done)
					break;
			}
			if ((rc = write_batch(r, old, d)))
				break;
			slot_free(r, old, nt);
			written++;
		}
		if (rc || read_rc || file >= r->o->n_inputs)
			break;
		read_rc = fill_batch(r, b, &in, &file, &read_diag);
		if (!b->n)
			continue;
		if (nt == 1) {
			encode_batch(r, e, b);
			b->state = SLOT_DONE;
		} else {
			pthread_mutex_lock(&r->mu);
			b->state = SLOT_QUEUED;
			pthread_cond_broadcast(&r->cv);
			pthread_mutex_unlock(&r->mu);
		}
		next++;
	}
	/* Drain: every batch handed out is waited for, and written unless an
	 * earlier one failed (its error comes first in input order). */
	while (written < next) {
		struct batch *old = &r->ring[written % (uint64_t)r->n_ring];
		if (nt > 1) {
			pthread_mutex_lock(&r->mu);
			while (old->state != SLOT_DONE)
				pthread_cond_wait(&r->cv, &r->mu);
			pthread_mutex_unlock(&r->mu);
		}
		if (!rc)
			rc = write_batch(r, old, d);
		slot_free(r, old, nt);
		written++;
	}
	if (nt > 1) {
		pthread_mutex_lock(&r->mu);
		r->stop = 1;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		for (int i = 0; i < started; i++)
			pthread_join(tid[i], NULL);
		pthread_mutex_destroy(&r->mu);
		pthread_cond_destroy(&r->cv);
	}
	if (!rc && read_rc) {
		rc = read_rc;
		*d = read_diag;
	}
	free(tid);
	tk_encoder_free(e);
	tk_input_free(in);
	for (int i = 0; i < r->n_ring; i++) {
		tk_buf_free(&r->ring[i].text);
		free(r->ring[i].docs);
		tk_ids_free(&r->ring[i].ids);
		tk_ids_free(&r->ring[i].prompt);
		free(r->ring[i].spans);
		free(r->ring[i].mask);
	}
	free(r->ring);
	return rc;
}

/* ---- shard inputs ------------------------------------------------------- */

/* Writes the text of ids[0..n) decoded, then the end byte (DECODE). */
static int put_text(struct run *r, const uint32_t *ids, size_t n, struct tk_diag *d)
{
	r->line.len = 0;
	int rc = tk_decode(r->t, ids, n, r->o->skip_special, &r->line);
	if (rc)
		return tk_diag_set(d, rc, NULL, -1, "cannot decode: %s", tk_strerror(rc));
	if (tk_buf_append(&r->line, r->o->null_end ? "" : "\n", 1))
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	if (fwrite(r->line.data, 1, r->line.len, r->out) != r->line.len)
		return tk_diag_sys(d, r->out_name, "write failed");
	return 0;
}

/* DECODE with prompts: the prompt of each document that starts in rec
 * (a documents record at 0; a block at its segments after the first, as
 * the first may continue a document), the run of tokens out of the loss
 * there, when one follows it in the loss; rec->mask NULL: none. */
static int put_prompts(struct run *r, const struct tk_record *rec, struct tk_diag *d)
{
	size_t n = rec->n - rec->n_pad;
	int rc = 0;
	if (!rec->mask)
		return 0;
	for (uint32_t k = r->blocks ? 1 : 0; k < (r->blocks ? rec->n_seg : 1) && !rc; k++) {
		size_t s = r->blocks ? rec->seg[k] : 0, e = s;
		while (e < n && !rec->mask[e])
			e++;
		if (e > s && e < n && !(rc = put_text(r, rec->ids + s, e - s, d)))
			r->st->bytes += r->line.len - 1;
	}
	return rc;
}

static int shard_record(struct run *r, const struct tk_record *rec, struct tk_diag *d)
{
	size_t n = rec->n - rec->n_pad;
	uint64_t masked = rec->n_pad;
	if (rec->mask)
		for (size_t i = 0; i < n; i++)
			masked += !rec->mask[i];
	r->st->documents++;
	r->st->tokens += rec->n;
	r->st->masked += masked;
	if (r->o->mode == TK_TOKENIZE_IDS)
		return put_ids(r, rec->ids, rec->n, rec->mask, d);
	if (!r->t) /* STATS without a tokenizer: no text, so no bytes */
		return 0;
	if (r->o->mode == TK_TOKENIZE_DECODE && r->o->prompts)
		return put_prompts(r, rec, d);
	r->line.len = 0;
	int skip = r->o->mode == TK_TOKENIZE_STATS || r->o->skip_special;
	int rc = tk_decode(r->t, rec->ids, n, skip, &r->line);
	if (rc)
		return tk_diag_set(d, rc, NULL, -1, "cannot decode: %s", tk_strerror(rc));
	r->st->bytes += r->line.len;
	if (r->o->mode == TK_TOKENIZE_STATS)
		return 0;
	if (tk_buf_append(&r->line, r->o->null_end ? "" : "\n", 1))
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	if (fwrite(r->line.data, 1, r->line.len, r->out) != r->line.len)
		return tk_diag_sys(d, r->out_name, "write failed");
	return 0;
}

/* Reads one shard input: possibly several shards one after another. */
static int run_shard(struct run *r, const char *path, struct tk_diag *d)
{
	int is_stdin = !strcmp(path, "-");
	const char *name = is_stdin ? "<stdin>" : path;
	FILE *fp = is_stdin ? stdin : fopen(path, "rb");
	if (!fp)
		return tk_diag_sys(d, path, "cannot open");
	int rc = 0;
	uint64_t seen = 0;
	do {
		tk_shard_reader_t *rd;
		if ((rc = tk_shard_reader_open(&rd, fp, name, d)))
			break;
		/* without a tokenizer (--stats, --ids) there is nothing to match */
		rc = !r->t ? 0 : tk_shard_check_tokenizer(tk_shard_reader_info(rd), name,
							  tk_tokenizer_fingerprint(r->t),
							  tk_tokenizer_vocab_size(r->t), d);
		r->blocks = tk_shard_reader_info(rd)->kind == TK_SHARD_BLOCKS;
		struct tk_record rec;
		while (!rc && (rc = tk_shard_read(rd, &rec, d)) == 1) {
			rc = shard_record(r, &rec, d);
			if (!rc && r->o->progress && ++seen % 4096 == 0)
				r->o->progress(r->o->progress_arg, r->st);
		}
		tk_shard_reader_free(rd);
	} while (!rc && (rc = tk_shard_more(fp, name, d)) == 1);
	if (!is_stdin)
		fclose(fp);
	return rc;
}

static int is_shard_path(const char *p)
{
	size_t n = strlen(p);
	return n > 4 && !strcmp(p + n - 4, ".tks");
}

void tk_tokenize_opts_init(struct tk_tokenize_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = TK_TOKENIZE_SHARD;
	o->in.format = TK_INPUT_AUTO;
	o->add_eos = 1;
	o->add_special = 1;
}

int tk_tokenize_run(const tk_tokenizer_t *t, const struct tk_tokenize_opts *o, FILE *out,
		    const char *out_name, struct tk_tokenize_stats *st, struct tk_diag *d)
{
	struct run r = { .t = t, .o = o, .out = out, .out_name = out_name, .st = st };
	int rc = 0, n_text = 0;
	memset(st, 0, sizeof(*st));
	tk_diag_clear(d);
	r.flags = o->add_special ? TK_ENCODE_ADD_SPECIAL : 0;
	r.eos = t ? tk_tokenizer_eos_id(t) : -1;
	if (!t && o->mode != TK_TOKENIZE_STATS && o->mode != TK_TOKENIZE_IDS)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "a tokenizer is needed (-t)");
	for (int i = 0; i < o->n_inputs; i++) {
		int sh = o->shards || is_shard_path(o->inputs[i]);
		if (!sh && !t)
			return tk_diag_set(d, TK_E_INVAL, o->inputs[i], -1,
					   "is text: tokenizing it needs a tokenizer (-t)");
		if (sh && o->mode == TK_TOKENIZE_SHARD)
			return tk_diag_set(d, TK_E_INVAL, o->inputs[i], -1,
					   "is a token shard (read it with --decode, --ids or --stats)");
		if (!sh && o->mode == TK_TOKENIZE_DECODE)
			return tk_diag_set(d, TK_E_INVAL, o->inputs[i], -1,
					   "--decode reads token shards (.tks)");
		n_text += !sh;
	}
	if (n_text && o->add_eos && r.eos < 0)
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "the tokenizer has no EOS token to append (use --no-add-eos)");
	if (o->mode == TK_TOKENIZE_SHARD) {
		struct tk_shard_info info;
		tk_shard_info_init(&info, TK_SHARD_DOCUMENTS, tk_tokenizer_fingerprint(t),
				   tk_tokenizer_vocab_size(t));
		info.bos_id = tk_tokenizer_bos_id(t);
		info.eos_id = r.eos;
		info.ended = o->add_eos; /* each document ends as it should */
		info.pad_id = tk_tokenizer_pad_id(t);
		if ((rc = tk_shard_writer_open(&r.w, out, out_name, &info, d)))
			return rc;
	}
	int nt = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nt < 1)
		nt = 1;
	/* Consecutive text inputs go through the pool together. */
	struct tk_tokenize_opts sub = *o;
	for (int i = 0; i < o->n_inputs && !rc;) {
		if (o->shards || is_shard_path(o->inputs[i])) {
			rc = run_shard(&r, o->inputs[i++], d);
			continue;
		}
		int j = i;
		while (j < o->n_inputs && !is_shard_path(o->inputs[j]))
			j++;
		uint64_t before = st->documents;
		sub.inputs = o->inputs + i;
		sub.n_inputs = j - i;
		r.o = &sub;
		rc = run_text(&r, nt, d);
		r.o = o;
		if (!rc && st->documents == before) {
			struct tk_buf names = { 0 };
			for (int k = i; k < j; k++) {
				const char *nm = strcmp(o->inputs[k], "-") ? o->inputs[k] : "<stdin>";
				tk_buf_append(&names, k > i ? ", " : "", k > i ? 2 : 0);
				tk_buf_append(&names, nm, strlen(nm));
			}
			rc = tk_diag_set(d, TK_E_FORMAT, NULL, -1, "no documents in %s",
					 names.data ? names.data : "the input");
			tk_buf_free(&names);
		}
		i = j;
	}
	if (r.w) {
		if (rc)
			tk_shard_writer_free(r.w);
		else
			rc = tk_shard_writer_close(r.w, d);
	}
	if (!rc && o->progress)
		o->progress(o->progress_arg, st);
	tk_buf_free(&r.line);
	free(r.mask);
	return rc;
}

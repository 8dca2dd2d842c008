/* shard.c - token shards (.tks); the byte layout is specified in man/tk-shard.5.
 *
 *	preamble (24 bytes)  magic, version, header length, header CRC, preamble CRC
 *	header               JSON (struct tk_shard_info)
 *	chunk*               40-byte chunk header + one zstd frame (columnar records)
 *	trailer              totals + chunk offsets + CRC
 *	footer (24 bytes)    trailer offset, shard size, CRC, end magic
 *
 * Every count read from a file is checked against the limits below before
 * it is used to size anything, and data is read in pieces no larger than
 * what has actually arrived, so a hostile file cannot make us allocate more
 * than a chunk's worth.
 */
#include "formats/shard.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>
#include <zstd_errors.h>

#define PREAMBLE_SIZE 24
#define CHUNK_HEAD_SIZE 40
#define TRAILER_FIXED 48
#define FOOTER_SIZE 24
#define MAX_HEADER (64u << 10)       /* JSON header bytes */
#define MAX_RAW (64u << 20)          /* uncompressed bytes of one chunk */
#define DEFAULT_CHUNK (2u << 20)     /* target uncompressed chunk size */
#define READ_PIECE (1u << 20)
#define ZSTD_LEVEL 3

#define FLAG_MASK 1u
#define FLAG_PAD 2u
#define FLAG_SEG 4u
#define FLAG_ALL (FLAG_MASK | FLAG_PAD | FLAG_SEG)

static const unsigned char magic[8] = { 0x89, 'T', 'K', 'S', '\r', '\n', 0x1a, '\n' };
static const unsigned char chunk_tag[4] = { 'T', 'K', 'C', 'H' };
static const unsigned char trailer_tag[4] = { 'T', 'K', 'T', 'R' };
static const unsigned char footer_magic[4] = { 'T', 'K', 'E', 'N' };

/* ---- little-endian helpers ---- */

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void tk_shard_info_init(struct tk_shard_info *info, enum tk_shard_kind kind,
			const char *fingerprint, uint32_t vocab_size)
{
	memset(info, 0, sizeof(*info));
	info->version = TK_SHARD_VERSION;
	info->kind = kind;
	snprintf(info->fingerprint, sizeof(info->fingerprint), "%s", fingerprint ? fingerprint : "");
	info->vocab_size = vocab_size;
	info->token_bytes = vocab_size <= 65536 ? 2 : 4;
	info->bos_id = info->eos_id = info->pad_id = -1;
}

static int fingerprint_ok(const char *s)
{
	if (strlen(s) != 16)
		return 0;
	for (int i = 0; i < 16; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Checks the fields a header must have; returns NULL or what is wrong. */
static const char *info_problem(const struct tk_shard_info *in)
{
	if (in->kind != TK_SHARD_DOCUMENTS && in->kind != TK_SHARD_BLOCKS)
		return "unknown kind";
	if (!fingerprint_ok(in->fingerprint))
		return "fingerprint is not 16 lowercase hex digits";
	if (in->vocab_size == 0)
		return "vocab_size is 0";
	if (in->token_bytes != (in->vocab_size <= 65536 ? 2 : 4))
		return "token_bytes does not fit vocab_size";
	const int64_t ids[3] = { in->bos_id, in->eos_id, in->pad_id };
	for (int i = 0; i < 3; i++)
		if (ids[i] < -1 || ids[i] >= (int64_t)in->vocab_size)
			return "a special token id is out of range";
	if (in->kind == TK_SHARD_BLOCKS && (in->seq_len == 0 || in->seq_len > (1u << 20)))
		return "blocks need a seq_len in [1, 1048576]";
	if (in->kind == TK_SHARD_DOCUMENTS && in->seq_len != 0)
		return "documents have seq_len 0";
	if (in->kind == TK_SHARD_BLOCKS && in->ended)
		return "ended is for documents";
	if (in->split[0] && strcmp(in->split, "train") && strcmp(in->split, "eval"))
		return "split is not \"train\" or \"eval\"";
	return NULL;
}

/* ================================ writer ================================ */

struct tk_shard_writer {
	FILE *fp;
	char *name;
	struct tk_shard_info info;
	uint64_t off;       /* bytes written so far */
	size_t target;      /* flush a chunk when its raw size would pass this */
	/* the pending chunk, column by column */
	uint32_t *lens, *pads, *nsegs, *segs, *ids;
	uint8_t *mask;
	size_t nrec, cap_lens, cap_pads, cap_nsegs, nseg, cap_segs, ntok, cap_ids, cap_mask;
	int any_mask, any_pad, any_seg;
	uint64_t *offsets;
	size_t noff, cap_off;
	struct tk_shard_totals tot;
	ZSTD_CCtx *cctx;
	unsigned char *raw, *comp;
	size_t cap_raw, cap_comp;
	int failed;
};

static int wr(tk_shard_writer_t *w, const void *p, size_t n, struct tk_diag *d)
{
	if (n && fwrite(p, 1, n, w->fp) != n) {
		w->failed = 1;
		return tk_diag_sys(d, w->name, "write failed");
	}
	w->off += n;
	return 0;
}

void tk_shard_writer_free(tk_shard_writer_t *w)
{
	if (!w)
		return;
	free(w->name);
	free(w->lens);
	free(w->pads);
	free(w->nsegs);
	free(w->segs);
	free(w->ids);
	free(w->mask);
	free(w->offsets);
	free(w->raw);
	free(w->comp);
	ZSTD_freeCCtx(w->cctx);
	free(w);
}

static char *header_json(const struct tk_shard_info *in)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "format", "tk-shard");
	cJSON_AddStringToObject(o, "kind", in->kind == TK_SHARD_BLOCKS ? "blocks" : "documents");
	cJSON_AddStringToObject(o, "fingerprint", in->fingerprint);
	cJSON_AddNumberToObject(o, "vocab_size", in->vocab_size);
	cJSON_AddNumberToObject(o, "token_bytes", in->token_bytes);
	cJSON_AddNumberToObject(o, "bos_id", (double)in->bos_id);
	cJSON_AddNumberToObject(o, "eos_id", (double)in->eos_id);
	cJSON_AddNumberToObject(o, "pad_id", (double)in->pad_id);
	cJSON_AddNumberToObject(o, "seq_len", in->seq_len);
	cJSON_AddStringToObject(o, "split", in->split);
	if (in->ended)
		cJSON_AddBoolToObject(o, "ended", 1);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

int tk_shard_writer_open(tk_shard_writer_t **wp, FILE *fp, const char *name,
			 const struct tk_shard_info *info, struct tk_diag *d)
{
	*wp = NULL;
	const char *bad = info_problem(info);
	if (bad)
		return tk_diag_set(d, TK_E_INVAL, name, -1, "bad shard header: %s", bad);
	tk_shard_writer_t *w = calloc(1, sizeof(*w));
	if (!w)
		return tk_diag_set(d, TK_E_NOMEM, name, -1, "out of memory");
	w->fp = fp;
	w->name = strdup(name ? name : "");
	w->info = *info;
	w->info.version = TK_SHARD_VERSION;
	w->target = DEFAULT_CHUNK;
	w->cctx = ZSTD_createCCtx();
	char *json = header_json(&w->info);
	if (!w->name || !w->cctx || !json) {
		free(json);
		tk_shard_writer_free(w);
		return tk_diag_set(d, TK_E_NOMEM, name, -1, "out of memory");
	}
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
	size_t jlen = strlen(json);
	unsigned char pre[PREAMBLE_SIZE];
	memcpy(pre, magic, 8);
	put32(pre + 8, TK_SHARD_VERSION);
	put32(pre + 12, (uint32_t)jlen);
	put32(pre + 16, tk_crc32c(0, json, jlen));
	put32(pre + 20, tk_crc32c(0, pre, 20));
	int rc = wr(w, pre, sizeof(pre), d);
	if (!rc)
		rc = wr(w, json, jlen, d);
	free(json);
	if (rc) {
		tk_shard_writer_free(w);
		return rc;
	}
	*wp = w;
	return 0;
}

void tk_shard_writer_set_chunk_size(tk_shard_writer_t *w, size_t bytes)
{
	w->target = bytes < 64 ? 64 : bytes > MAX_RAW ? MAX_RAW : bytes;
}

static size_t pending_raw(const tk_shard_writer_t *w)
{
	size_t n = 4 * w->nrec + w->ntok * (size_t)w->info.token_bytes;
	if (w->any_pad)
		n += 4 * w->nrec;
	if (w->any_seg)
		n += 4 * w->nrec + 4 * w->nseg;
	if (w->any_mask)
		n += (w->ntok + 7) / 8;
	return n;
}

static int flush_chunk(tk_shard_writer_t *w, struct tk_diag *d)
{
	if (!w->nrec)
		return 0;
	size_t raw_n = pending_raw(w);
	if (tk_grow(&w->raw, &w->cap_raw, raw_n, 1))
		return tk_diag_set(d, TK_E_NOMEM, w->name, -1, "out of memory");
	unsigned char *p = w->raw;
	for (size_t i = 0; i < w->nrec; i++, p += 4)
		put32(p, w->lens[i]);
	if (w->any_pad)
		for (size_t i = 0; i < w->nrec; i++, p += 4)
			put32(p, w->pads[i]);
	if (w->any_seg) {
		for (size_t i = 0; i < w->nrec; i++, p += 4)
			put32(p, w->nsegs[i]);
		for (size_t i = 0; i < w->nseg; i++, p += 4)
			put32(p, w->segs[i]);
	}
	if (w->info.token_bytes == 2)
		for (size_t i = 0; i < w->ntok; i++, p += 2) {
			p[0] = (unsigned char)w->ids[i];
			p[1] = (unsigned char)(w->ids[i] >> 8);
		}
	else
		for (size_t i = 0; i < w->ntok; i++, p += 4)
			put32(p, w->ids[i]);
	if (w->any_mask) {
		size_t nb = (w->ntok + 7) / 8;
		memset(p, 0, nb);
		for (size_t i = 0; i < w->ntok; i++)
			if (w->mask[i])
				p[i / 8] |= (unsigned char)(1u << (i % 8));
		p += nb;
	}
	size_t bound = ZSTD_compressBound(raw_n);
	if (tk_grow(&w->comp, &w->cap_comp, bound, 1))
		return tk_diag_set(d, TK_E_NOMEM, w->name, -1, "out of memory");
	size_t cn = ZSTD_compress2(w->cctx, w->comp, bound, w->raw, raw_n);
	if (ZSTD_isError(cn))
		return tk_diag_set(d, TK_E_NOMEM, w->name, -1, "zstd: %s", ZSTD_getErrorName(cn));
	if (tk_grow(&w->offsets, &w->cap_off, w->noff + 1, sizeof(*w->offsets)))
		return tk_diag_set(d, TK_E_NOMEM, w->name, -1, "out of memory");
	w->offsets[w->noff++] = w->off;
	unsigned char h[CHUNK_HEAD_SIZE];
	memcpy(h, chunk_tag, 4);
	put32(h + 4, (uint32_t)w->tot.chunks);
	put32(h + 8, (uint32_t)w->nrec);
	put32(h + 12, (w->any_mask ? FLAG_MASK : 0) | (w->any_pad ? FLAG_PAD : 0) |
			      (w->any_seg ? FLAG_SEG : 0));
	put64(h + 16, w->ntok);
	put32(h + 24, (uint32_t)raw_n);
	put32(h + 28, (uint32_t)cn);
	put32(h + 32, tk_crc32c(0, w->comp, cn));
	put32(h + 36, tk_crc32c(0, h, 36));
	int rc = wr(w, h, sizeof(h), d);
	if (!rc)
		rc = wr(w, w->comp, cn, d);
	if (rc)
		return rc;
	w->tot.chunks++;
	w->nrec = w->nseg = w->ntok = 0;
	w->any_mask = w->any_pad = w->any_seg = 0;
	return 0;
}

int tk_shard_write(tk_shard_writer_t *w, const struct tk_record *rec, struct tk_diag *d)
{
	if (w->failed)
		return tk_diag_set(d, TK_E_IO, w->name, -1, "write failed earlier");
	uint64_t n = rec->n;
	if (rec->n_pad > n)
		return tk_diag_set(d, TK_E_INVAL, w->name, -1,
				   "record %llu: %u padding tokens in a record of %llu",
				   (unsigned long long)w->tot.records, rec->n_pad,
				   (unsigned long long)n);
	if (w->info.kind == TK_SHARD_BLOCKS && n != w->info.seq_len)
		return tk_diag_set(d, TK_E_INVAL, w->name, -1,
				   "block %llu has %llu tokens, not seq_len %u",
				   (unsigned long long)w->tot.records, (unsigned long long)n,
				   w->info.seq_len);
	for (uint64_t i = 0; i < n; i++)
		if (rec->ids[i] >= w->info.vocab_size)
			return tk_diag_set(d, TK_E_INVAL, w->name, -1,
					   "record %llu: token id %u is not below vocab_size %u",
					   (unsigned long long)w->tot.records, rec->ids[i],
					   w->info.vocab_size);
	uint32_t ns = rec->seg ? rec->n_seg : 0;
	for (uint32_t i = 0; i < ns; i++)
		if ((i == 0 && rec->seg[0] != 0) || (i > 0 && rec->seg[i] <= rec->seg[i - 1]) ||
		    (rec->seg[i] >= n && !(n == 0 && i == 0)))
			return tk_diag_set(d, TK_E_INVAL, w->name, -1,
					   "record %llu: segment offsets must start at 0 and "
					   "ascend below the record length",
					   (unsigned long long)w->tot.records);
	/* raw bytes this record adds, with every optional column counted */
	uint64_t add = 12 + 4 * (uint64_t)ns + n * (uint64_t)w->info.token_bytes + n / 8 + 1;
	if (add > MAX_RAW)
		return tk_diag_set(d, TK_E_UNSUPPORTED, w->name, -1,
				   "record %llu has %llu tokens, more than a shard chunk holds "
				   "(split the document)",
				   (unsigned long long)w->tot.records, (unsigned long long)n);
	if (w->nrec && (pending_raw(w) + add > w->target || w->nrec >= UINT32_MAX / 4)) {
		int rc = flush_chunk(w, d);
		if (rc)
			return rc;
	}
	size_t r = w->nrec;
	if (tk_grow(&w->lens, &w->cap_lens, r + 1, 4) || tk_grow(&w->pads, &w->cap_pads, r + 1, 4) ||
	    tk_grow(&w->nsegs, &w->cap_nsegs, r + 1, 4) ||
	    tk_grow(&w->segs, &w->cap_segs, w->nseg + ns, 4) ||
	    tk_grow(&w->ids, &w->cap_ids, w->ntok + n, 4) ||
	    tk_grow(&w->mask, &w->cap_mask, w->ntok + n, 1))
		return tk_diag_set(d, TK_E_NOMEM, w->name, -1, "out of memory");
	w->lens[r] = (uint32_t)n;
	w->pads[r] = rec->n_pad;
	w->nsegs[r] = ns;
	if (ns)
		memcpy(w->segs + w->nseg, rec->seg, 4 * (size_t)ns);
	if (n)
		memcpy(w->ids + w->ntok, rec->ids, 4 * (size_t)n);
	uint64_t masked = 0;
	for (uint64_t i = 0; i < n; i++) {
		int m = i < n - rec->n_pad && (!rec->mask || rec->mask[i]);
		w->mask[w->ntok + i] = (uint8_t)m;
		masked += !m;
	}
	w->any_mask |= rec->mask != NULL;
	w->any_pad |= rec->n_pad != 0;
	w->any_seg |= ns != 0;
	w->nrec++;
	w->nseg += ns;
	w->ntok += n;
	w->tot.records++;
	w->tot.tokens += n;
	w->tot.masked += masked;
	w->tot.padding += rec->n_pad;
	return 0;
}

int tk_shard_writer_close(tk_shard_writer_t *w, struct tk_diag *d)
{
	int rc = w->failed ? tk_diag_set(d, TK_E_IO, w->name, -1, "write failed earlier") : 0;
	if (!rc)
		rc = flush_chunk(w, d);
	if (!rc) {
		uint64_t trailer_off = w->off;
		size_t tn = TRAILER_FIXED + 8 * w->noff + 4;
		unsigned char *t = malloc(tn);
		if (!t) {
			rc = tk_diag_set(d, TK_E_NOMEM, w->name, -1, "out of memory");
		} else {
			memcpy(t, trailer_tag, 4);
			put32(t + 4, 0);
			put64(t + 8, w->tot.records);
			put64(t + 16, w->tot.tokens);
			put64(t + 24, w->tot.masked);
			put64(t + 32, w->tot.padding);
			put64(t + 40, w->tot.chunks);
			for (size_t i = 0; i < w->noff; i++)
				put64(t + TRAILER_FIXED + 8 * i, w->offsets[i]);
			put32(t + tn - 4, tk_crc32c(0, t, tn - 4));
			rc = wr(w, t, tn, d);
			free(t);
		}
		if (!rc) {
			unsigned char f[FOOTER_SIZE];
			put64(f, trailer_off);
			put64(f + 8, w->off + FOOTER_SIZE);
			put32(f + 16, tk_crc32c(0, f, 16));
			memcpy(f + 20, footer_magic, 4);
			rc = wr(w, f, sizeof(f), d);
		}
		if (!rc && fflush(w->fp))
			rc = tk_diag_sys(d, w->name, "write failed");
	}
	tk_shard_writer_free(w);
	return rc;
}

int tk_shard_check_tokenizer(const struct tk_shard_info *info, const char *name,
			     const char *fingerprint, uint32_t vocab_size,
			     struct tk_diag *d)
{
	if (!strcmp(info->fingerprint, fingerprint) && info->vocab_size == vocab_size)
		return 0;
	return tk_diag_set(d, TK_E_MISMATCH, name, -1,
			   "made with a different tokenizer (fingerprint %s, vocab %u) than "
			   "the one given (fingerprint %s, vocab %u)",
			   info->fingerprint, info->vocab_size, fingerprint, vocab_size);
}

/* ================================ reader ================================ */

struct tk_shard_reader {
	FILE *fp;
	char *name;
	struct tk_shard_info info;
	long long base;     /* stream offset of the shard's first byte, for messages */
	uint64_t off;       /* bytes consumed from the shard */
	uint64_t header_end;
	/* the current chunk, decoded */
	unsigned char *comp, *raw;
	size_t cap_comp, cap_raw;
	uint32_t *lens, *pads, *nsegs, *segs, *ids;
	uint8_t *mask;
	size_t cap_lens, cap_pads, cap_nsegs, cap_segs, cap_ids, cap_mask;
	uint32_t nrec, rec_i;
	uint64_t tok_pos, seg_pos;
	int chunk_mask;     /* the chunk has a mask array (explicit or for padding) */
	uint64_t *offsets;
	size_t cap_off;
	struct tk_shard_totals counted, trailer;
	int done, failed;
	ZSTD_DCtx *dctx;
};

static int rfail(tk_shard_reader_t *r, struct tk_diag *d, int err, uint64_t at,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int rfail(tk_shard_reader_t *r, struct tk_diag *d, int err, uint64_t at,
		 const char *fmt, ...)
{
	r->failed = 1;
	if (d) {
		char msg[768];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		long long o = r->base + (long long)at;
		tk_diag_set(d, err, r->name, -1, "offset %lld: %s", o, msg);
		d->offset = o;
	}
	return err;
}

/* Reads exactly n bytes; a short read is "file ends inside WHAT". */
static int rd(tk_shard_reader_t *r, void *buf, size_t n, const char *what, struct tk_diag *d)
{
	size_t got = n ? fread(buf, 1, n, r->fp) : 0;
	if (got == n) {
		r->off += n;
		return 0;
	}
	if (ferror(r->fp)) {
		r->failed = 1;
		return tk_diag_sys(d, r->name, "read failed");
	}
	r->off += got;
	return rfail(r, d, TK_E_FORMAT, r->off, "file ends inside %s (cut short?)", what);
}

static const char *looks_like(const unsigned char *p, size_t n)
{
	if (n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
		return "zstd-compressed data (decompress it first)";
	if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return "gzip-compressed data (decompress it first)";
	size_t i = 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i < n && (p[i] == '{' || p[i] == '['))
		return "JSON (tokenize it first with tk-tokenize)";
	for (size_t k = 0; k < n; k++)
		if (p[k] < 0x09 || (p[k] > 0x0d && p[k] < 0x20) || p[k] == 0x7f)
			return "binary data of another kind";
	return "text (tokenize it first with tk-tokenize)";
}

static int get_int(const cJSON *o, const char *key, double lo, double hi, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
	    v->valuedouble < lo || v->valuedouble > hi)
		return -1;
	*out = (int64_t)v->valuedouble;
	return 0;
}

static const char *parse_header(const char *json, size_t len, struct tk_shard_info *in)
{
	cJSON *o = cJSON_ParseWithLength(json, len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return "header is not a JSON object";
	}
	const char *bad = NULL;
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
	const cJSON *fp = cJSON_GetObjectItemCaseSensitive(o, "fingerprint");
	const cJSON *split = cJSON_GetObjectItemCaseSensitive(o, "split");
	const cJSON *ended = cJSON_GetObjectItemCaseSensitive(o, "ended");
	int64_t vocab, tb, bos, eos, pad, seq;
	if (!cJSON_IsString(kind) ||
	    (strcmp(kind->valuestring, "documents") && strcmp(kind->valuestring, "blocks")))
		bad = "header: kind is not \"documents\" or \"blocks\"";
	else if (!cJSON_IsString(fp) || strlen(fp->valuestring) >= sizeof(in->fingerprint))
		bad = "header: fingerprint missing or too long";
	else if (get_int(o, "vocab_size", 1, 4294967295.0, &vocab) ||
		 get_int(o, "token_bytes", 2, 4, &tb) || get_int(o, "bos_id", -1, 4294967295.0, &bos) ||
		 get_int(o, "eos_id", -1, 4294967295.0, &eos) ||
		 get_int(o, "pad_id", -1, 4294967295.0, &pad) ||
		 get_int(o, "seq_len", 0, 4294967295.0, &seq))
		bad = "header: a number is missing or out of range";
	else if (split && (!cJSON_IsString(split) ||
			   strlen(split->valuestring) >= sizeof(in->split)))
		bad = "header: split is not a short string";
	else if (ended && !cJSON_IsBool(ended))
		bad = "header: ended is not true or false";
	if (!bad) {
		tk_shard_info_init(in, strcmp(kind->valuestring, "blocks") ? TK_SHARD_DOCUMENTS
									     : TK_SHARD_BLOCKS,
				   fp->valuestring, (uint32_t)vocab);
		in->token_bytes = (int)tb;
		in->bos_id = bos;
		in->eos_id = eos;
		in->pad_id = pad;
		in->seq_len = (uint32_t)seq;
		if (split)
			snprintf(in->split, sizeof(in->split), "%s", split->valuestring);
		in->ended = cJSON_IsTrue(ended);
		bad = info_problem(in);
	}
	cJSON_Delete(o);
	return bad;
}

/* Reads the preamble and header: shared by the reader and tk_shard_stat. */
static int read_head(tk_shard_reader_t *r, struct tk_diag *d)
{
	unsigned char pre[PREAMBLE_SIZE];
	size_t got = fread(pre, 1, sizeof(pre), r->fp);
	if (got < sizeof(pre) && ferror(r->fp))
		return tk_diag_sys(d, r->name, "read failed");
	if (got == 0)
		return tk_diag_set(d, TK_E_FORMAT, r->name, -1,
				   "empty input, not a tk shard (expected the output of "
				   "tk-tokenize or tk-pack)");
	if (memcmp(pre, magic, got < 8 ? got : 8))
		return tk_diag_set(d, TK_E_FORMAT, r->name, -1, "not a tk shard: looks like %s",
				   looks_like(pre, got));
	r->off = got;
	if (got < sizeof(pre))
		return rfail(r, d, TK_E_FORMAT, got, "file ends inside the preamble (cut short?)");
	if (get32(pre + 20) != tk_crc32c(0, pre, 20))
		return rfail(r, d, TK_E_CHECKSUM, 0, "preamble checksum mismatch (file damaged)");
	uint32_t version = get32(pre + 8), hlen = get32(pre + 12);
	if (version != TK_SHARD_VERSION)
		return rfail(r, d, TK_E_UNSUPPORTED, 8,
			     "shard format version %u; this tk reads version %d (upgrade tk)",
			     version, TK_SHARD_VERSION);
	if (hlen == 0 || hlen > MAX_HEADER)
		return rfail(r, d, TK_E_FORMAT, 12, "header length %u is out of range", hlen);
	char *json = malloc(hlen);
	if (!json)
		return tk_diag_set(d, TK_E_NOMEM, r->name, -1, "out of memory");
	int rc = rd(r, json, hlen, "the header", d);
	if (!rc && get32(pre + 16) != tk_crc32c(0, json, hlen))
		rc = rfail(r, d, TK_E_CHECKSUM, PREAMBLE_SIZE,
			   "header checksum mismatch (file damaged)");
	if (!rc) {
		const char *bad = parse_header(json, hlen, &r->info);
		if (bad)
			rc = rfail(r, d, TK_E_FORMAT, PREAMBLE_SIZE, "%s", bad);
	}
	free(json);
	r->header_end = r->off;
	return rc;
}

void tk_shard_reader_free(tk_shard_reader_t *r)
{
	if (!r)
		return;
	free(r->name);
	free(r->comp);
	free(r->raw);
	free(r->lens);
	free(r->pads);
	free(r->nsegs);
	free(r->segs);
	free(r->ids);
	free(r->mask);
	free(r->offsets);
	ZSTD_freeDCtx(r->dctx);
	free(r);
}

static tk_shard_reader_t *reader_new(FILE *fp, const char *name)
{
	tk_shard_reader_t *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->fp = fp;
	r->name = strdup(name ? name : "");
	off_t pos = ftello(fp);
	r->base = pos > 0 ? (long long)pos : 0;
	if (!r->name) {
		tk_shard_reader_free(r);
		return NULL;
	}
	return r;
}

int tk_shard_reader_open(tk_shard_reader_t **rp, FILE *fp, const char *name,
			 struct tk_diag *d)
{
	*rp = NULL;
	tk_shard_reader_t *r = reader_new(fp, name);
	if (!r || !(r->dctx = ZSTD_createDCtx())) {
		tk_shard_reader_free(r);
		return tk_diag_set(d, TK_E_NOMEM, name, -1, "out of memory");
	}
	int rc = read_head(r, d);
	if (rc) {
		tk_shard_reader_free(r);
		return rc;
	}
	*rp = r;
	return 0;
}

const struct tk_shard_info *tk_shard_reader_info(const tk_shard_reader_t *r)
{
	return &r->info;
}

const struct tk_shard_totals *tk_shard_reader_totals(const tk_shard_reader_t *r)
{
	return r->done ? &r->trailer : &r->counted;
}

long long tk_shard_reader_offset(const tk_shard_reader_t *r)
{
	return r->base + (long long)r->off;
}

/* Splits the raw payload of a chunk into its columns, checking every count. */
static int decode_chunk(tk_shard_reader_t *r, uint64_t at, uint32_t seq, uint32_t flags,
			uint64_t ntok, size_t raw_n, struct tk_diag *d)
{
	const unsigned char *p = r->raw;
	uint32_t nrec = r->nrec;
	uint32_t tb = (uint32_t)r->info.token_bytes;
#define BAD(...) rfail(r, d, TK_E_FORMAT, at, __VA_ARGS__)
	/* fixed columns first: their sizes depend only on nrec */
	uint64_t fixed = 4 * (uint64_t)nrec * (1 + !!(flags & FLAG_PAD) + !!(flags & FLAG_SEG));
	if (fixed > raw_n)
		return BAD("chunk %u: sizes do not add up (file damaged)", seq);
	if (tk_grow(&r->lens, &r->cap_lens, nrec, 4) || tk_grow(&r->pads, &r->cap_pads, nrec, 4) ||
	    tk_grow(&r->nsegs, &r->cap_nsegs, nrec, 4))
		return tk_diag_set(d, TK_E_NOMEM, r->name, -1, "out of memory");
	uint64_t sum = 0, nseg = 0, padded = 0;
	for (uint32_t i = 0; i < nrec; i++, p += 4)
		sum += r->lens[i] = get32(p);
	for (uint32_t i = 0; i < nrec; i++) {
		r->pads[i] = 0;
		if (flags & FLAG_PAD) {
			r->pads[i] = get32(p);
			p += 4;
		}
		if (r->pads[i] > r->lens[i])
			return BAD("chunk %u: record has more padding than tokens", seq);
		padded += r->pads[i];
		if (r->info.kind == TK_SHARD_BLOCKS && r->lens[i] != r->info.seq_len)
			return BAD("chunk %u: block of %u tokens in a shard of seq_len %u", seq,
				   r->lens[i], r->info.seq_len);
	}
	for (uint32_t i = 0; i < nrec; i++) {
		r->nsegs[i] = 0;
		if (flags & FLAG_SEG) {
			r->nsegs[i] = get32(p);
			p += 4;
		}
		if (r->nsegs[i] > (r->lens[i] ? r->lens[i] : 1))
			return BAD("chunk %u: more segments than tokens", seq);
		nseg += r->nsegs[i];
	}
	if (sum != ntok)
		return BAD("chunk %u: record lengths do not add up to %llu tokens", seq,
			   (unsigned long long)ntok);
	uint64_t want = fixed + 4 * nseg + ntok * tb + ((flags & FLAG_MASK) ? (ntok + 7) / 8 : 0);
	if (want != raw_n)
		return BAD("chunk %u: sizes do not add up (file damaged)", seq);
	if (tk_grow(&r->segs, &r->cap_segs, nseg, 4) || tk_grow(&r->ids, &r->cap_ids, ntok, 4))
		return tk_diag_set(d, TK_E_NOMEM, r->name, -1, "out of memory");
	for (uint64_t k = 0, s = 0; k < nrec; k++)
		for (uint32_t j = 0; j < r->nsegs[k]; j++, s++, p += 4) {
			uint32_t v = r->segs[s] = get32(p);
			if ((j == 0 && v != 0) || (j > 0 && v <= r->segs[s - 1]) ||
			    (v >= r->lens[k] && v != 0))
				return BAD("chunk %u: bad segment offsets", seq);
		}
	for (uint64_t i = 0; i < ntok; i++, p += tb) {
		uint32_t id = tb == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : get32(p);
		if (id >= r->info.vocab_size)
			return BAD("chunk %u: token id %u is not below vocab_size %u", seq, id,
				   r->info.vocab_size);
		r->ids[i] = id;
	}
	r->chunk_mask = (flags & FLAG_MASK) || padded;
	uint64_t masked = 0;
	if (r->chunk_mask) {
		if (tk_grow(&r->mask, &r->cap_mask, ntok, 1))
			return tk_diag_set(d, TK_E_NOMEM, r->name, -1, "out of memory");
		for (uint64_t i = 0; i < ntok; i++)
			r->mask[i] = (flags & FLAG_MASK) ? (p[i / 8] >> (i % 8)) & 1 : 1;
		for (uint64_t k = 0, pos = 0; k < nrec; pos += r->lens[k], k++)
			for (uint32_t j = r->lens[k] - r->pads[k]; j < r->lens[k]; j++)
				r->mask[pos + j] = 0;
		for (uint64_t i = 0; i < ntok; i++)
			masked += !r->mask[i];
	}
	r->counted.records += nrec;
	r->counted.tokens += ntok;
	r->counted.masked += masked;
	r->counted.padding += padded;
	r->counted.chunks++;
	r->rec_i = 0;
	r->tok_pos = r->seg_pos = 0;
	return 0;
#undef BAD
}

static int read_chunk(tk_shard_reader_t *r, struct tk_diag *d)
{
	uint64_t at = r->off - 4; /* the tag was read already */
	uint32_t seq = (uint32_t)r->counted.chunks;
	unsigned char h[CHUNK_HEAD_SIZE];
	char what[64];
	snprintf(what, sizeof(what), "chunk %u", seq);
	memcpy(h, chunk_tag, 4);
	int rc = rd(r, h + 4, sizeof(h) - 4, what, d);
	if (rc)
		return rc;
	if (get32(h + 36) != tk_crc32c(0, h, 36))
		return rfail(r, d, TK_E_CHECKSUM, at, "chunk %u checksum mismatch (file damaged)", seq);
	uint32_t nseq = get32(h + 4), nrec = get32(h + 8), flags = get32(h + 12);
	uint64_t ntok = get64(h + 16);
	uint32_t raw_n = get32(h + 24), comp_n = get32(h + 28);
	if (nseq != seq)
		return rfail(r, d, TK_E_FORMAT, at, "chunk %u is numbered %u (chunks out of order)",
			     seq, nseq);
	if (nrec == 0 || (flags & ~FLAG_ALL) || raw_n > MAX_RAW || raw_n < 4 * (uint64_t)nrec ||
	    ntok > raw_n / 2 || comp_n == 0 || comp_n > ZSTD_compressBound(MAX_RAW))
		return rfail(r, d, TK_E_FORMAT, at, "chunk %u: counts out of range (file damaged)",
			     seq);
	/* read the frame in pieces, growing only as data actually arrives */
	for (size_t got = 0; got < comp_n;) {
		size_t piece = comp_n - got < READ_PIECE ? comp_n - got : READ_PIECE;
		if (tk_grow(&r->comp, &r->cap_comp, got + piece, 1))
			return tk_diag_set(d, TK_E_NOMEM, r->name, -1, "out of memory");
		if ((rc = rd(r, r->comp + got, piece, what, d)))
			return rc;
		got += piece;
	}
	if (get32(h + 32) != tk_crc32c(0, r->comp, comp_n))
		return rfail(r, d, TK_E_CHECKSUM, at, "chunk %u checksum mismatch (file damaged)", seq);
	/* one frame, zstd magic, content checksum flag (bit 2 of the descriptor) */
	if (comp_n < 6 || get32(r->comp) != 0xfd2fb528u || !(r->comp[4] & 4) ||
	    ZSTD_getFrameContentSize(r->comp, comp_n) != raw_n ||
	    ZSTD_findFrameCompressedSize(r->comp, comp_n) != comp_n)
		return rfail(r, d, TK_E_FORMAT, at,
			     "chunk %u: not one checksummed zstd frame of %u bytes", seq, raw_n);
	if (tk_grow(&r->raw, &r->cap_raw, raw_n ? raw_n : 1, 1))
		return tk_diag_set(d, TK_E_NOMEM, r->name, -1, "out of memory");
	size_t n = ZSTD_decompressDCtx(r->dctx, r->raw, raw_n, r->comp, comp_n);
	if (ZSTD_isError(n))
		return rfail(r, d, ZSTD_getErrorCode(n) == ZSTD_error_checksum_wrong ? TK_E_CHECKSUM
										  : TK_E_FORMAT,
			     at, "chunk %u: zstd: %s (file damaged)", seq, ZSTD_getErrorName(n));
	if (n != raw_n)
		return rfail(r, d, TK_E_FORMAT, at, "chunk %u: holds %zu bytes, not %u", seq, n, raw_n);
	if (tk_grow(&r->offsets, &r->cap_off, (size_t)seq + 1, 8))
		return tk_diag_set(d, TK_E_NOMEM, r->name, -1, "out of memory");
	r->offsets[seq] = at;
	r->nrec = nrec;
	return decode_chunk(r, at, seq, flags, ntok, raw_n, d);
}

/* Reads the trailer (its tag already read) and the footer, and checks both
 * against what was read. */
static int read_trailer(tk_shard_reader_t *r, struct tk_diag *d)
{
	uint64_t at = r->off - 4;
	unsigned char t[TRAILER_FIXED];
	memcpy(t, trailer_tag, 4);
	int rc = rd(r, t + 4, sizeof(t) - 4, "the trailer", d);
	if (rc)
		return rc;
	uint32_t crc = tk_crc32c(0, t, sizeof(t));
	struct tk_shard_totals *tt = &r->trailer;
	tt->records = get64(t + 8);
	tt->tokens = get64(t + 16);
	tt->masked = get64(t + 24);
	tt->padding = get64(t + 32);
	tt->chunks = get64(t + 40);
	if (tt->chunks != r->counted.chunks)
		return rfail(r, d, TK_E_FORMAT, at,
			     "trailer lists %llu chunks but %llu were read (file damaged)",
			     (unsigned long long)tt->chunks, (unsigned long long)r->counted.chunks);
	int index_ok = 1;
	for (uint64_t i = 0; i < tt->chunks; i++) {
		unsigned char e[8];
		if ((rc = rd(r, e, 8, "the trailer", d)))
			return rc;
		crc = tk_crc32c(crc, e, 8);
		index_ok &= get64(e) == r->offsets[i];
	}
	unsigned char c[4];
	if ((rc = rd(r, c, 4, "the trailer", d)))
		return rc;
	if (get32(c) != crc)
		return rfail(r, d, TK_E_CHECKSUM, at, "trailer checksum mismatch (file damaged)");
	if (!index_ok || memcmp(tt, &r->counted, sizeof(*tt)))
		return rfail(r, d, TK_E_FORMAT, at,
			     "trailer totals do not match the chunks (file damaged)");
	unsigned char f[FOOTER_SIZE];
	uint64_t fat = r->off;
	if ((rc = rd(r, f, sizeof(f), "the footer", d)))
		return rc;
	if (memcmp(f + 20, footer_magic, 4) || get32(f + 16) != tk_crc32c(0, f, 16))
		return rfail(r, d, TK_E_CHECKSUM, fat, "footer damaged");
	if (get64(f) != at || get64(f + 8) != r->off)
		return rfail(r, d, TK_E_FORMAT, fat, "footer does not match the shard (file damaged)");
	r->done = 1;
	return 0;
}

int tk_shard_read(tk_shard_reader_t *r, struct tk_record *rec, struct tk_diag *d)
{
	if (r->failed)
		return tk_diag_set(d, TK_E_FORMAT, r->name, -1, "read after an error");
	if (r->done)
		return 0;
	while (r->rec_i >= r->nrec) {
		unsigned char tag[4];
		size_t got = fread(tag, 1, 4, r->fp);
		if (got < 4 && ferror(r->fp)) {
			r->failed = 1;
			return tk_diag_sys(d, r->name, "read failed");
		}
		r->off += got;
		if (got == 0)
			return rfail(r, d, TK_E_FORMAT, r->off,
				     "file ends after %llu chunks, before the trailer (cut short?)",
				     (unsigned long long)r->counted.chunks);
		if (got < 4)
			return rfail(r, d, TK_E_FORMAT, r->off, "file ends inside chunk %llu (cut short?)",
				     (unsigned long long)r->counted.chunks);
		int rc;
		if (!memcmp(tag, trailer_tag, 4)) {
			rc = read_trailer(r, d);
			return rc ? rc : 0;
		}
		if (memcmp(tag, chunk_tag, 4))
			return rfail(r, d, TK_E_FORMAT, r->off - 4,
				     "expected chunk %llu or the trailer, found bytes %02x %02x %02x "
				     "%02x (file damaged)",
				     (unsigned long long)r->counted.chunks, tag[0], tag[1], tag[2],
				     tag[3]);
		if ((rc = read_chunk(r, d)))
			return rc;
	}
	uint32_t i = r->rec_i++;
	rec->n = r->lens[i];
	rec->ids = r->ids + r->tok_pos;
	/* a record whose tokens all count reads back with no mask */
	rec->mask = r->chunk_mask && memchr(r->mask + r->tok_pos, 0, rec->n)
			    ? r->mask + r->tok_pos
			    : NULL;
	rec->n_pad = r->pads[i];
	rec->n_seg = r->nsegs[i];
	rec->seg = rec->n_seg ? r->segs + r->seg_pos : NULL;
	rec->ended = r->info.ended;
	r->tok_pos += rec->n;
	r->seg_pos += rec->n_seg;
	return 1;
}

int tk_shard_more(FILE *fp, const char *name, struct tk_diag *d)
{
	int c = getc(fp);
	if (c == EOF)
		return ferror(fp) ? tk_diag_sys(d, name, "read failed") : 0;
	ungetc(c, fp);
	return 1;
}

/* ================================= stat ================================= */

int tk_shard_stat(const char *path, struct tk_shard_info *info,
		  struct tk_shard_totals *totals, struct tk_diag *d)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return tk_diag_sys(d, path, "cannot open");
	tk_shard_reader_t *r = reader_new(fp, path);
	if (!r) {
		fclose(fp);
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	}
	struct stat st;
	int rc = read_head(r, d);
	if (!rc && (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)))
		rc = tk_diag_set(d, TK_E_INVAL, path, -1, "not a regular file");
	uint64_t size = rc ? 0 : (uint64_t)st.st_size;
	unsigned char f[FOOTER_SIZE], t[TRAILER_FIXED];
	if (!rc && size < r->header_end + FOOTER_SIZE + TRAILER_FIXED + 4)
		rc = rfail(r, d, TK_E_FORMAT, size, "file ends before the trailer (cut short?)");
	if (!rc && fseeko(fp, (off_t)(size - FOOTER_SIZE), SEEK_SET))
		rc = tk_diag_sys(d, path, "seek failed");
	if (!rc) {
		r->off = size - FOOTER_SIZE;
		rc = rd(r, f, sizeof(f), "the footer", d);
	}
	if (!rc && (memcmp(f + 20, footer_magic, 4) || get32(f + 16) != tk_crc32c(0, f, 16)))
		rc = rfail(r, d, TK_E_FORMAT, size - FOOTER_SIZE,
			   "no shard footer at the end (cut short or damaged?)");
	uint64_t toff = rc ? 0 : get64(f);
	if (!rc && get64(f + 8) != size)
		rc = rfail(r, d, TK_E_FORMAT, size - FOOTER_SIZE,
			   "footer gives a shard of %llu bytes in a file of %llu (several shards "
			   "in one file, or damaged)",
			   (unsigned long long)get64(f + 8), (unsigned long long)size);
	if (!rc && (toff < r->header_end || toff > size - FOOTER_SIZE - TRAILER_FIXED - 4))
		rc = rfail(r, d, TK_E_FORMAT, size - FOOTER_SIZE, "trailer offset out of range");
	if (!rc && fseeko(fp, (off_t)toff, SEEK_SET))
		rc = tk_diag_sys(d, path, "seek failed");
	if (!rc) {
		r->off = toff;
		rc = rd(r, t, sizeof(t), "the trailer", d);
	}
	if (!rc && memcmp(t, trailer_tag, 4))
		rc = rfail(r, d, TK_E_FORMAT, toff, "no trailer where the footer points");
	uint64_t chunks = rc ? 0 : get64(t + 40);
	if (!rc && (chunks > (size - toff) / 8 ||
		    TRAILER_FIXED + 8 * chunks + 4 != size - FOOTER_SIZE - toff))
		rc = rfail(r, d, TK_E_FORMAT, toff, "trailer size does not match its chunk count");
	uint32_t crc = rc ? 0 : tk_crc32c(0, t, sizeof(t));
	uint64_t prev = 0;
	for (uint64_t i = 0; !rc && i < chunks; i++) {
		unsigned char e[8];
		if ((rc = rd(r, e, 8, "the trailer", d)))
			break;
		crc = tk_crc32c(crc, e, 8);
		uint64_t o = get64(e);
		if ((i == 0 && o != r->header_end) || (i > 0 && o <= prev) ||
		    o + CHUNK_HEAD_SIZE > toff)
			rc = rfail(r, d, TK_E_FORMAT, toff, "chunk index out of order or range");
		prev = o;
	}
	unsigned char c[4];
	if (!rc)
		rc = rd(r, c, 4, "the trailer", d);
	if (!rc && get32(c) != crc)
		rc = rfail(r, d, TK_E_CHECKSUM, toff, "trailer checksum mismatch (file damaged)");
	if (!rc && chunks == 0 && toff != r->header_end)
		rc = rfail(r, d, TK_E_FORMAT, toff, "trailer lists no chunks but data precedes it");
	if (!rc) {
		if (info)
			*info = r->info;
		if (totals) {
			totals->records = get64(t + 8);
			totals->tokens = get64(t + 16);
			totals->masked = get64(t + 24);
			totals->padding = get64(t + 32);
			totals->chunks = chunks;
		}
	}
	tk_shard_reader_free(r);
	fclose(fp);
	return rc;
}

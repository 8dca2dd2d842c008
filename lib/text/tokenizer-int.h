/* tokenizer-int.h - private to lib/tokenizer*.c: the loaded tokenizer, the
 * encoder workspace, and the helpers they share (UTF-8, character classes,
 * hash maps, regexes).
 */
#ifndef TK_TOKENIZER_INT_H
#define TK_TOKENIZER_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <string.h>

#include "text/tokenizer-unicode.h"
#include "text/tokenizer.h"

/* ---- UTF-8 and character classes ---- */

/* Decodes the code point at s (valid UTF-8, at least one byte) and stores
 * its length in *len. */
static inline uint32_t tok_u8dec(const unsigned char *s, size_t *len)
{
	uint32_t c = s[0];
	if (c < 0x80) {
		*len = 1;
		return c;
	}
	if (c < 0xE0) {
		*len = 2;
		return ((c & 0x1F) << 6) | (s[1] & 0x3F);
	}
	if (c < 0xF0) {
		*len = 3;
		return ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
	}
	*len = 4;
	return ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) |
	       (s[3] & 0x3F);
}

/* Length in bytes of the UTF-8 sequence that starts with byte c. */
static inline size_t tok_u8len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Writes cp as UTF-8 to out (4 bytes room), returns the length. */
size_t tok_u8enc(uint32_t cp, char *out);

/* GPT-2's byte-level alphabet: the character that stands for byte b, and
 * the byte a character stands for (-1 if none). */
uint32_t tok_byte_char(unsigned char b);
int tok_char_byte(uint32_t cp);

extern uint16_t tok_uc_stage1[0x1100];
extern uint8_t tok_uc_blocks[][256];
/* Builds the class tables once (thread-safe). */
void tok_uc_init(void);

/* TK_UC_* bits of a code point (after tok_uc_init). */
static inline unsigned tok_uc(uint32_t cp)
{
	return cp < 0x110000 ? tok_uc_blocks[tok_uc_stage1[cp >> 8]][cp & 255] : 0;
}

/* ---- hash maps ---- */

uint64_t tok_hash(const void *p, size_t n);

struct tok_sent {
	uint64_t h;
	uint32_t off, len, val;
};

/* Byte string -> uint32. */
struct tok_smap {
	uint32_t *slot; /* entry index + 1; 0 = empty */
	size_t mask;
	struct tok_sent *ent;
	size_t n, cap;
	struct tk_buf keys;
};

/* Inserts k -> v; an existing key keeps its value unless replace is set. */
int tok_smap_put(struct tok_smap *m, const char *k, size_t n, uint32_t v, int replace);
/* Returns 1 and sets *v when k is present, else 0. */
int tok_smap_get(const struct tok_smap *m, const char *k, size_t n, uint32_t *v);
void tok_smap_free(struct tok_smap *m);

/* (left id, right id) -> (rank, merged id). */
struct tok_mmap {
	uint64_t *key; /* UINT64_MAX = empty */
	uint32_t *rank, *id;
	size_t mask, n;
};
int tok_mmap_init(struct tok_mmap *m, size_t n);
/* Inserts or replaces (a later merge of the same pair wins, as in HF). */
void tok_mmap_put(struct tok_mmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t id);
static inline int tok_mmap_get(const struct tok_mmap *m, uint32_t a, uint32_t b,
			       uint32_t *rank, uint32_t *id)
{
	if (!m->n)
		return 0;
	uint64_t k = ((uint64_t)a << 32) | b;
	uint64_t h = k * 0x9E3779B97F4A7C15ULL;
	size_t i = (size_t)(h >> 20) & m->mask;
	for (;;) {
		if (m->key[i] == k) {
			*rank = m->rank[i];
			*id = m->id[i];
			return 1;
		}
		if (m->key[i] == UINT64_MAX)
			return 0;
		i = (i + 1) & m->mask;
	}
}
void tok_mmap_free(struct tok_mmap *m);

/* ---- regexes ---- */

enum tok_rx_kind {
	TOK_RX_PCRE,   /* compiled with PCRE2 (JIT) */
	TOK_RX_LIT,    /* a literal string */
	TOK_RX_GPT2,   /* hand-written scanners for the well-known patterns */
	TOK_RX_LLAMA3,
	TOK_RX_QWEN2,
};

struct tok_regex {
	int kind;
	pcre2_code *code;
	char *lit;
	size_t litn;
	char *src; /* the pattern as written in the file */
};

/* Compiles pattern (is_regex: Oniguruma syntax, else a literal). */
int tok_rx_compile(struct tok_regex *rx, const char *pattern, int is_regex,
		   const char *path, struct tk_diag *d);
void tok_rx_free(struct tok_regex *rx);

/* Iterates the matches of a regex as Oniguruma's find_iter does. */
struct tok_rx_iter {
	const struct tok_regex *rx;
	pcre2_match_data *md;
	const char *s;
	size_t n, last_end;
	long long last_match_end;
};
void tok_rx_iter_init(struct tok_rx_iter *it, const struct tok_regex *rx,
		      pcre2_match_data *md, const char *s, size_t n);
/* Returns 1 with [*ms, *me) for the next match, 0 at the end, <0 on error. */
int tok_rx_next(struct tok_rx_iter *it, size_t *ms, size_t *me);

/* Hand-written scanners: end of the piece that starts at pos (< n). */
size_t tok_scan_gpt2(const char *s, size_t n, size_t pos);
size_t tok_scan_llama3(const char *s, size_t n, size_t pos, int max_digits);

/* ---- the tokenizer ---- */

enum tok_norm_type {
	TOK_N_NFC, TOK_N_NFD, TOK_N_NFKC, TOK_N_NFKD, TOK_N_LOWER, TOK_N_PREPEND,
	TOK_N_REPLACE, TOK_N_STRIP,
};

struct tok_norm {
	int type;
	char *str;      /* Prepend: prepend; Replace: content */
	size_t strn;
	struct tok_regex rx; /* Replace */
	int left, right;     /* Strip */
};

enum tok_pt_type {
	TOK_P_BYTELEVEL, TOK_P_SPLIT, TOK_P_METASPACE, TOK_P_DIGITS, TOK_P_WHITESPACE,
	TOK_P_WSSPLIT, TOK_P_PUNCT,
};

enum tok_behavior {
	TOK_B_REMOVED, TOK_B_ISOLATED, TOK_B_PREV, TOK_B_NEXT, TOK_B_CONTIG,
};

enum { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };

struct tok_pretok {
	int type;
	struct tok_regex rx;   /* Split */
	int behavior, invert;  /* Split, Punctuation */
	char repl[5];          /* Metaspace */
	int repl_n;
	int prepend, split;
	int add_prefix_space, use_regex; /* ByteLevel */
	int individual;        /* Digits */
};

enum tok_dec_type {
	TOK_D_BYTELEVEL, TOK_D_METASPACE, TOK_D_REPLACE, TOK_D_BYTEFALLBACK, TOK_D_FUSE,
	TOK_D_STRIP,
};

struct tok_dec {
	int type;
	char repl[5];   /* Metaspace */
	int repl_n, prepend;
	struct tok_regex rx; /* Replace */
	char *str;
	size_t strn;
	uint32_t cp;    /* Strip */
	long long start, stop;
};

struct tok_added {
	char *content;
	size_t n;
	char *pat;      /* what is matched: the normalized content for normalized tokens */
	size_t patn;
	uint32_t id;
	unsigned single_word : 1, lstrip : 1, rstrip : 1, normalized : 1, special : 1;
};

/* Leftmost-longest matcher over a few strings: candidates by first byte,
 * longest first. */
struct tok_aset {
	uint8_t any[256];
	uint32_t start[257];
	uint32_t *idx; /* into tokenizer->added */
	size_t n;
};

#define TOK_MAX_STAGES 16

struct tk_tokenizer {
	char *path;
	uint32_t vocab_size;
	char **id_str;          /* token text per id (NULL where none) */
	uint32_t *id_len;
	uint8_t *id_special;    /* 1 where the token text is a special added token */
	char **dec_str;         /* decode's text per id (borrowed pointers) */
	uint32_t *dec_len;

	/* BPE model */
	struct tok_smap vocab;  /* token text -> id */
	struct tok_smap raw;    /* byte-level: raw bytes of a token -> id */
	struct tok_mmap merges;
	int byte_level;
	int32_t byte_id[256];   /* byte-level: id of the one-byte token, -1 if none */
	int32_t fallback_id[256]; /* id of <0xXX>, -1 if none */
	int byte_fallback, ignore_merges, fuse_unk;
	int64_t unk_id;
	int has_unk;
	char *unk_token;
	char *prefix, *suffix;  /* continuing_subword_prefix, end_of_word_suffix */
	size_t prefix_n, suffix_n;

	struct tok_added *added;
	size_t nadded;
	struct tok_smap added_map; /* content -> id */
	struct tok_smap special;   /* special contents */
	struct tok_aset raw_set, norm_set;

	struct tok_norm *norm;
	size_t nnorm;
	struct tok_pretok *pt;
	size_t npt;
	struct tok_dec *dec;
	size_t ndec;
	int has_decoder;

	struct tk_ids pre, post; /* post-processor ids around the text */
	int adds_bos, adds_eos;
	int64_t bos, eos, pad;
	char fp[17];
};

/* Runs the normalizers over [s, s+n) into *out (using *tmp as scratch).
 * *lost_first is set when the first character was removed (so the result
 * no longer starts at original offset 0). */
int tok_normalize(const struct tk_tokenizer *t, pcre2_match_data *md, const char *s,
		  size_t n, struct tk_buf *out, struct tk_buf *tmp, int *lost_first);

/* Replaces every match of rx in [s, s+n) by rep, appending to out; sets
 * *at_start when a match at offset 0 was replaced by nothing. */
int tok_replace(const struct tok_regex *rx, pcre2_match_data *md, const char *s, size_t n,
		const char *rep, size_t repn, struct tk_buf *out, int *at_start);

#endif

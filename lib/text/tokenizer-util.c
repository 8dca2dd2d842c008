/* tokenizer-util.c - helpers of the tokenizer: UTF-8, character classes,
 * hash maps, regexes (Oniguruma semantics over PCRE2, and hand-written
 * scanners for the well-known pre-tokenizer patterns), normalizers.
 *
 * Regex semantics.  HF compiles pre-tokenizer and Replace patterns with
 * Oniguruma (Unicode 16.0 in tokenizers 0.23.3).  The GPT-2, Llama-3 and
 * Qwen2 patterns never reach a regex engine here: hand-written scanners
 * implement them over character classes read off `tokenizers` itself
 * (tokenizer-unicode.h, by tests/parity/gen-unicode-table.py), so they agree
 * with HF on every code point, including U+0085 (NEL), which Oniguruma's \s
 * matches, and "'\u017f" (long s), which Oniguruma's (?i:'s) matches.
 * Any other pattern runs on PCRE2 (UTF, UCP, JIT) after rewriting \s to
 * include U+0085 and Oniguruma's \h (a hex digit).  Known differences that
 * remain on that path: PCRE2 10.42 has Unicode 14 tables, so \p{L},
 * \p{N}, \w... differ from Oniguruma on characters added in Unicode 15 and
 * 16; and Ruby-syntax constructs PCRE2 lacks fail at load as unsupported.
 * Normalizers use utf8proc (Unicode 15): NFC/NFD/NFKC/NFKD and Lowercase
 * can differ from Rust's tables on characters newer than that.
 */
#include "text/tokenizer-int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- token id arrays ---- */

int tk_ids_push(struct tk_ids *ids, uint32_t id)
{
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? ids->cap * 2 : 64;
		uint32_t *v = tk_reallocn(ids->v, cap, sizeof(*v));
		if (!v)
			return TK_E_NOMEM;
		ids->v = v;
		ids->cap = cap;
	}
	ids->v[ids->n++] = id;
	return 0;
}

void tk_ids_free(struct tk_ids *ids)
{
	free(ids->v);
	ids->v = NULL;
	ids->n = ids->cap = 0;
}

/* ---- UTF-8 ---- */

size_t tok_u8enc(uint32_t cp, char *out)
{
	unsigned char *o = (unsigned char *)out;
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

static uint16_t byte_char[256];
static int16_t char_byte[324];
static pthread_once_t bc_once = PTHREAD_ONCE_INIT;

static void bc_build(void)
{
	int n = 0;
	for (int i = 0; i < 324; i++)
		char_byte[i] = -1;
	for (int b = 0; b < 256; b++) {
		int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
		byte_char[b] = (uint16_t)(keep ? b : 256 + n++);
		char_byte[byte_char[b]] = (int16_t)b;
	}
}

uint32_t tok_byte_char(unsigned char b)
{
	pthread_once(&bc_once, bc_build);
	return byte_char[b];
}

int tok_char_byte(uint32_t cp)
{
	pthread_once(&bc_once, bc_build);
	return cp < 324 ? char_byte[cp] : -1;
}

/* At s (n > 0): the length of the valid character there, or 0 with *bad
 * set to the length of the maximal ill-formed subpart (Unicode 3.9, as
 * Python and Rust replace it). */
static size_t u8_check(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned c = s[0], lo = 0x80, hi = 0xBF;
	size_t need;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
	} else if (c == 0xE0) {
		need = 2;
		lo = 0xA0;
	} else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
		need = 2;
	} else if (c == 0xED) {
		need = 2;
		hi = 0x9F;
	} else if (c == 0xF0) {
		need = 3;
		lo = 0x90;
	} else if (c >= 0xF1 && c <= 0xF3) {
		need = 3;
	} else if (c == 0xF4) {
		need = 3;
		hi = 0x8F;
	} else {
		*bad = 1;
		return 0;
	}
	for (size_t i = 1; i <= need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xBF;
	}
	return need + 1;
}

size_t tk_utf8_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, bad;
	while (i < len) {
		if (i + 8 <= len) {
			uint64_t v;
			memcpy(&v, u + i, 8);
			if (!(v & 0x8080808080808080ULL)) {
				i += 8;
				continue;
			}
		}
		size_t k = u8_check(u + i, len - i, &bad);
		if (!k)
			return i;
		i += k;
	}
	return len;
}

int tk_utf8_repair(const char *s, size_t len, struct tk_buf *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		size_t ok = tk_utf8_valid(s + i, len - i);
		if (ok) {
			int rc = tk_buf_append(out, s + i, ok);
			if (rc)
				return rc;
			i += ok;
			continue;
		}
		size_t bad = 1;
		u8_check(u + i, len - i, &bad);
		int rc = tk_buf_append(out, "\xEF\xBF\xBD", 3);
		if (rc)
			return rc;
		i += bad;
	}
	int rc = tk_buf_reserve(out, 0);
	if (!rc)
		out->data[out->len] = '\0';
	return rc;
}

/* ---- character classes ---- */

uint16_t tok_uc_stage1[0x1100];
uint8_t tok_uc_blocks[0x1100][256];
static pthread_once_t uc_once = PTHREAD_ONCE_INIT;

static void uc_build(void)
{
	size_t nruns = sizeof(tk_uc_runs) / sizeof(tk_uc_runs[0]);
	size_t r = 0, nblocks = 0;
	uint64_t hashes[0x1100];
	uint8_t blk[256];
	for (uint32_t b = 0; b < 0x1100; b++) {
		for (uint32_t k = 0; k < 256; k++) {
			uint32_t cp = (b << 8) | k;
			while (r + 1 < nruns && (tk_uc_runs[r + 1] >> 8) <= cp)
				r++;
			blk[k] = (uint8_t)(tk_uc_runs[r] & 0xFF);
		}
		uint64_t h = tk_fnv1a64(TK_FNV1A64_INIT, blk, sizeof(blk));
		size_t j;
		for (j = 0; j < nblocks; j++)
			if (hashes[j] == h && !memcmp(tok_uc_blocks[j], blk, sizeof(blk)))
				break;
		if (j == nblocks) {
			memcpy(tok_uc_blocks[j], blk, sizeof(blk));
			hashes[j] = h;
			nblocks++;
		}
		tok_uc_stage1[b] = (uint16_t)j;
	}
}

void tok_uc_init(void)
{
	pthread_once(&uc_once, uc_build);
}

/* ---- hashing and maps ---- */

uint64_t tok_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)n * 0xFF51AFD7ED558CCDULL);
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, s, 8);
		h = (h ^ v) * 0xBF58476D1CE4E5B9ULL;
		h ^= h >> 29;
		s += 8;
		n -= 8;
	}
	if (n) {
		uint64_t v = 0;
		memcpy(&v, s, n);
		h = (h ^ v) * 0x94D049BB133111EBULL;
	}
	h ^= h >> 31;
	h *= 0xBF58476D1CE4E5B9ULL;
	h ^= h >> 32;
	return h;
}

static int smap_grow(struct tok_smap *m)
{
	size_t nslots = m->mask ? (m->mask + 1) * 2 : 1024;
	uint32_t *slot = calloc(nslots, sizeof(*slot));
	if (!slot)
		return TK_E_NOMEM;
	for (size_t e = 0; e < m->n; e++) {
		size_t i = (size_t)m->ent[e].h & (nslots - 1);
		while (slot[i])
			i = (i + 1) & (nslots - 1);
		slot[i] = (uint32_t)(e + 1);
	}
	free(m->slot);
	m->slot = slot;
	m->mask = nslots - 1;
	return 0;
}

int tok_smap_put(struct tok_smap *m, const char *k, size_t n, uint32_t v, int replace)
{
	if (n > UINT32_MAX || m->n >= UINT32_MAX - 1)
		return TK_E_NOMEM;
	if ((m->n + 1) * 2 > (m->mask ? m->mask + 1 : 0)) {
		int rc = smap_grow(m);
		if (rc)
			return rc;
	}
	uint64_t h = tok_hash(k, n);
	size_t i = (size_t)h & m->mask;
	while (m->slot[i]) {
		struct tok_sent *e = &m->ent[m->slot[i] - 1];
		if (e->h == h && e->len == n && !memcmp(m->keys.data + e->off, k, n)) {
			if (replace)
				e->val = v;
			return 0;
		}
		i = (i + 1) & m->mask;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 512;
		struct tok_sent *ent = tk_reallocn(m->ent, cap, sizeof(*ent));
		if (!ent)
			return TK_E_NOMEM;
		m->ent = ent;
		m->cap = cap;
	}
	if (m->keys.len + n > UINT32_MAX)
		return TK_E_NOMEM;
	struct tok_sent *e = &m->ent[m->n];
	e->h = h;
	e->off = (uint32_t)m->keys.len;
	e->len = (uint32_t)n;
	e->val = v;
	int rc = tk_buf_append(&m->keys, k, n);
	if (rc)
		return rc;
	m->slot[i] = (uint32_t)(++m->n);
	return 0;
}

int tok_smap_get(const struct tok_smap *m, const char *k, size_t n, uint32_t *v)
{
	if (!m->n)
		return 0;
	uint64_t h = tok_hash(k, n);
	size_t i = (size_t)h & m->mask;
	while (m->slot[i]) {
		const struct tok_sent *e = &m->ent[m->slot[i] - 1];
		if (e->h == h && e->len == n && !memcmp(m->keys.data + e->off, k, n)) {
			*v = e->val;
			return 1;
		}
		i = (i + 1) & m->mask;
	}
	return 0;
}

void tok_smap_free(struct tok_smap *m)
{
	free(m->slot);
	free(m->ent);
	tk_buf_free(&m->keys);
	memset(m, 0, sizeof(*m));
}

int tok_mmap_init(struct tok_mmap *m, size_t n)
{
	size_t slots = 16;
	while (slots < n * 2 + 2)
		slots *= 2;
	m->key = tk_mallocn(slots, sizeof(*m->key));
	m->rank = tk_mallocn(slots, sizeof(*m->rank));
	m->id = tk_mallocn(slots, sizeof(*m->id));
	if (!m->key || !m->rank || !m->id) {
		tok_mmap_free(m);
		return TK_E_NOMEM;
	}
	memset(m->key, 0xFF, slots * sizeof(*m->key));
	m->mask = slots - 1;
	m->n = 0;
	return 0;
}

void tok_mmap_put(struct tok_mmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t id)
{
	uint64_t k = ((uint64_t)a << 32) | b;
	uint64_t h = k * 0x9E3779B97F4A7C15ULL;
	size_t i = (size_t)(h >> 20) & m->mask;
	while (m->key[i] != UINT64_MAX && m->key[i] != k)
		i = (i + 1) & m->mask;
	if (m->key[i] == UINT64_MAX)
		m->n++;
	m->key[i] = k;
	m->rank[i] = rank;
	m->id[i] = id;
}

void tok_mmap_free(struct tok_mmap *m)
{
	free(m->key);
	free(m->rank);
	free(m->id);
	memset(m, 0, sizeof(*m));
}

/* ---- regexes ---- */

const char tk_rx_gpt2[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char tk_rx_llama3[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char tk_rx_qwen2[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Oniguruma's \s also matches U+0085 (NEL), which PCRE2's does not, and
 * its \h is a hex digit; rewrite those so PCRE2 matches alike. */
static char *rx_rewrite(const char *p)
{
	size_t n = strlen(p);
	char *out = malloc(n * 12 + 1), *o = out;
	int in_class = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\\' && i + 1 < n) {
			char x = p[++i];
			const char *rep = NULL;
			if (in_class) {
				if (x == 's')
					rep = "\\s\\x{85}";
				else if (x == 'h')
					rep = "0-9a-fA-F";
			} else {
				if (x == 's')
					rep = "[\\s\\x{85}]";
				else if (x == 'S')
					rep = "[^\\s\\x{85}]";
				else if (x == 'h')
					rep = "[0-9a-fA-F]";
				else if (x == 'H')
					rep = "[^0-9a-fA-F]";
			}
			if (rep) {
				size_t k = strlen(rep);
				memcpy(o, rep, k);
				o += k;
			} else {
				*o++ = c;
				*o++ = x;
			}
			continue;
		}
		if (c == '[' && !in_class) {
			in_class = 1;
			*o++ = c;
			if (p[i + 1] == '^')
				*o++ = p[++i];
			if (p[i + 1] == ']')
				*o++ = p[++i];
			continue;
		}
		if (c == '[' && in_class && p[i + 1] != ':') {
			in_class++;
		} else if (c == '[' && in_class && p[i + 1] == ':') {
			const char *end = strstr(p + i, ":]");
			if (end) {
				size_t k = (size_t)(end + 2 - (p + i));
				memcpy(o, p + i, k);
				o += k;
				i += k - 1;
				continue;
			}
		} else if (c == ']' && in_class) {
			in_class--;
		}
		*o++ = c;
	}
	*o = '\0';
	return out;
}

int tok_rx_compile(struct tok_regex *rx, const char *pattern, int is_regex,
		   const char *path, struct tk_diag *d)
{
	memset(rx, 0, sizeof(*rx));
	rx->src = strdup(pattern);
	if (!rx->src)
		return TK_E_NOMEM;
	if (!is_regex) {
		rx->kind = TOK_RX_LIT;
		rx->lit = strdup(pattern);
		rx->litn = strlen(pattern);
		return rx->lit ? 0 : TK_E_NOMEM;
	}
	if (!strcmp(pattern, tk_rx_gpt2)) {
		rx->kind = TOK_RX_GPT2;
		return 0;
	}
	if (!strcmp(pattern, tk_rx_llama3)) {
		rx->kind = TOK_RX_LLAMA3;
		return 0;
	}
	if (!strcmp(pattern, tk_rx_qwen2)) {
		rx->kind = TOK_RX_QWEN2;
		return 0;
	}
	char *p = rx_rewrite(pattern);
	if (!p)
		return TK_E_NOMEM;
	int err;
	PCRE2_SIZE off;
	rx->kind = TOK_RX_PCRE;
	rx->code = pcre2_compile((PCRE2_SPTR)p, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
				 &err, &off, NULL);
	free(p);
	if (!rx->code) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(err, msg, sizeof(msg));
		return tk_diag_set(d, TK_E_UNSUPPORTED, path, -1,
				   "regex '%s' is not supported: %s at offset %zu", pattern,
				   (const char *)msg, (size_t)off);
	}
	pcre2_jit_compile(rx->code, PCRE2_JIT_COMPLETE);
	return 0;
}

void tok_rx_free(struct tok_regex *rx)
{
	if (rx->code)
		pcre2_code_free(rx->code);
	free(rx->lit);
	free(rx->src);
	memset(rx, 0, sizeof(*rx));
}

void tok_rx_iter_init(struct tok_rx_iter *it, const struct tok_regex *rx,
		      pcre2_match_data *md, const char *s, size_t n)
{
	it->rx = rx;
	it->md = md;
	it->s = s;
	it->n = n;
	it->last_end = 0;
	it->last_match_end = -1;
}

int tok_rx_next(struct tok_rx_iter *it, size_t *ms, size_t *me)
{
	const struct tok_regex *rx = it->rx;
	for (;;) {
		size_t s, e;
		if (it->last_end > it->n)
			return 0;
		switch (rx->kind) {
		case TOK_RX_LIT: {
			if (!rx->litn)
				return 0;
			const char *p = memmem(it->s + it->last_end, it->n - it->last_end, rx->lit,
					       rx->litn);
			if (!p)
				return 0;
			s = (size_t)(p - it->s);
			e = s + rx->litn;
			break;
		}
		case TOK_RX_PCRE: {
			int rc = pcre2_match(rx->code, (PCRE2_SPTR)it->s, it->n, it->last_end,
					     PCRE2_NO_UTF_CHECK, it->md, NULL);
			if (rc == PCRE2_ERROR_NOMATCH)
				return 0;
			if (rc < 0)
				return TK_E_UNSUPPORTED;
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(it->md);
			s = ov[0];
			e = ov[1];
			break;
		}
		default:
			if (it->last_end >= it->n)
				return 0;
			s = it->last_end;
			e = rx->kind == TOK_RX_GPT2 ? tok_scan_gpt2(it->s, it->n, s)
			    : tok_scan_llama3(it->s, it->n, s, rx->kind == TOK_RX_QWEN2 ? 1 : 3);
			break;
		}
		if (e == s && it->last_match_end == (long long)e) {
			it->last_end += it->last_end < it->n
				? tok_u8len((unsigned char)it->s[it->last_end]) : 1;
			continue;
		}
		it->last_end = e;
		it->last_match_end = (long long)e;
		*ms = s;
		*me = e;
		return 1;
	}
}

/* ---- hand-written scanners ---- */

/* Class of the character at s[i] and its length. */
static inline unsigned cls_at(const unsigned char *u, size_t i, size_t *len, uint32_t *cp)
{
	uint32_t c = u[i];
	if (c < 0x80) {
		*len = 1;
		*cp = c;
	} else {
		c = tok_u8dec(u + i, len);
		*cp = c;
	}
	return tok_uc(c);
}

#define IS_OTHER(k) (!((k) & (TK_UC_L | TK_UC_N | TK_UC_S)))

/* End of the run of characters whose class has any bit of want (or, with
 * other set, none of L/N/S) starting at i. */
static size_t run_of(const unsigned char *u, size_t n, size_t i, unsigned want, int other)
{
	while (i < n) {
		size_t l;
		uint32_t cp;
		unsigned k = cls_at(u, i, &l, &cp);
		if (other ? !IS_OTHER(k) : !(k & want))
			break;
		i += l;
	}
	return i;
}

/* Whitespace alternatives shared by the patterns: \s+(?!\S)|\s+ (and,
 * with nl, \s*[\r\n]+ first). */
static size_t ws_run(const unsigned char *u, size_t n, size_t pos, int nl)
{
	size_t i = pos, last = pos, nchars = 0, lastnl = (size_t)-1;
	while (i < n) {
		size_t l;
		uint32_t cp;
		unsigned k = cls_at(u, i, &l, &cp);
		if (!(k & TK_UC_S))
			break;
		if (cp == '\r' || cp == '\n')
			lastnl = i;
		last = i;
		i += l;
		nchars++;
	}
	if (nl && lastnl != (size_t)-1)
		return lastnl + 1;
	if (i == n || nchars < 2)
		return i;
	return last;
}

size_t tok_scan_gpt2(const char *s, size_t n, size_t pos)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t l;
	uint32_t c;
	if (u[pos] == '\'' && pos + 1 < n) {
		unsigned char a = u[pos + 1];
		if (a == 's' || a == 't' || a == 'm' || a == 'd')
			return pos + 2;
		if (pos + 2 < n) {
			unsigned char b = u[pos + 2];
			if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') ||
			    (a == 'l' && b == 'l'))
				return pos + 3;
		}
	}
	size_t p = pos;
	unsigned k = cls_at(u, p, &l, &c);
	if (c == ' ' && p + 1 < n) {
		size_t l2;
		uint32_t c2;
		unsigned k2 = cls_at(u, p + 1, &l2, &c2);
		if (!(k2 & TK_UC_S)) {
			p++;
			k = k2;
			l = l2;
		}
	}
	if (k & TK_UC_L)
		return run_of(u, n, p + l, TK_UC_L, 0);
	if (k & TK_UC_N)
		return run_of(u, n, p + l, TK_UC_N, 0);
	if (IS_OTHER(k))
		return run_of(u, n, p + l, 0, 1);
	return ws_run(u, n, pos, 0);
}

static int fold_is(uint32_t c, char lower)
{
	if (c == (uint32_t)lower || c == (uint32_t)(lower - 32))
		return 1;
	return lower == 's' && c == 0x17F; /* LATIN SMALL LETTER LONG S */
}

size_t tok_scan_llama3(const char *s, size_t n, size_t pos, int max_digits)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t l;
	uint32_t c;
	if (u[pos] == '\'' && pos + 1 < n) {
		size_t la, lb;
		uint32_t a = tok_u8dec(u + pos + 1, &la);
		if (fold_is(a, 's') || fold_is(a, 't') || fold_is(a, 'm') || fold_is(a, 'd'))
			return pos + 1 + la;
		if (pos + 1 + la < n) {
			uint32_t b = tok_u8dec(u + pos + 1 + la, &lb);
			if ((fold_is(a, 'r') && fold_is(b, 'e')) ||
			    (fold_is(a, 'v') && fold_is(b, 'e')) ||
			    (fold_is(a, 'l') && fold_is(b, 'l')))
				return pos + 1 + la + lb;
		}
	}
	unsigned k = cls_at(u, pos, &l, &c);
	if (k & TK_UC_L)
		return run_of(u, n, pos + l, TK_UC_L, 0);
	if (!(k & TK_UC_N) && c != '\r' && c != '\n' && pos + l < n) {
		size_t l2;
		uint32_t c2;
		if (cls_at(u, pos + l, &l2, &c2) & TK_UC_L)
			return run_of(u, n, pos + l + l2, TK_UC_L, 0);
	}
	if (k & TK_UC_N) {
		size_t i = pos + l;
		for (int d = 1; d < max_digits && i < n; d++) {
			size_t l2;
			uint32_t c2;
			if (!(cls_at(u, i, &l2, &c2) & TK_UC_N))
				break;
			i += l2;
		}
		return i;
	}
	size_t p = pos;
	if (c == ' ' && p + 1 < n) {
		size_t l2;
		uint32_t c2;
		unsigned k2 = cls_at(u, p + 1, &l2, &c2);
		if (IS_OTHER(k2)) {
			p++;
			k = k2;
			l = l2;
		}
	}
	if (IS_OTHER(k)) {
		size_t i = run_of(u, n, p + l, 0, 1);
		while (i < n && (u[i] == '\r' || u[i] == '\n'))
			i++;
		return i;
	}
	return ws_run(u, n, pos, 1);
}

/* ---- normalizers ---- */

int tok_replace(const struct tok_regex *rx, pcre2_match_data *md, const char *s, size_t n,
		const char *rep, size_t repn, struct tk_buf *out, int *at_start)
{
	struct tok_rx_iter it;
	size_t ms, me, last = 0;
	int rc;
	tok_rx_iter_init(&it, rx, md, s, n);
	while ((rc = tok_rx_next(&it, &ms, &me)) > 0) {
		if ((rc = tk_buf_append(out, s + last, ms - last)) ||
		    (rc = tk_buf_append(out, rep, repn)))
			return rc;
		if (ms == 0 && me > 0 && !repn && at_start)
			*at_start = 1;
		last = me;
	}
	if (rc < 0)
		return rc;
	return tk_buf_append(out, s + last, n - last);
}

static int is_ascii(const char *s, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, s + i, 8);
		if (v & 0x8080808080808080ULL)
			return 0;
	}
	for (; i < n; i++)
		if ((unsigned char)s[i] & 0x80)
			return 0;
	return 1;
}

static int norm_one(const struct tok_norm *nm, pcre2_match_data *md, const char *s, size_t n,
		    struct tk_buf *out, int *lost_first)
{
	const unsigned char *u = (const unsigned char *)s;
	int rc = 0;
	switch (nm->type) {
	case TOK_N_NFC:
	case TOK_N_NFD:
	case TOK_N_NFKC:
	case TOK_N_NFKD: {
		if (is_ascii(s, n))
			return tk_buf_append(out, s, n);
		int opt = UTF8PROC_STABLE;
		if (nm->type == TOK_N_NFC || nm->type == TOK_N_NFKC)
			opt |= UTF8PROC_COMPOSE;
		else
			opt |= UTF8PROC_DECOMPOSE;
		if (nm->type == TOK_N_NFKC || nm->type == TOK_N_NFKD)
			opt |= UTF8PROC_COMPAT;
		utf8proc_uint8_t *dst = NULL;
		utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n,
						  &dst, (utf8proc_option_t)opt);
		if (k < 0)
			return k == UTF8PROC_ERROR_NOMEM ? TK_E_NOMEM : TK_E_FORMAT;
		rc = tk_buf_append(out, dst, (size_t)k);
		free(dst);
		return rc;
	}
	case TOK_N_LOWER:
		if ((rc = tk_buf_reserve(out, n)))
			return rc;
		for (size_t i = 0; i < n;) {
			if (u[i] < 0x80) {
				char c = (char)u[i];
				if (c >= 'A' && c <= 'Z')
					c = (char)(c + 32);
				if ((rc = tk_buf_append(out, &c, 1)))
					return rc;
				i++;
				continue;
			}
			size_t l;
			uint32_t cp = tok_u8dec(u + i, &l);
			char enc[8];
			size_t k;
			if (cp == 0x130) {
				memcpy(enc, "i\xCC\x87", 3);
				k = 3;
			} else {
				k = tok_u8enc((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), enc);
			}
			if ((rc = tk_buf_append(out, enc, k)))
				return rc;
			i += l;
		}
		return 0;
	case TOK_N_PREPEND:
		if (n && (rc = tk_buf_append(out, nm->str, nm->strn)))
			return rc;
		return tk_buf_append(out, s, n);
	case TOK_N_REPLACE:
		return tok_replace(&nm->rx, md, s, n, nm->str, nm->strn, out, lost_first);
	case TOK_N_STRIP: {
		size_t a = 0, b = n;
		if (nm->left) {
			while (a < n) {
				size_t l;
				uint32_t cp;
				if (!(cls_at(u, a, &l, &cp) & TK_UC_S))
					break;
				a += l;
			}
			if (a > 0)
				*lost_first = 1;
		}
		if (nm->right) {
			while (b > a) {
				size_t j = b - 1;
				while (j > a && (u[j] & 0xC0) == 0x80)
					j--;
				size_t l;
				uint32_t cp;
				if (!(cls_at(u, j, &l, &cp) & TK_UC_S))
					break;
				b = j;
			}
		}
		return tk_buf_append(out, s + a, b - a);
	}
	}
	return TK_E_INVAL;
}

int tok_normalize(const struct tk_tokenizer *t, pcre2_match_data *md, const char *s,
		  size_t n, struct tk_buf *out, struct tk_buf *tmp, int *lost_first)
{
	struct tk_buf *bufs[2] = { out, tmp };
	int k = 0, rc;
	out->len = 0;
	if (!t->nnorm)
		return tk_buf_append(out, s, n);
	for (size_t i = 0; i < t->nnorm; i++) {
		struct tk_buf *dst = bufs[k];
		dst->len = 0;
		if ((rc = tk_buf_reserve(dst, n)))
			return rc;
		if ((rc = norm_one(&t->norm[i], md, s, n, dst, lost_first)))
			return rc;
		s = dst->data;
		n = dst->len;
		k ^= 1;
	}
	if (bufs[k ^ 1] != out) {
		struct tk_buf swap = *out;
		*out = *tmp;
		*tmp = swap;
	}
	return 0;
}

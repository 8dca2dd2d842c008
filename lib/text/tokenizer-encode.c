/* tokenizer-encode.c - encoding text to ids exactly as Hugging Face
 * `tokenizers` does: added tokens, normalizers, pre-tokenizers, BPE with a
 * per-encoder cache, post-processor ids.
 *
 * The pre-tokenizers run depth first: each stage splits one piece and hands
 * every sub-piece to the next stage, and the last stage hands it to the
 * model, so no list of pieces is ever built for the common patterns.
 */
#include "text/tokenizer-int.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_SLOTS (1u << 16)
#define CACHE_MAX_ENT (1u << 15)
#define CACHE_MAX_KEY 128
#define CACHE_KEY_BYTES (1u << 19)
#define CACHE_IDS (1u << 17)
#define SMALL_WORD 48

struct seg {
	size_t s, e;
	int64_t id; /* added token id, -1 for text */
};

struct segvec {
	struct seg *v;
	size_t n, cap;
};

struct span {
	size_t s, e;
	int m; /* is a match (before the behavior), then: remove */
};

struct spanvec {
	struct span *v;
	size_t n, cap;
};

struct cent {
	uint64_t h;
	uint32_t koff, ioff;
	uint16_t klen, nids;
};

struct hent {
	uint32_t rank, pos, id;
};

struct tk_encoder {
	const struct tk_tokenizer *t;
	pcre2_match_data *md;
	struct segvec raw, nrm;
	struct tk_buf norm, tmp, wbuf, kbuf;
	struct tk_buf sbuf[TOK_MAX_STAGES];
	struct spanvec sv[TOK_MAX_STAGES];
	uint32_t *sym, *rk, *nid;
	int32_t *prev, *next;
	size_t symcap;
	struct hent *heap;
	size_t heapcap;
	/* the cache: pre-token bytes -> ids */
	uint32_t *slot;
	struct cent *ent;
	char *keys;
	uint32_t *ids;
	size_t nent, nkeys, nids;
	struct tk_ids *out;
};

int tk_encoder_new(const tk_tokenizer_t *t, tk_encoder_t **out)
{
	tk_encoder_t *e = calloc(1, sizeof(*e));
	*out = NULL;
	if (!e)
		return TK_E_NOMEM;
	e->t = t;
	e->md = pcre2_match_data_create(4, NULL);
	e->slot = calloc(CACHE_SLOTS, sizeof(*e->slot));
	e->ent = tk_mallocn(CACHE_MAX_ENT, sizeof(*e->ent));
	e->keys = malloc(CACHE_KEY_BYTES);
	e->ids = tk_mallocn(CACHE_IDS, sizeof(*e->ids));
	if (!e->md || !e->slot || !e->ent || !e->keys || !e->ids) {
		tk_encoder_free(e);
		return TK_E_NOMEM;
	}
	*out = e;
	return 0;
}

void tk_encoder_free(tk_encoder_t *e)
{
	if (!e)
		return;
	if (e->md)
		pcre2_match_data_free(e->md);
	free(e->raw.v);
	free(e->nrm.v);
	tk_buf_free(&e->norm);
	tk_buf_free(&e->tmp);
	tk_buf_free(&e->wbuf);
	tk_buf_free(&e->kbuf);
	for (int i = 0; i < TOK_MAX_STAGES; i++) {
		tk_buf_free(&e->sbuf[i]);
		free(e->sv[i].v);
	}
	free(e->sym);
	free(e->rk);
	free(e->nid);
	free(e->prev);
	free(e->next);
	free(e->heap);
	free(e->slot);
	free(e->ent);
	free(e->keys);
	free(e->ids);
	free(e);
}

/* ---- growable vectors ---- */

static int seg_push(struct segvec *v, size_t s, size_t e, int64_t id)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		struct seg *p = tk_reallocn(v->v, cap, sizeof(*p));
		if (!p)
			return TK_E_NOMEM;
		v->v = p;
		v->cap = cap;
	}
	v->v[v->n++] = (struct seg){ s, e, id };
	return 0;
}

static int span_push(struct spanvec *v, size_t s, size_t e, int m)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		struct span *p = tk_reallocn(v->v, cap, sizeof(*p));
		if (!p)
			return TK_E_NOMEM;
		v->v = p;
		v->cap = cap;
	}
	v->v[v->n++] = (struct span){ s, e, m };
	return 0;
}

static int sym_reserve(tk_encoder_t *e, size_t n)
{
	if (n <= e->symcap)
		return 0;
	size_t cap = e->symcap ? e->symcap : 64;
	while (cap < n)
		cap *= 2;
	uint32_t *a = tk_reallocn(e->sym, cap, sizeof(*a));
	if (a)
		e->sym = a;
	uint32_t *b = tk_reallocn(e->rk, cap, sizeof(*b));
	if (b)
		e->rk = b;
	uint32_t *c = tk_reallocn(e->nid, cap, sizeof(*c));
	if (c)
		e->nid = c;
	int32_t *p = tk_reallocn(e->prev, cap, sizeof(*p));
	if (p)
		e->prev = p;
	int32_t *q = tk_reallocn(e->next, cap, sizeof(*q));
	if (q)
		e->next = q;
	/* each merge pushes at most two new pairs: 3n entries at most */
	struct hent *h = tk_reallocn(e->heap, cap * 3, sizeof(*h));
	if (h)
		e->heap = h;
	if (!a || !b || !c || !p || !q || !h)
		return TK_E_NOMEM;
	e->symcap = cap;
	e->heapcap = cap * 3;
	return 0;
}

/* ---- character tests on UTF-8 ---- */

static unsigned cls_first(const char *s, size_t n)
{
	size_t l;
	return n ? tok_uc(tok_u8dec((const unsigned char *)s, &l)) : 0;
}

static unsigned cls_last(const char *s, size_t n)
{
	size_t j = n, l;
	if (!n)
		return 0;
	j--;
	while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80)
		j--;
	return tok_uc(tok_u8dec((const unsigned char *)s + j, &l));
}

/* ---- added tokens (HF AddedVocabulary::find_matches) ---- */

static int find_added(tk_encoder_t *e, const struct tok_aset *set, const char *s, size_t n,
		      struct segvec *out)
{
	const struct tk_tokenizer *t = e->t;
	const unsigned char *u = (const unsigned char *)s;
	size_t start_offset = 0, pos = 0;
	int rc;
	out->n = 0;
	if (!n)
		return 0;
	if (!set->n)
		return seg_push(out, 0, n, -1);
	while (pos < n) {
		const struct tok_added *tok = NULL;
		size_t ms = 0;
		for (size_t i = pos; i < n && !tok; i++) {
			if (!set->any[u[i]])
				continue;
			for (uint32_t k = set->start[u[i]]; k < set->start[u[i] + 1]; k++) {
				const struct tok_added *a = &t->added[set->idx[k]];
				const char *p = set == &t->raw_set ? a->content : a->pat;
				size_t pn = set == &t->raw_set ? a->n : a->patn;
				if (pn <= n - i && !memcmp(s + i, p, pn)) {
					tok = a;
					ms = i;
					break;
				}
			}
		}
		if (!tok)
			break;
		size_t me = ms + (set == &t->raw_set ? tok->n : tok->patn);
		pos = me;
		if (tok->single_word) {
			int start_space = ms == 0 || !(cls_last(s, ms) & TK_UC_RW);
			int stop_space = me == n || !(cls_first(s + me, n - me) & TK_UC_RW);
			if (!start_space || !stop_space)
				continue;
		}
		if (tok->lstrip) {
			size_t ns = ms;
			while (ns > 0 && (cls_last(s, ns) & TK_UC_S)) {
				ns--;
				while (ns > 0 && (u[ns] & 0xC0) == 0x80)
					ns--;
			}
			ms = ns > start_offset ? ns : start_offset;
		}
		if (tok->rstrip) {
			while (me < n && (cls_first(s + me, n - me) & TK_UC_S))
				me += tok_u8len(u[me]);
		}
		if (start_offset < ms && (rc = seg_push(out, start_offset, ms, -1)))
			return rc;
		if ((rc = seg_push(out, ms, me, tok->id)))
			return rc;
		start_offset = me;
	}
	if (start_offset != n)
		return seg_push(out, start_offset, n, -1);
	return 0;
}

/* ---- BPE ---- */

/* Merges a short word in place: repeatedly the lowest-ranked adjacent pair,
 * leftmost first (what HF's heap does). */
static size_t merge_small(tk_encoder_t *e, size_t n)
{
	const struct tok_mmap *m = &e->t->merges;
	uint32_t *a = e->sym, *rk = e->rk, *nid = e->nid;
	for (size_t i = 0; i + 1 < n; i++)
		if (!tok_mmap_get(m, a[i], a[i + 1], &rk[i], &nid[i]))
			rk[i] = UINT32_MAX;
	while (n > 1) {
		uint32_t best = UINT32_MAX;
		size_t bi = 0;
		for (size_t i = 0; i + 1 < n; i++)
			if (rk[i] < best) {
				best = rk[i];
				bi = i;
			}
		if (best == UINT32_MAX)
			break;
		a[bi] = nid[bi];
		if (n - bi > 2) {
			memmove(a + bi + 1, a + bi + 2, (n - bi - 2) * sizeof(*a));
			if (n - bi > 3) {
				memmove(rk + bi + 1, rk + bi + 2, (n - bi - 3) * sizeof(*rk));
				memmove(nid + bi + 1, nid + bi + 2, (n - bi - 3) * sizeof(*nid));
			}
		}
		n--;
		if (bi + 1 < n && !tok_mmap_get(m, a[bi], a[bi + 1], &rk[bi], &nid[bi]))
			rk[bi] = UINT32_MAX;
		if (bi > 0 && !tok_mmap_get(m, a[bi - 1], a[bi], &rk[bi - 1], &nid[bi - 1]))
			rk[bi - 1] = UINT32_MAX;
	}
	return n;
}

static int hless(const struct hent *x, const struct hent *y)
{
	return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static void hpush(struct hent *h, size_t *n, struct hent v)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!hless(&v, &h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = v;
}

static struct hent hpop(struct hent *h, size_t *n)
{
	struct hent top = h[0], v = h[--(*n)];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && hless(&h[c + 1], &h[c]))
			c++;
		if (!hless(&h[c], &v))
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = v;
	return top;
}

/* HF's Word::merge_all (without dropout), for long words. */
static size_t merge_heap(tk_encoder_t *e, size_t n)
{
	const struct tok_mmap *m = &e->t->merges;
	uint32_t *c = e->sym, *alive = e->rk, rank, id;
	int32_t *prev = e->prev, *next = e->next;
	struct hent *h = e->heap;
	size_t hn = 0;
	for (size_t i = 0; i < n; i++) {
		prev[i] = (int32_t)i - 1;
		next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
		alive[i] = 1;
	}
	for (size_t i = 0; i + 1 < n; i++)
		if (tok_mmap_get(m, c[i], c[i + 1], &rank, &id))
			hpush(h, &hn, (struct hent){ rank, (uint32_t)i, id });
	while (hn) {
		struct hent top = hpop(h, &hn);
		size_t p = top.pos;
		if (!alive[p] || next[p] < 0)
			continue;
		size_t q = (size_t)next[p];
		if (!tok_mmap_get(m, c[p], c[q], &rank, &id) || id != top.id)
			continue;
		c[p] = top.id;
		alive[q] = 0;
		next[p] = next[q];
		if (next[q] >= 0)
			prev[next[q]] = (int32_t)p;
		if (prev[p] >= 0 && tok_mmap_get(m, c[prev[p]], c[p], &rank, &id))
			hpush(h, &hn, (struct hent){ rank, (uint32_t)prev[p], id });
		if (next[p] >= 0 && tok_mmap_get(m, c[p], c[next[p]], &rank, &id))
			hpush(h, &hn, (struct hent){ rank, (uint32_t)p, id });
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (alive[i])
			c[k++] = c[i];
	return k;
}

/* Builds the initial symbols as HF's BPE::merge_word does for the string w
 * (in the vocabulary's alphabet). */
static int word_symbols(tk_encoder_t *e, const char *w, size_t wn, size_t *nsym)
{
	const struct tk_tokenizer *t = e->t;
	const unsigned char *u = (const unsigned char *)w;
	int64_t unk = -1;
	size_t k = 0;
	int rc;
	if ((rc = sym_reserve(e, wn * 4 + 8)))
		return rc;
	for (size_t i = 0; i < wn;) {
		size_t l = tok_u8len(u[i]);
		int first = i == 0, last = i + l >= wn;
		const char *key = w + i;
		size_t keyn = l;
		uint32_t id;
		if ((!first && t->prefix) || (last && t->suffix)) {
			e->kbuf.len = 0;
			if ((!first && t->prefix &&
			     (rc = tk_buf_append(&e->kbuf, t->prefix, t->prefix_n))) ||
			    (rc = tk_buf_append(&e->kbuf, w + i, l)) ||
			    (last && t->suffix &&
			     (rc = tk_buf_append(&e->kbuf, t->suffix, t->suffix_n))))
				return rc;
			key = e->kbuf.data;
			keyn = e->kbuf.len;
			if ((rc = sym_reserve(e, k + keyn + 2)))
				return rc;
		}
		i += l;
		if (tok_smap_get(&t->vocab, key, keyn, &id)) {
			if (unk >= 0) {
				e->sym[k++] = (uint32_t)unk;
				unk = -1;
			}
			e->sym[k++] = id;
			continue;
		}
		if (t->byte_fallback) {
			size_t j;
			for (j = 0; j < keyn; j++)
				if (t->fallback_id[(unsigned char)key[j]] < 0)
					break;
			if (j == keyn) {
				for (j = 0; j < keyn; j++)
					e->sym[k++] = (uint32_t)t->fallback_id[(unsigned char)key[j]];
				continue;
			}
		}
		if (t->has_unk) {
			if (t->unk_id < 0)
				return TK_E_FORMAT;
			if (unk >= 0 && !t->fuse_unk)
				e->sym[k++] = (uint32_t)unk;
			unk = t->unk_id;
		}
	}
	if (unk >= 0)
		e->sym[k++] = (uint32_t)unk;
	*nsym = k;
	return 0;
}

static int bpe(tk_encoder_t *e, const char *s, size_t n)
{
	const struct tk_tokenizer *t = e->t;
	const unsigned char *u = (const unsigned char *)s;
	size_t k = 0;
	int rc, slow = !t->byte_level || t->prefix || t->suffix;
	if ((rc = sym_reserve(e, n + 8)))
		return rc;
	if (!slow) {
		for (size_t i = 0; i < n; i++) {
			int32_t id = t->byte_id[u[i]];
			if (id < 0) {
				slow = 1;
				break;
			}
			e->sym[k++] = (uint32_t)id;
		}
	}
	if (slow) {
		if (t->byte_level) {
			/* the byte-level string HF would see */
			e->wbuf.len = 0;
			if ((rc = tk_buf_reserve(&e->wbuf, n * 2)))
				return rc;
			for (size_t i = 0; i < n; i++) {
				char enc[4];
				size_t l = tok_u8enc(tok_byte_char(u[i]), enc);
				tk_buf_append(&e->wbuf, enc, l);
			}
			rc = word_symbols(e, e->wbuf.data, e->wbuf.len, &k);
		} else {
			rc = word_symbols(e, s, n, &k);
		}
		if (rc)
			return rc;
	}
	if (k > 1 && t->merges.n)
		k = k <= SMALL_WORD ? merge_small(e, k) : merge_heap(e, k);
	for (size_t i = 0; i < k; i++)
		if ((rc = tk_ids_push(e->out, e->sym[i])))
			return rc;
	return 0;
}

static int model_tokenize(tk_encoder_t *e, const char *s, size_t n)
{
	const struct tk_tokenizer *t = e->t;
	uint32_t id;
	if (t->ignore_merges && tok_smap_get(t->byte_level ? &t->raw : &t->vocab, s, n, &id))
		return tk_ids_push(e->out, id);
	if (n > CACHE_MAX_KEY)
		return bpe(e, s, n);
	uint64_t h = tok_hash(s, n);
	size_t i = (size_t)h & (CACHE_SLOTS - 1);
	while (e->slot[i]) {
		const struct cent *c = &e->ent[e->slot[i] - 1];
		if (c->h == h && c->klen == n && !memcmp(e->keys + c->koff, s, n)) {
			struct tk_ids *o = e->out;
			if (o->n + c->nids > o->cap) {
				for (size_t j = 0; j < c->nids; j++) {
					int rc = tk_ids_push(o, e->ids[c->ioff + j]);
					if (rc)
						return rc;
				}
				return 0;
			}
			if (c->nids) /* none: o->v may still be NULL */
				memcpy(o->v + o->n, e->ids + c->ioff, c->nids * sizeof(uint32_t));
			o->n += c->nids;
			return 0;
		}
		i = (i + 1) & (CACHE_SLOTS - 1);
	}
	size_t n0 = e->out->n;
	int rc = bpe(e, s, n);
	if (rc)
		return rc;
	size_t nids = e->out->n - n0;
	if (nids > 0xFFFF)
		return 0;
	if (e->nent == CACHE_MAX_ENT || e->nkeys + n > CACHE_KEY_BYTES ||
	    e->nids + nids > CACHE_IDS) {
		memset(e->slot, 0, CACHE_SLOTS * sizeof(*e->slot));
		e->nent = e->nkeys = e->nids = 0;
		i = (size_t)h & (CACHE_SLOTS - 1);
	}
	struct cent *c = &e->ent[e->nent];
	c->h = h;
	c->koff = (uint32_t)e->nkeys;
	c->klen = (uint16_t)n;
	c->ioff = (uint32_t)e->nids;
	c->nids = (uint16_t)nids;
	memcpy(e->keys + e->nkeys, s, n);
	if (nids) /* a piece can give no ids (an empty vocab): out->v may be NULL */
		memcpy(e->ids + e->nids, e->out->v + n0, nids * sizeof(uint32_t));
	e->nkeys += n;
	e->nids += nids;
	e->slot[i] = (uint32_t)(++e->nent);
	return 0;
}

/* ---- pre-tokenizers ---- */

static int pt_run(tk_encoder_t *e, size_t st, const char *s, size_t n, int first);

/* HF NormalizedString::split: applies the behavior to the match list in
 * sv (covering [0, n)) and runs the next stage on what is kept. */
static int emit_spans(tk_encoder_t *e, size_t st, const char *s, int first, int behavior)
{
	struct spanvec *v = &e->sv[st];
	size_t w = 0, n = v->n;
	int prev = 0, rc;
	switch (behavior) {
	case TOK_B_ISOLATED:
		for (size_t i = 0; i < n; i++)
			v->v[i].m = 0;
		w = n;
		break;
	case TOK_B_REMOVED:
		w = n;
		break;
	case TOK_B_CONTIG:
	case TOK_B_PREV:
		for (size_t i = 0; i < n; i++) {
			struct span x = v->v[i];
			int merge = behavior == TOK_B_CONTIG ? x.m == prev : x.m && !prev;
			if (merge && w > 0)
				v->v[w - 1].e = x.e;
			else
				v->v[w++] = (struct span){ x.s, x.e, 0 };
			prev = x.m;
		}
		break;
	case TOK_B_NEXT: {
		size_t r = n;
		for (size_t i = n; i-- > 0;) {
			struct span x = v->v[i];
			if (x.m && !prev && r < n)
				v->v[r].s = x.s;
			else
				v->v[--r] = (struct span){ x.s, x.e, 0 };
			prev = x.m;
		}
		memmove(v->v, v->v + r, (n - r) * sizeof(*v->v));
		w = n - r;
		break;
	}
	}
	v->n = w;
	for (size_t i = 0; i < w; i++) {
		struct span x = e->sv[st].v[i];
		if (x.m)
			continue;
		if ((rc = pt_run(e, st + 1, s + x.s, x.e - x.s, first && x.s == 0)))
			return rc;
	}
	return 0;
}

/* Match list of a per-character predicate (HF's Pattern for Fn(char)). */
enum { PRED_NUMERIC, PRED_PUNCT, PRED_CHAR };

static int char_matches(struct spanvec *v, const char *s, size_t n, int pred, uint32_t want)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t last = 0;
	int rc;
	v->n = 0;
	for (size_t i = 0; i < n;) {
		size_t l;
		uint32_t cp = tok_u8dec(u + i, &l);
		int hit;
		if (pred == PRED_NUMERIC)
			hit = (tok_uc(cp) & TK_UC_N) != 0;
		else if (pred == PRED_PUNCT)
			hit = (cp < 0x80 && cp > 0x20 && cp < 0x7F && !(tok_uc(cp) & TK_UC_W)) ||
			      (cp < 0x80 && cp == '_') || (tok_uc(cp) & TK_UC_P);
		else
			hit = cp == want;
		if (hit) {
			if (last < i && (rc = span_push(v, last, i, 0)))
				return rc;
			if ((rc = span_push(v, i, i + l, 1)))
				return rc;
			last = i + l;
		}
		i += l;
	}
	if (last < n)
		return span_push(v, last, n, 0);
	return 0;
}

static int regex_matches(tk_encoder_t *e, struct spanvec *v, const struct tok_regex *rx,
			 const char *s, size_t n, int invert)
{
	struct tok_rx_iter it;
	size_t ms, me, prev = 0;
	int rc;
	v->n = 0;
	tok_rx_iter_init(&it, rx, e->md, s, n);
	while ((rc = tok_rx_next(&it, &ms, &me)) > 0) {
		if (prev != ms && (rc = span_push(v, prev, ms, invert)))
			return rc;
		if ((rc = span_push(v, ms, me, !invert)))
			return rc;
		prev = me;
	}
	if (rc < 0)
		return rc;
	if (prev != n)
		return span_push(v, prev, n, invert);
	return 0;
}

static int pt_run(tk_encoder_t *e, size_t st, const char *s, size_t n, int first)
{
	const struct tk_tokenizer *t = e->t;
	int rc;
	if (!n)
		return 0;
	if (st == t->npt)
		return model_tokenize(e, s, n);
	const struct tok_pretok *p = &t->pt[st];
	struct tk_buf *b = &e->sbuf[st];
	const unsigned char *u = (const unsigned char *)s;
	switch (p->type) {
	case TOK_P_BYTELEVEL:
		if (p->add_prefix_space && s[0] != ' ') {
			b->len = 0;
			if ((rc = tk_buf_append(b, " ", 1)) || (rc = tk_buf_append(b, s, n)))
				return rc;
			s = b->data;
			n = b->len;
		}
		if (!p->use_regex)
			return pt_run(e, st + 1, s, n, first);
		for (size_t pos = 0; pos < n;) {
			size_t end = tok_scan_gpt2(s, n, pos);
			if ((rc = pt_run(e, st + 1, s + pos, end - pos, first && pos == 0)))
				return rc;
			pos = end;
		}
		return 0;
	case TOK_P_SPLIT:
		if (p->behavior == TOK_B_ISOLATED && p->rx.kind >= TOK_RX_GPT2) {
			for (size_t pos = 0; pos < n;) {
				size_t end = p->rx.kind == TOK_RX_GPT2
					? tok_scan_gpt2(s, n, pos)
					: tok_scan_llama3(s, n, pos, p->rx.kind == TOK_RX_QWEN2 ? 1 : 3);
				if ((rc = pt_run(e, st + 1, s + pos, end - pos, first && pos == 0)))
					return rc;
				pos = end;
			}
			return 0;
		}
		if ((rc = regex_matches(e, &e->sv[st], &p->rx, s, n, p->invert)))
			return rc;
		return emit_spans(e, st, s, first, p->behavior);
	case TOK_P_METASPACE: {
		int starts = s[0] == ' ' || (n >= (size_t)p->repl_n && !memcmp(s, p->repl, p->repl_n));
		int prepend = p->prepend == TOK_PREPEND_ALWAYS ? !starts
			      : p->prepend == TOK_PREPEND_FIRST ? !starts && first : 0;
		b->len = 0;
		if ((rc = tk_buf_reserve(b, n * 3 + 4)))
			return rc;
		if (prepend)
			tk_buf_append(b, p->repl, p->repl_n);
		for (size_t i = 0; i < n;) {
			const char *sp = memchr(s + i, ' ', n - i);
			size_t j = sp ? (size_t)(sp - s) : n;
			if ((rc = tk_buf_append(b, s + i, j - i)))
				return rc;
			if (sp && (rc = tk_buf_append(b, p->repl, p->repl_n)))
				return rc;
			i = sp ? j + 1 : n;
		}
		s = b->data;
		n = b->len;
		if (!p->split)
			return pt_run(e, st + 1, s, n, first);
		size_t l;
		if ((rc = char_matches(&e->sv[st], s, n, PRED_CHAR,
				       tok_u8dec((const unsigned char *)p->repl, &l))))
			return rc;
		return emit_spans(e, st, s, first, TOK_B_NEXT);
	}
	case TOK_P_DIGITS:
		if ((rc = char_matches(&e->sv[st], s, n, PRED_NUMERIC, 0)))
			return rc;
		return emit_spans(e, st, s, first, p->individual ? TOK_B_ISOLATED : TOK_B_CONTIG);
	case TOK_P_PUNCT:
		if ((rc = char_matches(&e->sv[st], s, n, PRED_PUNCT, 0)))
			return rc;
		return emit_spans(e, st, s, first, p->behavior);
	case TOK_P_WHITESPACE:
	case TOK_P_WSSPLIT:
		for (size_t i = 0; i < n;) {
			size_t l;
			unsigned k = tok_uc(tok_u8dec(u + i, &l));
			if (k & TK_UC_S) {
				i += l;
				continue;
			}
			int word = p->type == TOK_P_WHITESPACE && (k & TK_UC_RW);
			size_t j = i + l;
			while (j < n) {
				unsigned k2 = tok_uc(tok_u8dec(u + j, &l));
				if ((k2 & TK_UC_S) ||
				    (p->type == TOK_P_WHITESPACE && !!(k2 & TK_UC_RW) != word))
					break;
				j += l;
			}
			if ((rc = pt_run(e, st + 1, s + i, j - i, first && i == 0)))
				return rc;
			i = j;
		}
		return 0;
	}
	return TK_E_INVAL;
}

/* ---- encode ---- */

static int do_text(tk_encoder_t *e, const char *s, size_t n, int first)
{
	const struct tk_tokenizer *t = e->t;
	int lost = 0, rc;
	if (t->nnorm) {
		if ((rc = tok_normalize(t, e->md, s, n, &e->norm, &e->tmp, &lost)))
			return rc;
		s = e->norm.data;
		n = e->norm.len;
		first = first && !lost;
	}
	if (!t->norm_set.n)
		return pt_run(e, 0, s, n, first);
	if ((rc = find_added(e, &t->norm_set, s, n, &e->nrm)))
		return rc;
	for (size_t i = 0; i < e->nrm.n; i++) {
		struct seg g = e->nrm.v[i];
		if (g.id >= 0)
			rc = tk_ids_push(e->out, (uint32_t)g.id);
		else
			rc = pt_run(e, 0, s + g.s, g.e - g.s, first && g.s == 0);
		if (rc)
			return rc;
	}
	return 0;
}

int tk_encode(tk_encoder_t *e, const char *text, size_t len, unsigned flags,
	      struct tk_ids *out)
{
	const struct tk_tokenizer *t = e->t;
	size_t n0 = out->n;
	int rc = 0;
	if (tk_utf8_valid(text, len) != len)
		return TK_E_FORMAT;
	e->out = out;
	if (flags & TK_ENCODE_ADD_SPECIAL)
		for (size_t i = 0; i < t->pre.n && !rc; i++)
			rc = tk_ids_push(out, t->pre.v[i]);
	if (!rc)
		rc = find_added(e, &t->raw_set, text, len, &e->raw);
	for (size_t i = 0; i < e->raw.n && !rc; i++) {
		struct seg g = e->raw.v[i];
		if (g.id >= 0)
			rc = tk_ids_push(out, (uint32_t)g.id);
		else
			rc = do_text(e, text + g.s, g.e - g.s, g.s == 0);
	}
	if (flags & TK_ENCODE_ADD_SPECIAL)
		for (size_t i = 0; i < t->post.n && !rc; i++)
			rc = tk_ids_push(out, t->post.v[i]);
	if (rc)
		out->n = n0;
	return rc;
}

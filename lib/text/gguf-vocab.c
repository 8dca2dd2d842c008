/* gguf-vocab.c - a GGUF file's tokenizer.ggml.* vocabulary as a Hugging
 * Face tokenizer.json and tokenizer_config.json.
 *
 * The result is the tokenizer that the model's original tokenizer.json
 * describes, so the tk tokenizer (and HF tokenizers) give the ids that
 * llama.cpp's test vectors hold:
 *
 *  - model "gpt2": byte-level BPE.  Tokens are spelled in GPT-2's byte
 *    alphabet (a token with other characters is respelled from its UTF-8
 *    bytes, as transformers does), merges come from tokenizer.ggml.merges.
 *    The pre-tokenizer follows tokenizer.ggml.pre as llama.cpp's
 *    llama-vocab.cpp does: the GPT-2 regex (gpt-2, mpt, olmo...; also for
 *    "default", as transformers does), the Llama-3 regex with ignore_merges
 *    (llama-bpe, llama3...), the Qwen2 regex (qwen2...), single digits then
 *    the GPT-2 regex (smollm, starcoder...).
 *  - model "llama": SentencePiece BPE with byte fallback, spaces as U+2581
 *    with one prepended (unless tokenizer.ggml.add_space_prefix is false),
 *    as Llama-2's tokenizer.json; merges from tokenizer.ggml.merges or,
 *    when absent, recovered from the scores exactly as transformers'
 *    generate_merges does (every split of a token into two vocabulary
 *    tokens, best score first, then longer left and right pieces).
 *
 * Only "llama" has an unk_token in the BPE model: byte-level BPE drops a
 * character its vocabulary lacks, as llama.cpp and transformers do.
 * Control tokens (token type 3) and the bos/eos/unk/pad tokens become
 * special added tokens, user-defined ones (type 4) plain added tokens.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "text/tokenizer-int.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };


enum pre_kind { PRE_GPT2, PRE_LLAMA3, PRE_LLAMA3_MERGES, PRE_QWEN2, PRE_DIGITS_GPT2 };

static const struct {
	const char *name;
	int kind;
} pre_types[] = {
	{ "default", PRE_GPT2 },       { "gpt-2", PRE_GPT2 },          { "gpt2", PRE_GPT2 },
	{ "mpt", PRE_GPT2 },           { "olmo", PRE_GPT2 },           { "jais", PRE_GPT2 },
	{ "trillion", PRE_GPT2 },      { "granite-docling", PRE_GPT2 },
	{ "llama3", PRE_LLAMA3 },      { "llama-v3", PRE_LLAMA3 },     { "llama-bpe", PRE_LLAMA3 },
	{ "falcon3", PRE_LLAMA3 },     { "falcon-h1", PRE_LLAMA3 },    { "pixtral", PRE_LLAMA3 },
	{ "midm-2.0", PRE_LLAMA3 },    { "lfm2", PRE_LLAMA3 },
	{ "dbrx", PRE_LLAMA3_MERGES }, { "smaug-bpe", PRE_LLAMA3_MERGES },
	{ "qwen2", PRE_QWEN2 },        { "deepseek-r1-qwen", PRE_QWEN2 }, { "stablelm2", PRE_QWEN2 },
	{ "megrez", PRE_QWEN2 },
	{ "smollm", PRE_DIGITS_GPT2 }, { "starcoder", PRE_DIGITS_GPT2 }, { "refact", PRE_DIGITS_GPT2 },
	{ "command-r", PRE_DIGITS_GPT2 }, { "codeshell", PRE_DIGITS_GPT2 },
	{ "exaone", PRE_DIGITS_GPT2 }, { "minerva-7b", PRE_DIGITS_GPT2 },
};

struct vb {
	const tk_gguf_t *g;
	const char *path;
	struct tk_diag *d;
	uint64_t n;                    /* tokens */
	char **tok;                    /* spelled as in tokenizer.json */
	size_t *tlen;
	int32_t *type;                 /* token types (TT_NORMAL when absent) */
	const float *scores;           /* in the file, may be unaligned: read with memcpy */
	int64_t special[4];            /* bos, eos, unk, pad (-1 if none) */
	struct tok_smap ids;           /* spelling -> id (the last of duplicates, as a Python dict) */
	struct tok_smap first;         /* spelling -> the first id with it */
};

static int nomem(struct vb *v)
{
	return tk_diag_set(v->d, TK_E_NOMEM, v->path, -1, "out of memory");
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t u8_valid_len(const unsigned char *s, size_t n)
{
	size_t l = tok_u8len(s[0]);
	if (s[0] >= 0x80 && (s[0] < 0xC2 || s[0] > 0xF4))
		return 0;
	if (l > n)
		return 0;
	for (size_t i = 1; i < l; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if (l == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0)))
		return 0;
	if (l == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90)))
		return 0;
	return l;
}

/* Whether the n bytes at s are UTF-8 made only of GPT-2 byte-alphabet
 * characters. */
static int in_byte_alphabet(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t l = u8_valid_len(p + i, n - i);
		if (!l)
			return 0;
		if (tok_char_byte(tok_u8dec(p + i, &l)) < 0)
			return 0;
		i += l;
	}
	return 1;
}

static int spell(struct vb *v, uint64_t i, const struct tk_gguf_str *s, int byte_level)
{
	struct tk_buf b = { 0 };
	if (byte_level && !in_byte_alphabet(s->p, s->n)) {
		for (uint64_t k = 0; k < s->n; k++) {
			char enc[4];
			size_t l = tok_u8enc(tok_byte_char((unsigned char)s->p[k]), enc);
			if (tk_buf_append(&b, enc, l))
				goto oom;
		}
	} else {
		if (memchr(s->p, 0, s->n) || tk_utf8_valid(s->p, s->n) != s->n)
			return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
					   "token %llu is not valid UTF-8 text", (unsigned long long)i);
		if (tk_buf_append(&b, s->p, s->n))
			goto oom;
	}
	if (tk_buf_reserve(&b, 1))
		goto oom;
	b.data[b.len] = '\0';
	v->tok[i] = b.data;
	v->tlen[i] = b.len;
	return 0;
oom:
	tk_buf_free(&b);
	return nomem(v);
}

static int array_of(struct vb *v, const char *key, int want_string, const struct tk_gguf_kv **out)
{
	const struct tk_gguf_kv *kv = tk_gguf_find(v->g, key);
	*out = NULL;
	if (!kv)
		return 0;
	int ok = kv->type == TK_GGUF_ARRAY &&
		 (want_string ? kv->arr_type == TK_GGUF_STRING : kv->arr_type != TK_GGUF_STRING);
	if (!ok || (kv->n != v->n && strcmp(key, "tokenizer.ggml.merges") &&
		    strcmp(key, "tokenizer.ggml.tokens")))
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
				   "%s is not an array of %s, one per token", key,
				   want_string ? "strings" : "numbers");
	*out = kv;
	return 0;
}

static int64_t elem_int(const struct tk_gguf_kv *kv, uint64_t i)
{
	const uint8_t *p = kv->data;
	switch (kv->arr_type) {
	case TK_GGUF_U8: return p[i];
	case TK_GGUF_I8: return (int8_t)p[i];
	case TK_GGUF_U16: case TK_GGUF_I16: {
		uint16_t x = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
		return kv->arr_type == TK_GGUF_I16 ? (int16_t)x : x;
	}
	case TK_GGUF_U32: case TK_GGUF_I32: {
		uint32_t x;
		memcpy(&x, p + 4 * i, 4);
		return kv->arr_type == TK_GGUF_I32 ? (int32_t)x : (int64_t)x;
	}
	case TK_GGUF_U64: case TK_GGUF_I64: {
		int64_t x;
		memcpy(&x, p + 8 * i, 8);
		return x;
	}
	}
	return 0;
}

static int load_vocab(struct vb *v, int byte_level)
{
	const struct tk_gguf_kv *toks, *types, *scores;
	int rc;
	if ((rc = array_of(v, "tokenizer.ggml.tokens", 1, &toks)))
		return rc;
	if (!toks || !toks->n)
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
				   "no tokenizer.ggml.tokens: the file has no vocabulary");
	if (toks->n > (1u << 30))
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1, "%llu tokens is too many",
				   (unsigned long long)toks->n);
	v->n = toks->n;
	if ((rc = array_of(v, "tokenizer.ggml.token_type", 0, &types)) ||
	    (rc = array_of(v, "tokenizer.ggml.scores", 0, &scores)))
		return rc;
	if (types && (types->arr_type == TK_GGUF_F32 || types->arr_type == TK_GGUF_F64))
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
				   "tokenizer.ggml.token_type is not an array of integers");
	if (scores && scores->arr_type != TK_GGUF_F32)
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
				   "tokenizer.ggml.scores is not an array of f32");
	v->scores = scores ? scores->data : NULL;
	v->tok = calloc(v->n, sizeof(*v->tok));
	v->tlen = calloc(v->n, sizeof(*v->tlen));
	v->type = calloc(v->n, sizeof(*v->type));
	if (!v->tok || !v->tlen || !v->type)
		return nomem(v);
	for (uint64_t i = 0; i < v->n; i++) {
		if ((rc = spell(v, i, &toks->strs[i], byte_level)))
			return rc;
		v->type[i] = types ? (int32_t)elem_int(types, i) : TT_NORMAL;
		if (tok_smap_put(&v->ids, v->tok[i], v->tlen[i], (uint32_t)i, 1) ||
		    tok_smap_put(&v->first, v->tok[i], v->tlen[i], (uint32_t)i, 0))
			return nomem(v);
	}
	static const char *const keys[4] = {
		"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
		"tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"
	};
	for (int k = 0; k < 4; k++) {
		if ((rc = tk_gguf_get_int(v->g, keys[k], -1, &v->special[k], v->d)))
			return rc;
		if (v->special[k] < -1 || v->special[k] >= (int64_t)v->n)
			return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
					   "%s %lld is not a token id (the vocabulary has %llu)", keys[k],
					   (long long)v->special[k], (unsigned long long)v->n);
	}
	return 0;
}

/* ---- merges ---- */

static int add_pair(cJSON *merges, const char *a, size_t an, const char *b, size_t bn)
{
	cJSON *pair = cJSON_CreateArray();
	char *x = strndup(a, an), *y = strndup(b, bn);
	cJSON *ja = x ? cJSON_CreateString(x) : NULL, *jb = y ? cJSON_CreateString(y) : NULL;
	free(x);
	free(y);
	if (!pair || !ja || !jb || !cJSON_AddItemToArray(pair, ja) ||
	    (ja = NULL, !cJSON_AddItemToArray(pair, jb)) || (jb = NULL, !cJSON_AddItemToArray(merges, pair))) {
		cJSON_Delete(pair);
		cJSON_Delete(ja);
		cJSON_Delete(jb);
		return TK_E_NOMEM;
	}
	return 0;
}

static int merges_from_file(struct vb *v, const struct tk_gguf_kv *kv, cJSON *merges)
{
	for (uint64_t i = 0; i < kv->n; i++) {
		const struct tk_gguf_str *s = &kv->strs[i];
		const char *sp = memchr(s->p, ' ', s->n);
		if (!sp || memchr(sp + 1, ' ', s->n - (size_t)(sp + 1 - s->p)) || memchr(s->p, 0, s->n))
			return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
					   "tokenizer.ggml.merges entry %llu is not two tokens separated by a space",
					   (unsigned long long)i + 1);
		if (add_pair(merges, s->p, (size_t)(sp - s->p), sp + 1,
			     s->n - (size_t)(sp + 1 - s->p)))
			return nomem(v);
	}
	return 0;
}

struct cand {
	uint32_t l, r;     /* token ids of the pieces */
	uint32_t split;    /* byte offset of the split in token tok */
	uint32_t tok;
	double score;
	uint32_t ll, rl;   /* lengths in code points */
	uint64_t seq;      /* order of generation (stable sort) */
};

static int by_ids(const void *x, const void *y)
{
	const struct cand *a = x, *b = y;
	if (a->l != b->l)
		return a->l < b->l ? -1 : 1;
	return a->r < b->r ? -1 : a->r > b->r;
}

static int cand_desc;

static int by_score(const void *x, const void *y)
{
	const struct cand *a = x, *b = y;
	int c = 0;
	if (a->score != b->score)
		c = a->score < b->score ? -1 : 1;
	else if (a->ll != b->ll)
		c = a->ll < b->ll ? -1 : 1;
	else if (a->rl != b->rl)
		c = a->rl < b->rl ? -1 : 1;
	if (c)
		return cand_desc ? -c : c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static size_t cp_count(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xC0) != 0x80;
	return c;
}

/* transformers' generate_merges(vocab, vocab_scores): with scores, best
 * score first; without, by the merged token's id. */
static int merges_generated(struct vb *v, int use_scores, cJSON *merges)
{
	struct cand *c = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	for (uint64_t i = 0; i < v->n && !rc; i++) {
		uint32_t id, first;
		/* a dict iterates each key once, at its first place, with the last value */
		tok_smap_get(&v->ids, v->tok[i], v->tlen[i], &id);
		tok_smap_get(&v->first, v->tok[i], v->tlen[i], &first);
		if (first != i)
			continue;
		size_t start = n;
		double score = 0;
		if (use_scores) {
			float f;
			memcpy(&f, (const char *)v->scores + 4 * id, 4);
			score = f;
		} else {
			score = id;
		}
		const char *s = v->tok[i];
		size_t len = v->tlen[i];
		size_t lcp = 0, total = cp_count(s, len);
		for (size_t k = 1; k < len; k++) {
			if (((unsigned char)s[k - 1] & 0xC0) != 0x80)
				lcp++;
			if (((unsigned char)s[k] & 0xC0) == 0x80)
				continue;
			uint32_t l, r;
			if (!tok_smap_get(&v->ids, s, k, &l) || !tok_smap_get(&v->ids, s + k, len - k, &r))
				continue;
			if (tk_grow(&c, &cap, n + 1, sizeof(*c))) {
				rc = TK_E_NOMEM;
				break;
			}
			c[n++] = (struct cand){ l, r, (uint32_t)k, (uint32_t)i, score, (uint32_t)lcp,
						(uint32_t)(total - lcp), 0 };
		}
		if (n > start)
			qsort(c + start, n - start, sizeof(*c), by_ids);
	}
	for (size_t i = 0; i < n; i++)
		c[i].seq = i;
	cand_desc = use_scores;
	if (!rc && n)
		qsort(c, n, sizeof(*c), by_score);
	for (size_t i = 0; i < n && !rc; i++) {
		const char *s = v->tok[c[i].tok];
		rc = add_pair(merges, s, c[i].split, s + c[i].split, v->tlen[c[i].tok] - c[i].split);
	}
	free(c);
	return rc ? nomem(v) : 0;
}

/* ---- JSON helpers ---- */

static cJSON *obj_type(const char *type)
{
	cJSON *o = cJSON_CreateObject();
	if (o && !cJSON_AddStringToObject(o, "type", type)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *byte_level_pt(int use_regex)
{
	cJSON *o = obj_type("ByteLevel");
	if (o && (!cJSON_AddFalseToObject(o, "add_prefix_space") ||
		  !cJSON_AddTrueToObject(o, "trim_offsets") ||
		  !cJSON_AddBoolToObject(o, "use_regex", use_regex))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *seq(const char *type, const char *key, cJSON *a, cJSON *b, cJSON *c, cJSON *e)
{
	cJSON *o = obj_type(type), *list = cJSON_AddArrayToObject(o, key);
	cJSON *items[4] = { a, b, c, e };
	int ok = o && list;
	for (int i = 0; i < 4; i++) {
		if (!items[i])
			continue;
		if (ok && cJSON_AddItemToArray(list, items[i]))
			continue;
		ok = 0;
		cJSON_Delete(items[i]);
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *pattern(const char *kind, const char *s)
{
	cJSON *p = cJSON_CreateObject();
	if (p && !cJSON_AddStringToObject(p, kind, s)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

static cJSON *split_pt(const char *rx)
{
	cJSON *o = obj_type("Split"), *p = pattern("Regex", rx);
	if (!o || !p || !cJSON_AddItemToObject(o, "pattern", p) ||
	    (p = NULL, !cJSON_AddStringToObject(o, "behavior", "Isolated")) ||
	    !cJSON_AddFalseToObject(o, "invert")) {
		cJSON_Delete(o);
		cJSON_Delete(p);
		return NULL;
	}
	return o;
}

static cJSON *replace(const char *what, const char *with)
{
	cJSON *o = obj_type("Replace"), *p = pattern("String", what);
	if (!o || !p || !cJSON_AddItemToObject(o, "pattern", p) ||
	    (p = NULL, !cJSON_AddStringToObject(o, "content", with))) {
		cJSON_Delete(o);
		cJSON_Delete(p);
		return NULL;
	}
	return o;
}

static int pre_kind(struct vb *v, const char *pre, int *kind)
{
	for (size_t i = 0; i < sizeof(pre_types) / sizeof(pre_types[0]); i++)
		if (!strcmp(pre, pre_types[i].name)) {
			*kind = pre_types[i].kind;
			return 0;
		}
	return tk_diag_set(v->d, TK_E_UNSUPPORTED, v->path, -1,
			   "tokenizer.ggml.pre '%s' is not supported (known: gpt-2, llama-bpe, "
			   "llama3, qwen2, smollm, starcoder and their aliases)", pre);
}

#define SP "\xE2\x96\x81" /* U+2581, SentencePiece's space */

/* The added tokens, by id: the control and user-defined tokens and the
 * special ones (BOS, EOS, UNK, PAD). */
static int added_tokens(struct vb *v, cJSON *root)
{
	cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
	if (!added)
		return nomem(v);
	for (uint64_t i = 0; i < v->n; i++) {
		int special = v->type[i] == TT_CONTROL;
		for (int k = 0; k < 4; k++)
			special |= v->special[k] == (int64_t)i;
		if (!special && v->type[i] != TT_USER)
			continue;
		cJSON *a = cJSON_CreateObject();
		if (!a || !cJSON_AddItemToArray(added, a)) {
			cJSON_Delete(a);
			return nomem(v);
		}
		if (!cJSON_AddNumberToObject(a, "id", (double)i) ||
		    !cJSON_AddStringToObject(a, "content", v->tok[i]) ||
		    !cJSON_AddFalseToObject(a, "single_word") || !cJSON_AddFalseToObject(a, "lstrip") ||
		    !cJSON_AddFalseToObject(a, "rstrip") || !cJSON_AddFalseToObject(a, "normalized") ||
		    !cJSON_AddBoolToObject(a, "special", special))
			return nomem(v);
	}
	return 0;
}

/* SentencePiece's normalizer (spaces as SP, one prepended with
 * add_space), no pre-tokenizer, and the decoder back: new objects, NULL
 * for one that could not be made. */
static void spm_parts(int64_t add_space, cJSON **norm, cJSON **pt, cJSON **dec)
{
	cJSON *rep = replace(" ", SP);
	if (add_space) {
		cJSON *pp = obj_type("Prepend");
		if (pp && !cJSON_AddStringToObject(pp, "prepend", SP)) {
			cJSON_Delete(pp);
			pp = NULL;
		}
		*norm = pp && rep ? seq("Sequence", "normalizers", pp, rep, NULL, NULL) : NULL;
		if (!*norm && !(pp && rep)) {
			cJSON_Delete(pp);
			cJSON_Delete(rep);
		}
	} else {
		*norm = rep;
	}
	cJSON *strip = obj_type("Strip");
	if (strip && (!cJSON_AddStringToObject(strip, "content", " ") ||
		      !cJSON_AddNumberToObject(strip, "start", 1) ||
		      !cJSON_AddNumberToObject(strip, "stop", 0))) {
		cJSON_Delete(strip);
		strip = NULL;
	}
	if (!add_space) {
		cJSON_Delete(strip);
		strip = NULL;
	}
	*dec = seq("Sequence", "decoders", replace(SP, " "), obj_type("ByteFallback"),
		   obj_type("Fuse"), strip);
	*pt = cJSON_CreateNull();
}

/* A byte-level vocabulary's pre-tokenizer of kind (PRE_*), no normalizer,
 * and the byte-level decoder: new objects, NULL for one that could not be
 * made. */
static void byte_level_parts(int kind, cJSON **norm, cJSON **pt, cJSON **dec)
{
	switch (kind) {
	case PRE_GPT2:
		*pt = byte_level_pt(1);
		break;
	case PRE_DIGITS_GPT2: {
		cJSON *dg = obj_type("Digits");
		if (dg && !cJSON_AddTrueToObject(dg, "individual_digits")) {
			cJSON_Delete(dg);
			dg = NULL;
		}
		*pt = seq("Sequence", "pretokenizers", dg, byte_level_pt(1), NULL, NULL);
		break;
	}
	default:
		*pt = seq("Sequence", "pretokenizers",
			  split_pt(kind == PRE_QWEN2 ? tk_rx_qwen2 : tk_rx_llama3), byte_level_pt(0),
			  NULL, NULL);
	}
	*norm = cJSON_CreateNull();
	*dec = byte_level_pt(1);
}

/* The post-processor's "single" template: special token id (-1: none)
 * before or after the sequence $A (id -2), and special_tokens' entry for
 * it. */
static int template_item(struct vb *v, cJSON *single, cJSON *specials, int64_t id)
{
	if (id == -1)
		return 0;
	cJSON *it = cJSON_CreateObject(), *in = cJSON_CreateObject();
	const char *name = id >= 0 ? v->tok[id] : "A";
	if (!it || !in || !cJSON_AddItemToArray(single, it)) {
		cJSON_Delete(it);
		cJSON_Delete(in);
		return nomem(v);
	}
	if (!cJSON_AddItemToObject(it, id >= 0 ? "SpecialToken" : "Sequence", in)) {
		cJSON_Delete(in);
		return nomem(v);
	}
	if (!cJSON_AddStringToObject(in, "id", name) || !cJSON_AddNumberToObject(in, "type_id", 0))
		return nomem(v);
	if (id < 0 || cJSON_GetObjectItemCaseSensitive(specials, name))
		return 0;
	cJSON *sp = cJSON_AddObjectToObject(specials, name);
	cJSON *ids = sp ? cJSON_AddArrayToObject(sp, "ids") : NULL;
	cJSON *tl = sp ? cJSON_AddArrayToObject(sp, "tokens") : NULL;
	cJSON *x = cJSON_CreateNumber((double)id), *y = cJSON_CreateString(name);
	if (!sp || !cJSON_AddStringToObject(sp, "id", name) || !ids || !tl || !x || !y ||
	    !cJSON_AddItemToArray(ids, x) || (x = NULL, !cJSON_AddItemToArray(tl, y))) {
		cJSON_Delete(x);
		cJSON_Delete(y);
		return nomem(v);
	}
	return 0;
}

/* The "pair" template: the single one for $A, then again for $B with
 * type_id 1, as transformers' converters write it; tokenizers refuses a
 * TemplateProcessing without one. */
static int template_pair(struct vb *v, cJSON *post, const cJSON *single)
{
	cJSON *pair = cJSON_AddArrayToObject(post, "pair");
	if (!pair)
		return nomem(v);
	for (int half = 0; half < 2; half++)
		for (const cJSON *it = single->child; it; it = it->next) {
			cJSON *c = cJSON_Duplicate(it, 1);
			if (!c || !cJSON_AddItemToArray(pair, c)) {
				cJSON_Delete(c);
				return nomem(v);
			}
			cJSON *in = c->child; /* {"SpecialToken"|"Sequence": {"id", "type_id"}} */
			if (!half || !in)
				continue;
			cJSON_SetNumberHelper(cJSON_GetObjectItemCaseSensitive(in, "type_id"), 1);
			if (!strcmp(in->string, "Sequence") &&
			    !cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(in, "id"), "B"))
				return nomem(v);
		}
	return 0;
}

/* The post-processor: BOS (with add_bos) and EOS (with add_eos) around the
 * text. */
static int post_processor(struct vb *v, cJSON *root, int64_t add_bos, int64_t add_eos)
{
	cJSON *post = obj_type("TemplateProcessing");
	cJSON *single = post ? cJSON_AddArrayToObject(post, "single") : NULL;
	cJSON *specials = post ? cJSON_AddObjectToObject(post, "special_tokens") : NULL;
	int rc;
	if (!post || !cJSON_AddItemToObject(root, "post_processor", post)) {
		cJSON_Delete(post);
		return nomem(v);
	}
	if (!single || !specials)
		return nomem(v);
	if ((rc = template_item(v, single, specials, add_bos ? v->special[0] : -1)) ||
	    (rc = template_item(v, single, specials, -2)) ||
	    (rc = template_item(v, single, specials, add_eos ? v->special[1] : -1)))
		return rc;
	return template_pair(v, post, single);
}

/* The BPE model: its options, the vocabulary and the merges (from
 * tokenizer.ggml.merges, else recovered from the scores or the
 * vocabulary). */
static int bpe_model(struct vb *v, cJSON *root, int spm, int kind)
{
	int rc;
	cJSON *m = obj_type("BPE");
	if (!m || !cJSON_AddItemToObject(root, "model", m)) {
		cJSON_Delete(m);
		return nomem(v);
	}
	/* byte-level BPE has no unknown token: a character outside the vocabulary
	 * is dropped, as llama.cpp and transformers' GGUF tokenizer do */
	const char *unk = spm && v->special[2] >= 0 ? v->tok[v->special[2]] : NULL;
	if (!cJSON_AddNullToObject(m, "dropout") ||
	    !(unk ? cJSON_AddStringToObject(m, "unk_token", unk) : cJSON_AddNullToObject(m, "unk_token")) ||
	    !cJSON_AddNullToObject(m, "continuing_subword_prefix") ||
	    !cJSON_AddNullToObject(m, "end_of_word_suffix") ||
	    !cJSON_AddBoolToObject(m, "fuse_unk", spm) || !cJSON_AddBoolToObject(m, "byte_fallback", spm) ||
	    !cJSON_AddBoolToObject(m, "ignore_merges", !spm && kind == PRE_LLAMA3))
		return nomem(v);
	cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
	if (!vocab)
		return nomem(v);
	for (uint64_t i = 0; i < v->n; i++) {
		uint32_t id;
		/* one entry per spelling, with the last id, as a Python dict */
		tok_smap_get(&v->ids, v->tok[i], v->tlen[i], &id);
		if (id != i)
			continue;
		if (!cJSON_AddNumberToObject(vocab, v->tok[i], (double)i))
			return nomem(v);
	}
	cJSON *merges = cJSON_AddArrayToObject(m, "merges");
	const struct tk_gguf_kv *mk;
	if (!merges)
		return nomem(v);
	if ((rc = array_of(v, "tokenizer.ggml.merges", 1, &mk)))
		return rc;
	if (mk)
		return merges_from_file(v, mk, merges);
	if (spm && !v->scores)
		return tk_diag_set(v->d, TK_E_FORMAT, v->path, -1,
				   "neither tokenizer.ggml.merges nor tokenizer.ggml.scores: cannot "
				   "recover the merges");
	return merges_generated(v, spm, merges);
}

/* tokenizer_config.json: the special tokens, the chat template (as
 * transformers' GGUF loader keeps it) and whether BOS and EOS are added. */
static int tokenizer_config(struct vb *v, cJSON *cfg, int64_t add_bos, int64_t add_eos)
{
	static const char *const names[4] = { "bos_token", "eos_token", "unk_token", "pad_token" };
	const char *tmpl = NULL;
	int rc;
	for (int k = 0; k < 4; k++)
		if (v->special[k] >= 0 && !cJSON_AddStringToObject(cfg, names[k], v->tok[v->special[k]]))
			return nomem(v);
	if ((rc = tk_gguf_get_str(v->g, "tokenizer.chat_template", &tmpl, v->d)))
		return rc;
	if (tmpl && !cJSON_AddStringToObject(cfg, "chat_template", tmpl))
		return nomem(v);
	if (!cJSON_AddBoolToObject(cfg, "add_bos_token", add_bos != 0) ||
	    !cJSON_AddBoolToObject(cfg, "add_eos_token", add_eos != 0) ||
	    !cJSON_AddStringToObject(cfg, "tokenizer_class", "PreTrainedTokenizerFast"))
		return nomem(v);
	return 0;
}

/* tokenizer.json into root and tokenizer_config.json into cfg, for the
 * GGUF's tokenizer.ggml.model model ("llama": SentencePiece; else
 * byte-level BPE with the pre-tokenizer tokenizer.ggml.pre names).  The
 * keys go into root in tokenizer.json's order: added_tokens, normalizer,
 * pre_tokenizer, post_processor, decoder, model. */
static int build(struct vb *v, const char *model, cJSON *root, cJSON *cfg)
{
	int spm = !strcmp(model, "llama");
	const char *pre = NULL;
	int kind = PRE_GPT2, rc;
	int64_t add_bos, add_eos, add_space;
	if ((rc = tk_gguf_get_str(v->g, "tokenizer.ggml.pre", &pre, v->d)))
		return rc;
	if (!spm && (rc = pre_kind(v, pre ? pre : "default", &kind)))
		return rc;
	if ((rc = load_vocab(v, !spm)))
		return rc;
	if ((rc = tk_gguf_get_int(v->g, "tokenizer.ggml.add_bos_token", spm || kind == PRE_LLAMA3,
				  &add_bos, v->d)) ||
	    (rc = tk_gguf_get_int(v->g, "tokenizer.ggml.add_eos_token", 0, &add_eos, v->d)) ||
	    (rc = tk_gguf_get_int(v->g, "tokenizer.ggml.add_space_prefix", 1, &add_space, v->d)))
		return rc;
	if (add_bos && v->special[0] < 0)
		add_bos = 0;
	if (add_eos && v->special[1] < 0)
		add_eos = 0;
	if ((rc = added_tokens(v, root)))
		return rc;

	cJSON *norm = NULL, *pt = NULL, *dec = NULL;
	if (spm)
		spm_parts(add_space, &norm, &pt, &dec);
	else
		byte_level_parts(kind, &norm, &pt, &dec);
	if (!norm || !cJSON_AddItemToObject(root, "normalizer", norm)) {
		cJSON_Delete(norm);
		cJSON_Delete(pt);
		cJSON_Delete(dec);
		return nomem(v);
	}
	if (!pt || !cJSON_AddItemToObject(root, "pre_tokenizer", pt)) {
		cJSON_Delete(pt);
		cJSON_Delete(dec);
		return nomem(v);
	}
	if ((rc = post_processor(v, root, add_bos, add_eos))) {
		cJSON_Delete(dec);
		return rc;
	}
	if (!dec || !cJSON_AddItemToObject(root, "decoder", dec)) {
		cJSON_Delete(dec);
		return nomem(v);
	}
	if ((rc = bpe_model(v, root, spm, kind)))
		return rc;
	return tokenizer_config(v, cfg, add_bos, add_eos);
}

int tk_gguf_tokenizer_json(const tk_gguf_t *g, cJSON **tokenizer, cJSON **config,
			   struct tk_diag *d)
{
	struct vb v = { 0 };
	const char *model;
	int rc;
	*tokenizer = *config = NULL;
	v.g = g;
	v.path = tk_gguf_path(g);
	v.d = d;
	for (int k = 0; k < 4; k++)
		v.special[k] = -1;
	tok_uc_init();
	if ((rc = tk_gguf_get_str(g, "tokenizer.ggml.model", &model, d)))
		return rc;
	if (!model)
		return tk_diag_set(d, TK_E_FORMAT, v.path, -1,
				   "no tokenizer.ggml.model: the file holds no tokenizer");
	if (strcmp(model, "gpt2") && strcmp(model, "llama"))
		return tk_diag_set(d, TK_E_UNSUPPORTED, v.path, -1,
				   "tokenizer.ggml.model '%s' is not supported (only gpt2 and llama)",
				   model);
	cJSON *root = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
	if (!root || !cfg || !cJSON_AddStringToObject(root, "version", "1.0") ||
	    !cJSON_AddNullToObject(root, "truncation") || !cJSON_AddNullToObject(root, "padding"))
		rc = nomem(&v);
	if (!rc)
		rc = build(&v, model, root, cfg);
	for (uint64_t i = 0; v.tok && i < v.n; i++)
		free(v.tok[i]);
	free(v.tok);
	free(v.tlen);
	free(v.type);
	tok_smap_free(&v.ids);
	tok_smap_free(&v.first);
	if (rc) {
		cJSON_Delete(root);
		cJSON_Delete(cfg);
		return rc;
	}
	*tokenizer = root;
	*config = cfg;
	return 0;
}

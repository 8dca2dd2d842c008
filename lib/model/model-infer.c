/* model-infer.c - the decoder's inference forward with a KV cache.
 *
 * The ops and the order of the training forward (model-run.c) for the new
 * rows only: norms, projections, RoPE at the cached offset, the MLP; the
 * keys and values of every layer are kept for max_len positions of each of
 * n_seq sequences, and each new query attends to the cached positions of
 * its own sequence up to its own.  The new rows of all the sequences fed
 * together go through the projections as one matrix (rows = tokens), so a
 * batch costs one pass over the weights (a quantized one through the
 * backend's fused qmatmul when the batch is small, model-linear.c).  The row
 * buffers and the cache are the backend's memory (tk_backend_alloc): new
 * keys and values go into the cache with tk_copy_rows and the attention
 * over it is tk_attention_decode, so on a GPU a decode step stays on the
 * device; only the token ids, positions and cache indices are host arrays
 * (the ops take host memory there).  Only the last row of each span goes
 * through the final norm and the lm head.
 *
 * Shapes: n new rows, C hidden, Q = n_head*head_dim, K = n_kv_head*head_dim,
 * F intermediate, V vocab.
 */
#include <stdlib.h>

#include "model/infer.h"
#include "model/lora-int.h"
#include "model/model-int.h"

#define P(off) tk_model_at(m, m->params, (off))
#define OPT(off) tk_model_at(m, m->params, (off))

struct tk_infer {
	struct tk_model *m;
	int n_seq, max_len, cap;          /* cap: rows the row buffers hold */
	int *len;                         /* [n_seq] positions cached */
	/* backend memory */
	void *kc, *vc;                    /* [n_layer][n_seq][max_len, K] floats or bf16 */
	int bf16;                         /* the cache holds bf16 codes */
	float *x, *ln, *q, *k, *v, *att, *mid, *h1, *h2, *act; /* [cap rows] */
	float *mean, *rstd;               /* [cap] norm statistics */
	float *qkr;                       /* [cap, n_head] q/k norm statistics (Qwen3) */
	float *lnf, *last;                /* [n_seq, C]: last rows, their final norm */
	/* host memory */
	uint32_t *ids, *pos_ids;          /* [cap] */
	int32_t *pos, *rseq;              /* [cap] position and sequence of a row */
	const float *rope;                /* this pass's rotary table (model's state) */
	float rope_scale;
	int64_t *cidx;                    /* [cap] row of the cache a new row goes to */
};

/* Makes the row buffers hold at least rows rows. */
static int reserve_rows(struct tk_infer *s, int rows)
{
	const struct tk_model_config *c = &s->m->cfg;
	size_t C = (size_t)c->hidden, F = (size_t)c->intermediate;
	size_t Q = (size_t)s->m->run->q_dim, K = (size_t)s->m->run->kv_dim;
	size_t big = Q > C ? Q : C, R;
	float **fb[] = { &s->x, &s->ln, &s->q, &s->k, &s->v, &s->att, &s->mid, &s->h1, &s->h2,
			 &s->act, &s->mean, &s->rstd, &s->qkr };
	size_t fw[] = { C, C, Q, K, K, Q, big, F, F, F, 1, 1, (size_t)c->n_head };
	void **ib[] = { (void **)&s->ids, (void **)&s->pos_ids, (void **)&s->pos,
			(void **)&s->rseq, (void **)&s->cidx };
	size_t iw[] = { sizeof(uint32_t), sizeof(uint32_t), sizeof(int32_t), sizeof(int32_t),
			sizeof(int64_t) };

	if (rows <= s->cap)
		return 0;
	R = (size_t)(rows > 2 * s->cap ? rows : 2 * s->cap);
	/* the contents are scratch: free, then allocate (backend memory has
	 * no realloc); after a failure cap is 0, so the next pass tries again */
	s->cap = 0;
	for (size_t i = 0; i < sizeof(fb) / sizeof(fb[0]); i++) {
		tk_backend_free_mem(s->m->be, *fb[i]);
		*fb[i] = R > SIZE_MAX / (fw[i] * sizeof(float)) ? NULL :
			 tk_backend_alloc(s->m->be, R * fw[i] * sizeof(float));
		if (!*fb[i])
			return TK_E_NOMEM;
	}
	for (size_t i = 0; i < sizeof(ib) / sizeof(ib[0]); i++) {
		void *p = realloc(*ib[i], R * iw[i]);
		if (!p)
			return TK_E_NOMEM;
		*ib[i] = p;
	}
	s->cap = (int)R;
	return 0;
}

/* n floats of be's memory, NULL when n * size overflows or alloc fails. */
static float *balloc(struct tk_backend *be, size_t n, size_t size)
{
	return size && n > SIZE_MAX / size ? NULL : tk_backend_alloc(be, n * size);
}

int tk_infer_new_cache(struct tk_infer **out, struct tk_model *m, int n_seq, int max_len,
		       enum tk_cache_type type, struct tk_diag *d)
{
	const struct tk_model_config *c = &m->cfg;
	struct tk_infer *s;
	size_t L = (size_t)max_len, C = (size_t)c->hidden, K = (size_t)m->run->kv_dim;

	*out = NULL;
	if (max_len < 1 || (c->pos == TK_POS_LEARNED && max_len > c->max_pos))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "a context of %d positions does not fit the model (1..%d)",
				   max_len, c->max_pos);
	if (n_seq < 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%d sequences: at least 1 needed",
				   n_seq);
	if (type != TK_CACHE_F32 && type != TK_CACHE_BF16)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "no KV cache type %d", (int)type);
	if (type == TK_CACHE_BF16 && !(m->be->i && m->be->i->store_rows_bf16))
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "this device keeps no bf16 KV cache; use a float one");
	s = calloc(1, sizeof(*s));
	if (!s)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	s->m = m;
	s->n_seq = n_seq;
	s->max_len = max_len;
	s->len = calloc((size_t)n_seq, sizeof(int));
	s->bf16 = type == TK_CACHE_BF16;
	const size_t es = s->bf16 ? sizeof(uint16_t) : sizeof(float);
	s->kc = balloc(m->be, (size_t)c->n_layer * (size_t)n_seq * L, K * es);
	s->vc = balloc(m->be, (size_t)c->n_layer * (size_t)n_seq * L, K * es);
	s->lnf = balloc(m->be, (size_t)n_seq, C * sizeof(float));
	s->last = balloc(m->be, (size_t)n_seq, C * sizeof(float));
	if (!s->len || !s->kc || !s->vc || !s->lnf || !s->last ||
	    reserve_rows(s, n_seq)) {
		tk_infer_free(s);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1,
				   "out of memory for a KV cache of %d x %d positions", n_seq,
				   max_len);
	}
	*out = s;
	return 0;
}

int tk_infer_new_batch(struct tk_infer **out, struct tk_model *m, int n_seq, int max_len,
		       struct tk_diag *d)
{
	return tk_infer_new_cache(out, m, n_seq, max_len, TK_CACHE_F32, d);
}

int tk_infer_new(struct tk_infer **out, struct tk_model *m, int max_len, struct tk_diag *d)
{
	return tk_infer_new_batch(out, m, 1, max_len, d);
}

void tk_infer_free(struct tk_infer *s)
{
	if (!s)
		return;
	void *fb[] = { s->kc, s->vc, s->x, s->ln, s->q, s->k, s->v, s->att, s->mid, s->h1,
		       s->h2, s->act, s->lnf, s->last, s->mean, s->rstd, s->qkr };

	for (size_t i = 0; i < sizeof(fb) / sizeof(fb[0]); i++)
		if (fb[i])
			tk_backend_free_mem(s->m->be, fb[i]);
	free(s->len);
	free(s->ids);
	free(s->pos_ids);
	free(s->pos);
	free(s->rseq);
	free(s->cidx);
	free(s);
}

void tk_infer_reset_seq(struct tk_infer *s, int seq)
{
	if (seq >= 0 && seq < s->n_seq)
		s->len[seq] = 0;
}

int tk_infer_len(const struct tk_infer *s)
{
	return s->len[0];
}

int tk_infer_seq_len(const struct tk_infer *s, int seq)
{
	return seq >= 0 && seq < s->n_seq ? s->len[seq] : 0;
}

int tk_infer_n_seq(const struct tk_infer *s)
{
	return s->n_seq;
}

int tk_infer_max_len(const struct tk_infer *s)
{
	return s->max_len;
}

int tk_infer_vocab(const struct tk_infer *s)
{
	return s->m->cfg.vocab_size;
}

/* Phi3ForCausalLM.prepare_inputs_for_generation (transformers 5.24) */
int tk_infer_recompute_len(const struct tk_infer *s)
{
	const struct tk_model_config *c = &s->m->cfg;

	return c->arch == TK_ARCH_PHI3 ? c->rope.orig_max_pos + 1 : 0;
}

static int norm(struct tk_infer *s, float *y, const float *x, long w, long b, int rows)
{
	struct tk_model *m = s->m;
	const struct tk_model_config *c = &m->cfg;

	if (c->norm == TK_NORM_LAYER)
		return tk_layernorm_fwd(m->be, y, s->mean, s->rstd, x, P(w), OPT(b), rows,
					c->hidden, c->norm_eps);
	return tk_rmsnorm_fwd(m->be, y, s->rstd, x, P(w), c->norm_offset, rows, c->hidden,
			      c->norm_eps);
}

/* Linear slot sl of layer l (model-linear.c: fp32 or quantized weights,
 * bias, LoRA adapter) on n rows. */
static int linear(struct tk_model *m, int l, int sl, float *y, const float *x, int rows)
{
	float *u = m->lora ? tk_lora_infer_u(m, rows) : NULL;

	if (m->lora && !u)
		return TK_E_NOMEM;
	return tk_lin_fwd(m, l, sl, y, x, rows, u);
}

/* Linear slots sl[count] of layer l on the same n rows x, into y[]: for a
 * decode step in one parallel loop of the backend (tk_lin_fwd_group). */
static int linears(struct tk_model *m, int l, const int *sl, float *const *y, int count,
		   const float *x, int rows)
{
	float *u = m->lora ? tk_lora_infer_u(m, rows) : NULL;

	if (m->lora && !u)
		return TK_E_NOMEM;
	return tk_lin_fwd_group(m, l, sl, y, count, x, rows, u);
}

static int layer(struct tk_infer *s, int l, int n)
{
	struct tk_model *m = s->m;
	const struct tk_model_config *c = &m->cfg;
	const struct tk_layer_off *o = &m->run->lo[l];
	int C = c->hidden, F = c->intermediate, K = m->run->kv_dim;
	const size_t lay = (size_t)l * s->n_seq * s->max_len * K *
			   (s->bf16 ? sizeof(uint16_t) : sizeof(float));
	void *kc = (char *)s->kc + lay, *vc = (char *)s->vc + lay;
	float *knew = s->k, *vnew = s->v; /* new rows, copied into the cache below */
	float rs;
	const float *rope = tk_layer_rope(m, l, s->rope, s->rope_scale, &rs);

	CHECK(norm(s, s->ln, s->x, o->ln1_w, o->ln1_b, n));
	{
		/* Qwen3's q and k go through per-head RMSNorm: the projections
		 * go to att and mid, scratch until the attention and o_proj
		 * write them */
		const int sl[] = { TK_LIN_Q, TK_LIN_K, TK_LIN_V };
		float *const y[] = { c->qk_norm ? s->att : s->q, c->qk_norm ? s->mid : knew, vnew };
		CHECK(linears(m, l, sl, y, 3, s->ln, n));
	}
	if (c->qk_norm) {
		CHECK(tk_rmsnorm_fwd(m->be, s->q, s->qkr, s->att, P(o->qn_w), c->norm_offset,
				     n * c->n_head, c->head_dim, c->norm_eps));
		CHECK(tk_rmsnorm_fwd(m->be, knew, s->qkr, s->mid, P(o->kn_w), c->norm_offset,
				     n * c->n_kv_head, c->head_dim, c->norm_eps));
	}
	if (c->pos == TK_POS_ROPE && !c->no_rope[l]) { /* SmolLM3's NoPE layers: none */
		CHECK(tk_rope(m->be, s->q, s->pos, n, c->n_head, c->head_dim, c->rotary_dim, rope,
			      rs, 0));
		CHECK(tk_rope(m->be, knew, s->pos, n, c->n_kv_head, c->head_dim, c->rotary_dim,
			      rope, rs, 0));
	}
	if (s->bf16) {
		CHECK(tk_store_rows_bf16(m->be, kc, knew, s->cidx, n, K));
		CHECK(tk_store_rows_bf16(m->be, vc, vnew, s->cidx, n, K));
	} else {
		CHECK(tk_copy_rows(m->be, kc, knew, s->cidx, n, K));
		CHECK(tk_copy_rows(m->be, vc, vnew, s->cidx, n, K));
	}
	/* the layer's sliding window: keys j with pos - W < j <= pos */
	struct tk_attn_opts ao = tk_layer_attn(c, l);
	ao.cache_bf16 = s->bf16;
	CHECK(tk_attention_decode(m->be, s->att, s->q, kc, vc, s->rseq, s->pos, n, s->max_len,
				  c->n_head, c->n_kv_head, c->head_dim, &ao));
	if (c->sandwich_norm) { /* Gemma: o_proj's output normed (ln as scratch) */
		CHECK(linear(m, l, TK_LIN_O, s->ln, s->att, n));
		CHECK(norm(s, s->mid, s->ln, o->pa_w, -1, n));
	} else {
		CHECK(linear(m, l, TK_LIN_O, s->mid, s->att, n));
	}
	CHECK(tk_axpy(m->be, s->mid, 1.0f, s->x, (size_t)n * C));
	CHECK(norm(s, s->ln, s->mid, o->ln2_w, o->ln2_b, n));
	if (c->mlp == TK_MLP_SWIGLU || c->mlp == TK_MLP_GEGLU) {
		const int sl[] = { TK_LIN_FC, TK_LIN_UP };
		float *const y[] = { s->h1, s->h2 };
		CHECK(linears(m, l, sl, y, 2, s->ln, n));
		if (c->mlp == TK_MLP_SWIGLU)
			CHECK(tk_swiglu_fwd(m->be, s->act, s->h1, s->h2, (size_t)n * F));
		else
			CHECK(tk_geglu_fwd(m->be, s->act, s->h1, s->h2, (size_t)n * F));
	} else {
		CHECK(linear(m, l, TK_LIN_FC, s->h1, s->ln, n));
		CHECK(tk_gelu_fwd(m->be, s->act, s->h1, (size_t)n * F));
	}
	if (c->sandwich_norm) { /* and the MLP's output */
		CHECK(linear(m, l, TK_LIN_DN, s->ln, s->act, n));
		CHECK(norm(s, s->x, s->ln, o->pf_w, -1, n));
	} else {
		CHECK(linear(m, l, TK_LIN_DN, s->x, s->act, n));
	}
	return tk_axpy(m->be, s->x, 1.0f, s->mid, (size_t)n * C);
}

/* Checks the spans and lays their rows out: ids, positions, sequences.
 * Returns the row count or a negative tk_err. */
static int layout(struct tk_infer *s, const struct tk_infer_span *sp, int nsp, struct tk_diag *d)
{
	const struct tk_model_config *c = &s->m->cfg;
	long rows = 0;
	int r = 0;

	if (nsp < 1 || nsp > s->n_seq)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%d spans for %d sequences", nsp,
				   s->n_seq);
	for (int k = 0; k < nsp; k++) {
		int q = sp[k].seq;
		if (q < 0 || q >= s->n_seq)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "no sequence %d (0..%d)", q,
					   s->n_seq - 1);
		for (int j = 0; j < k; j++)
			if (sp[j].seq == q)
				return tk_diag_set(d, TK_E_INVAL, NULL, -1,
						   "sequence %d fed twice in one pass", q);
		if (sp[k].n < 1 || sp[k].n > s->max_len - s->len[q])
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "%d more tokens do not fit a context of %d with %d used",
					   sp[k].n, s->max_len, s->len[q]);
		for (int i = 0; i < sp[k].n; i++)
			if (sp[k].ids[i] >= (uint32_t)c->vocab_size)
				return tk_diag_set(d, TK_E_INVAL, NULL, -1,
						   "token id %u is not below the model's "
						   "vocab_size %d", sp[k].ids[i], c->vocab_size);
		rows += sp[k].n;
	}
	if (rows > INT32_MAX || reserve_rows(s, (int)rows))
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory for %ld rows", rows);
	for (int k = 0; k < nsp; k++)
		for (int i = 0; i < sp[k].n; i++, r++) {
			s->ids[r] = sp[k].ids[i];
			s->pos[r] = s->len[sp[k].seq] + i;
			s->pos_ids[r] = (uint32_t)s->pos[r];
			s->rseq[r] = sp[k].seq;
			s->cidx[r] = (int64_t)sp[k].seq * s->max_len + s->pos[r];
		}
	return r;
}

/* x[i] = row ids[i] of the embedding at voff (fp32, or held as a
 * tk_qweight: those rows dequantized, the bits tk_qweight_rows gives). */
static int embed(struct tk_model *m, float *x, long voff, const uint32_t *ids, int n, int dim)
{
	const struct tk_model_tensor *t = tk_model_tensor_at(m, voff);

	if (!t->q)
		return tk_embedding_fwd(m->be, x, P(voff), ids, n, dim);
	for (int i = 0; i < n; i++) {
		if (ids[i] >= (uint64_t)t->q->rows)
			return TK_E_INVAL;
		CHECK(tk_dequant_rows(m->be, t->q, ids[i], 1, x + (size_t)i * dim, NULL));
	}
	return 0;
}

int tk_infer_feed_spans(struct tk_infer *s, const struct tk_infer_span *sp, int nsp,
			float *logits, struct tk_diag *d)
{
	struct tk_model *m = s->m;
	const struct tk_model_config *c = &m->cfg;
	struct tk_model_run *r = m->run;
	int C = c->hidden, err = 0, n = layout(s, sp, nsp, d), row = 0;

	if (n < 0)
		return n;
	if (c->pos == TK_POS_ROPE) {
		/* transformers' seq_len: the largest position of the pass + 1 */
		int32_t top = 0;
		for (int i = 0; i < n; i++)
			top = s->pos[i] > top ? s->pos[i] : top;
		s->rope = tk_rope_update(&r->rope, c, top + 1);
		s->rope_scale = r->rope.scale;
		if (c->rope_local_theta > 0)
			tk_rope_local_table(c, r->rope_local);
	}
	err = embed(m, s->x, r->emb, s->ids, n, C);
	if (!err && c->embed_scale > 0)
		err = tk_scale(m->be, s->x, c->embed_scale, (size_t)n * C);
	if (!err && r->pos >= 0) {
		err = tk_embedding_fwd(m->be, s->mid, P(r->pos), s->pos_ids, n, C);
		if (!err)
			err = tk_axpy(m->be, s->x, 1.0f, s->mid, (size_t)n * C);
	}
	for (int l = 0; l < c->n_layer && !err; l++)
		err = layer(s, l, n);
	for (int k = 0; k < nsp && !err; k++) {
		int64_t at = k;

		row += sp[k].n;
		err = tk_copy_rows(m->be, s->last, s->x + (size_t)(row - 1) * C, &at, 1, C);
	}
	if (!err)
		err = norm(s, s->lnf, s->last, r->lnf_w, r->lnf_b, nsp);
	if (!err) { /* the lm head as a linear layer: fp32 or held (TK_LOAD_HALF) */
		const struct tk_lin head = { .tw = (int)(tk_model_tensor_at(m, r->head) - m->tensors),
					     .tb = -1, .w = r->head, .b = -1, .row0 = 0, .in = C,
					     .out = c->vocab_size, .ad = -1 };
		err = tk_lin_base_fwd(m, &head, logits, s->lnf, nsp);
	}
	if (!err && c->final_softcap > 0)
		err = tk_logit_softcap(m->be, logits, (size_t)nsp * c->vocab_size,
				       c->final_softcap);
	if (!err) /* the caller reads the logits on the host next */
		err = tk_backend_sync(m->be);
	if (err) /* the lengths stay: rows past them are scratch */
		return d && d->msg[0] ? err : tk_diag_set(d, err, NULL, -1,
							 "inference pass failed: %s",
							 tk_strerror(err));
	for (int k = 0; k < nsp; k++)
		s->len[sp[k].seq] += sp[k].n;
	return 0;
}

int tk_infer_feed(struct tk_infer *s, const uint32_t *ids, int n, float *logits,
		  struct tk_diag *d)
{
	struct tk_infer_span sp = { .seq = 0, .ids = ids, .n = n };

	return tk_infer_feed_spans(s, &sp, 1, logits, d);
}

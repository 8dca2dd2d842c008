/* memplan.c - the backend memory a training run will hold (memplan.h).
 *
 * Each term repeats the arithmetic of the allocation it stands for; the
 * comment names it.  tests/unit/test-memplan.c holds the plan to what the
 * CPU backend measures (peak in_use) for full, LoRA and QLoRA training with
 * and without checkpointing, so a change to one side that the other does
 * not follow fails there.
 */
#include "model/memplan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>

#include "base/adamw8-common.h"
#include "model/lora-int.h"
#include "model/model-int.h"
#include "base/quant.h"
#include "compute/qweight-dev.h"

static size_t up16(size_t n)
{
	return (n + 15) / 16 * 16;
}

/* The CPU backend's attention workspace (lib/compute/backend-cpu.c,
 * cpu_attention_fwd and cpu_attention_bwd: K transposed into rows of ldt
 * = T rounded up to 32, ATT_ROWS = 16 rows of scores per thread, and the
 * backward's per-head dk/dv rows), in floats. */
static size_t cpu_att_ws(const struct tk_model *m, int threads, int B, int T, int bwd)
{
	const struct tk_model_config *c = &m->cfg;
	size_t D = (size_t)(c->hidden / c->n_head), ldt = ((size_t)T + 31) / 32 * 32;
	size_t nkt = (size_t)B * (size_t)c->n_kv_head * D * ldt;
	size_t nt = (size_t)(threads > 0 ? threads : 1);

	if (!bwd)
		return nkt + nt * 16 * ldt;
	return 2 * nkt + nt * 2 * 16 * ldt + 2 * (size_t)B * (size_t)c->n_head * (size_t)T * D;
}

/* The largest pair of operands, in floats, of the model's matmuls on N
 * rows (model-run.c, model-linear.c: the linear layers forward, dx and dW,
 * and the lm head's chunks of tk_model_chunk_rows rows against [V, C]): what
 * cpu_matmul rounds into its workspace in a precision other than fp32. */
static size_t mm_max(const struct tk_model *m, size_t N)
{
	const struct tk_model_config *c = &m->cfg;
	size_t C = (size_t)c->hidden, V = (size_t)c->vocab_size;
	size_t R = (size_t)tk_model_chunk_rows(c->vocab_size, N);
	size_t Q = (size_t)m->run->q_dim, K = (size_t)m->run->kv_dim;
	size_t F = (size_t)c->intermediate;
	size_t io[][2] = { { C, Q + 2 * K }, { Q, C }, { C, 2 * F }, { F, C } };
	size_t best = R * V + V * C; /* the head: dx; (R + V) C and R (V + C) are smaller */

	for (size_t i = 0; i < sizeof(io) / sizeof(io[0]); i++) {
		size_t in = io[i][0], out = io[i][1], w = in * out;
		size_t v[3] = { N * in + w, N * out + w, N * (in + out) };
		for (int j = 0; j < 3; j++)
			best = v[j] > best ? v[j] : best;
	}
	return best;
}

int tk_memplan_train(const struct tk_model *m, const struct tk_backend *be,
		      const struct tk_memplan_args *a, struct tk_memplan *p)
{
	const struct tk_lora *l = m->lora;
	int rows_b, base_grads = 0, quant = 0, max_qin = 0;
	size_t opt = 0, opt8 = 0; /* fp32 floats; optim8 bytes */

	memset(p, 0, sizeof(*p));
	if (a->batch < 1 || a->seq_len < 1 || a->eval_batch < 0)
		return TK_E_INVAL;
	rows_b = a->batch > a->eval_batch ? a->batch : a->eval_batch;

	/* weights: the arena (tk_model_load / tk_model_init), the adapters'
	 * arena (tk_lora_attach), quantized weights the backend holds
	 * (tk_qweight_to_backend; on the CPU they stay host memory) */
	p->weights = (m->n_params ? m->n_params : 1) * sizeof(float);
	if (l)
		p->weights += (l->n_params ? l->n_params : 1) * sizeof(float);
	for (int i = 0; i < m->n_tensors; i++) {
		const struct tk_model_tensor *t = &m->tensors[i];
		if (t->q) {
			quant = 1;
			if (t->q->cols > max_qin)
				max_qin = (int)t->q->cols;
			if (tk_qweight_backend(t->q) == be)
				p->weights += tk_qweight_bytes(t->q);
		} else if (t->trainable) {
			base_grads = 1;
		}
	}
	/* gradients: tk_model_zero_grad_alloc, tk_lora_grads */
	if (base_grads)
		p->grads = m->n_params * sizeof(float);
	if (l)
		p->grads += (l->n_params ? l->n_params : 1) * sizeof(float);
	/* optimizer: two arenas of n_opt floats (lib/train/zero.c); ZeRO-1
	 * keeps a shard (about n_opt / shards); adamw_8bit: its state */
	opt = tk_model_opt_floats(m, &opt8);
	if (!opt)
		opt = 1;
	if (a->opt_shards > 1)
		opt = (opt + (size_t)a->opt_shards - 1) / (size_t)a->opt_shards;
	p->optimizer = 2 * opt * sizeof(float);
	if (a->optim8) /* tk_adamw8_state_init: one allocation */
		p->optimizer = opt8 ? opt8 : 1;

	/* activations: the carved block (reserve, sized for the largest batch
	 * it sees) and the adapters' scratch (tk_lora_reserve) */
	p->activations = tk_model_act_bytes(m, rows_b, a->seq_len, a->ckpt);
	if (l) {
		struct tk_lora_scratch s;
		tk_lora_scratch_size(l, (size_t)rows_b * (size_t)a->seq_len, &s);
		/* xd and tmp; DoRA's two [rows, out] */
		p->activations += (s.u + s.du + 2 * s.xd + s.dora) * sizeof(float);
	}

	/* scratch: the dequantization tile (model-linear.c, need_tile) and the
	 * CPU backend's workspace, grown by a quarter more than asked
	 * (ws_get), the old one freed after the new one is made: the
	 * forward's, then the backward's, are held at once for a moment */
	if (quant)
		p->scratch += tk_qtile_floats(max_qin) * sizeof(float);
	if (l && l->cfg.use_dora) { /* dora.c: its tile and the kept norms */
		size_t tile = TK_QTILE, norms = 0;
		for (int i = 0; i < l->n_ad; i++) {
			if ((size_t)l->ad[i].in > tile)
				tile = (size_t)l->ad[i].in;
			norms += (size_t)l->ad[i].out;
		}
		p->scratch += (tile + norms) * sizeof(float);
	}
	if (be && be->i && !strcmp(be->i->name, "cpu")) {
		size_t f = cpu_att_ws(m, be->threads, a->batch, a->seq_len, 0);
		size_t b = cpu_att_ws(m, be->threads, a->batch, a->seq_len, 1);
		size_t fe = a->eval_batch ? cpu_att_ws(m, be->threads, a->eval_batch, a->seq_len, 0)
					  : 0;
		f = fe > f ? fe : f;
		if (a->prec == TK_PREC_FP32) {
			p->scratch += (f + f / 4 + (b > f ? b + b / 4 : 0)) * sizeof(float);
		} else { /* the workspace grows to the largest request and, for a
			    moment, holds the one before too: at most twice it */
			size_t mx = mm_max(m, (size_t)rows_b * (size_t)a->seq_len);
			mx = b > mx ? b : mx;
			mx = f > mx ? f : mx;
			p->scratch += 2 * (mx + mx / 4) * sizeof(float);
		}
	}
	p->total = p->weights + p->grads + p->optimizer + p->activations + p->scratch;
	p->batch = a->batch;
	p->seq_len = a->seq_len;
	p->ckpt = !!a->ckpt;
	return 0;
}

/* bytes in the unit of ref (as tk_memplan_fmt chooses it), number only. */
static double in_unit(size_t bytes, size_t ref)
{
	int sh = ref >= (size_t)1 << 30 ? 30 : ref >= (size_t)1 << 20 ? 20 : 10;
	return (double)bytes / (double)((size_t)1 << sh);
}

/* The arena's floats for a tensor of n (model.c's add_tensor: each starts
 * 16-float aligned), into the totals: all, and those of quantized (q)
 * linear weights, which a quantized model keeps out of the arena. */
struct arena_sum {
	size_t all, quant;
	size_t opt8; /* bytes of bitsandbytes' 8-bit AdamW state for all */
};

static void add_t(struct arena_sum *s, size_t n, int q)
{
	s->all += up16(n);
	s->opt8 += tk_adamw8_state_bytes(n, n >= TK_ADAMW8_MIN_SIZE);
	if (q)
		s->quant += up16(n);
}

/* An embedding of n: fp32 state under the 8-bit AdamW (tk_adamw8_eight). */
static void add_emb(struct arena_sum *s, size_t n)
{
	add_t(s, n, 0);
	s->opt8 += tk_adamw8_state_bytes(n, 0) - tk_adamw8_state_bytes(n, n >= TK_ADAMW8_MIN_SIZE);
}

/* model.c's layout_gpt2 / layout_llama, counted. */
static struct arena_sum arena_of(const struct tk_model_config *c)
{
	size_t C = (size_t)c->hidden, F = (size_t)c->intermediate, V = (size_t)c->vocab_size;
	size_t Q = (size_t)c->n_head * (size_t)c->head_dim;
	size_t K = (size_t)c->n_kv_head * (size_t)c->head_dim;
	struct arena_sum s = { 0, 0, 0 }, l = { 0, 0, 0 };

	add_emb(&s, V * C);
	if (c->arch == TK_ARCH_GPT2) {
		add_emb(&s, (size_t)c->max_pos * C);
		add_t(&l, C, 0);         /* ln_1 */
		add_t(&l, C, 0);
		add_t(&l, C * 3 * C, 1); /* c_attn */
		add_t(&l, 3 * C, 0);
		add_t(&l, C * C, 1);     /* c_proj */
		add_t(&l, C, 0);
		add_t(&l, C, 0);         /* ln_2 */
		add_t(&l, C, 0);
		add_t(&l, C * F, 1);     /* c_fc */
		add_t(&l, F, 0);
		add_t(&l, F * C, 1);     /* mlp.c_proj */
		add_t(&l, C, 0);
	} else {
		int nb = c->norm == TK_NORM_LAYER;
		const size_t out[7] = { Q, K, K, C, F, F, C }, in[7] = { C, C, C, Q, C, C, F };
		const int bias[7] = { c->attn_bias, c->attn_bias, c->attn_bias, c->attn_out_bias,
				      c->mlp_bias, c->mlp_bias, c->mlp_bias };
		if (c->fused) { /* Phi-3: o_proj, qkv_proj, gate_up_proj, down_proj */
			add_t(&l, C * Q, 1);
			add_t(&l, (Q + 2 * K) * C, 1);
			add_t(&l, 2 * F * C, 1);
			add_t(&l, C * F, 1);
		}
		for (int i = 0; !c->fused && i < 7; i++) {
			add_t(&l, out[i] * in[i], 1);
			if (bias[i])
				add_t(&l, out[i], 0);
		}
		for (int i = 0; c->qk_norm && i < 2; i++) /* Qwen3's q_norm, k_norm */
			add_t(&l, (size_t)c->head_dim, 0);
		/* input_layernorm, post_attention_layernorm (and Gemma's
		 * pre_ and post_feedforward_layernorm) */
		for (int i = 0; i < (c->sandwich_norm ? 4 : 2); i++) {
			add_t(&l, C, 0);
			if (nb)
				add_t(&l, C, 0);
		}
	}
	s.all += l.all * (size_t)c->n_layer;
	s.quant += l.quant * (size_t)c->n_layer;
	s.opt8 += l.opt8 * (size_t)c->n_layer;
	add_t(&s, C, 0); /* the final norm */
	if (c->arch == TK_ARCH_GPT2 || c->norm == TK_NORM_LAYER)
		add_t(&s, C, 0);
	if (!c->tie_embeddings)
		add_t(&s, V * C, 0);
	return s;
}

int tk_memplan_model(const struct tk_model_config *c, int full, int quantized, int opt_shards,
		      int optim8, struct tk_memplan *p)
{
	memset(p, 0, sizeof(*p));
	if (c->vocab_size < 1 || c->hidden < 1 || c->n_layer < 1 || c->n_head < 1 ||
	    c->n_kv_head < 1 || c->head_dim < 1 || c->intermediate < 1 ||
	    (c->arch == TK_ARCH_GPT2 && c->max_pos < 1))
		return TK_E_INVAL;
	struct arena_sum s = arena_of(c);
	size_t n = quantized ? s.all - s.quant : s.all;
	/* tk_model_load's arena (alloc_compact without the quantized weights) */
	p->weights = (n ? n : 1) * sizeof(float);
	if (full && !quantized) { /* tk_model_zero_grad_alloc; popt's layout */
		size_t opt = s.all;
		if (opt_shards > 1)
			opt = (opt + (size_t)opt_shards - 1) / (size_t)opt_shards;
		p->grads = s.all * sizeof(float);
		p->optimizer = optim8 ? s.opt8 : 2 * opt * sizeof(float);
	}
	p->total = p->weights + p->grads + p->optimizer;
	return 0;
}

size_t tk_memplan_limit(struct tk_backend *be, const char **what, const char **after)
{
	struct tk_mem_info mi;
	const char *env = getenv("TK_DEVICE_MEMORY_LIMIT");
	struct rlimit rl;
	struct sysinfo si;
	size_t lim = 0;

	*what = "";
	*after = "";
	memset(&mi, 0, sizeof(mi));
	tk_backend_mem_info(be, &mi);
	if (mi.limit) {
		if (env && *env)
			*what = "TK_DEVICE_MEMORY_LIMIT allows ";
		else
			*after = " are free";
		return mi.limit;
	}
	if (!be || !be->i || !be->i->host_memory)
		return 0;
	/* the host: what the process may map, what the machine has */
	if (!sysinfo(&si) && si.mem_unit) {
		lim = ((size_t)si.totalram + (size_t)si.totalswap) * si.mem_unit;
		*what = "the host has ";
		*after = " of memory and swap";
	}
	if (!getrlimit(RLIMIT_DATA, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	    (!lim || (size_t)rl.rlim_cur < lim)) {
		lim = (size_t)rl.rlim_cur;
		*what = "ulimit -d allows ";
		*after = "";
	}
	if (!getrlimit(RLIMIT_AS, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	    (!lim || (size_t)rl.rlim_cur < lim)) {
		lim = (size_t)rl.rlim_cur;
		*what = "ulimit -v allows ";
		*after = "";
	}
	return lim;
}

int tk_memplan_check_model(const struct tk_model_config *c, int full, int quantized,
			    int opt_shards, int optim8, struct tk_backend *be, const char *dev,
			    struct tk_diag *d)
{
	struct tk_memplan p;
	const char *what, *after;
	char need[32], lim[32], fix[160];
	int rc = tk_memplan_model(c, full, quantized, opt_shards, optim8, &p);

	if (rc)
		return rc;
	size_t limit = tk_memplan_limit(be, &what, &after);
	if (!limit || p.total <= limit)
		return 0;
	if (p.weights > limit)
		snprintf(fix, sizeof(fix), "; even its weights do not fit%s",
			 quantized ? "" : full ? ": a 4-bit base (tk-quantize) with LoRA adapters "
			 "(--lora-r 16) needs less" : ": a 4-bit base (tk-quantize) needs less");
	else
		snprintf(fix, sizeof(fix), "; train LoRA adapters (--lora-r 16) instead of the "
			 "whole model");
	tk_memplan_fmt(need, sizeof(need), p.total);
	tk_memplan_fmt(lim, sizeof(lim), limit);
	return tk_diag_set(d, TK_E_NOMEM, dev, -1,
			   "the model alone needs about %s (weights %.1f, gradients %.1f, "
			   "optimizer %.1f) before any activations, but %s%s%s%s", need,
			   in_unit(p.weights, p.total), in_unit(p.grads, p.total),
			   in_unit(p.optimizer, p.total), what, lim, after, fix);
}

void tk_memplan_fmt(char *buf, size_t size, size_t bytes)
{
	if (bytes >= (size_t)1 << 30)
		snprintf(buf, size, "%.1f GiB", (double)bytes / (1 << 30));
	else if (bytes >= (size_t)1 << 20)
		snprintf(buf, size, "%.1f MiB", (double)bytes / (1 << 20));
	else
		snprintf(buf, size, "%.1f KiB", (double)bytes / (1 << 10));
}

int tk_memplan_check(const struct tk_model *m, struct tk_backend *be,
		      const struct tk_memplan_args *a, const char *dev, struct tk_memplan *p,
		      struct tk_diag *d)
{
	struct tk_memplan own, alt;
	struct tk_memplan_args b = *a;
	char need[32], lim[32], altb[32], fix[256] = "";
	int rc, fit_b = 0;
	const char *what, *after;
	size_t limit;

	if (!p)
		p = &own;
	if ((rc = tk_memplan_train(m, be, a, p)))
		return rc;
	limit = tk_memplan_limit(be, &what, &after);
	if (!limit || p->total <= limit)
		return 0;
	/* the largest batch that fits as it is; checkpointing (with the batch,
	 * else with the largest batch that fits with it) */
	for (b.batch = a->batch - 1; b.batch >= 1 && !fit_b; b.batch--)
		if (!tk_memplan_train(m, be, &b, &alt) && alt.total <= limit)
			fit_b = b.batch;
	if (!a->ckpt) {
		b = *a;
		b.ckpt = 1;
		tk_memplan_train(m, be, &b, &alt);
		tk_memplan_fmt(altb, sizeof(altb), alt.activations);
		if (alt.total <= limit)
			snprintf(fix, sizeof(fix), "; add --gradient-checkpointing (activations "
				 "about %s)", altb);
		for (b.batch = a->batch - 1; !fix[0] && !fit_b && b.batch >= 1; b.batch--)
			if (!tk_memplan_train(m, be, &b, &alt) && alt.total <= limit)
				snprintf(fix, sizeof(fix), "; add --gradient-checkpointing and use "
					 "--per-device-train-batch-size %d", b.batch);
	}
	if (fit_b)
		snprintf(fix + strlen(fix), sizeof(fix) - strlen(fix),
			 "%s --per-device-train-batch-size %d", fix[0] ? " or use" : "; use", fit_b);
	if (!fix[0])
		snprintf(fix, sizeof(fix), "; even batch 1 with checkpointing does not fit: train "
			 "LoRA adapters (--lora-r 16) on a 4-bit base (tk-quantize), or pack "
			 "shorter blocks");
	tk_memplan_fmt(need, sizeof(need), p->total);
	tk_memplan_fmt(lim, sizeof(lim), limit);
	return tk_diag_set(d, TK_E_NOMEM, dev, -1,
			   "this run needs about %s (weights %.1f, gradients %.1f, optimizer %.1f, "
			   "scratch %.1f, activations %.1f at batch %d x %d) but %s%s%s%s",
			   need, in_unit(p->weights, p->total), in_unit(p->grads, p->total),
			   in_unit(p->optimizer, p->total), in_unit(p->scratch, p->total),
			   in_unit(p->activations, p->total), a->batch, a->seq_len,
			   what, lim, after, fix);
}

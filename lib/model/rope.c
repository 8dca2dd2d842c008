/* rope.c - see rope.h.
 *
 * Each formula follows transformers' _compute_*_parameters: Python floats
 * (doubles) where it computes in Python, fp32 where it computes with
 * tensors, one rounding per tensor operation in its order.  torch divides
 * a Python number by a tensor as reciprocal(t) * number (Tensor.__rdiv__),
 * which is kept.  The powers use glibc's powf, as the plain RoPE table
 * always has; torch's vectorised pow differs from it by an ulp for a few
 * exponents, the only difference left (tests/unit/test-rope.c measures
 * it against tables transformers computed).
 */
#include "model/rope.h"

#include <math.h>

#include "base/math-common.h"

/* theta^(2i/d) in fp32 (torch: base ** (arange(0, d, 2).float() / d)). */
static float pos_freq(int i, int d, float theta)
{
	return powf(theta, (float)(2 * i) / (float)d);
}

/* 1 / theta^(2i/d): the plain table (tk_rope_inv_freq, shared math). */
static void plain(float *inv, int d, float theta)
{
	for (int i = 0; i < d / 2; i++)
		inv[i] = tk_rope_inv_freq(i, d, theta);
}

/* _compute_dynamic_ntk_parameters: at init (seq_len 0) seq_len is
 * max_position_embeddings, a Python int, and the base is a double; in a
 * forward seq_len is a tensor and the base is computed in fp32. */
static void dynamic(const struct tk_model_config *c, int seq_len, float *inv)
{
	const struct tk_rope_config *r = &c->rope;
	int d = c->rotary_dim;
	double f = r->factor, mp = c->max_pos, e = (double)d / (d - 2);
	float base;
	if (seq_len <= 0) {
		double b = (double)c->rope_theta * pow(f * mp / mp - (f - 1), e);
		base = (float)b;
	} else {
		float sl = (float)(seq_len > c->max_pos ? seq_len : c->max_pos);
		float t = (float)f * sl;
		t = t / (float)mp;
		t = t - (float)(f - 1);
		t = (float)pow((double)t, e); /* torch: a float tensor ** a Python float */
		base = c->rope_theta * t;
	}
	plain(inv, d, base);
}

static double yarn_mscale(double scale, double mscale)
{
	return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

static double yarn_corr_dim(double rot, int d, double base, double max_pos)
{
	return (d * log(max_pos / (rot * 2 * M_PI))) / (2 * log(base));
}

static float yarn(const struct tk_model_config *c, float *inv)
{
	const struct tk_rope_config *r = &c->rope;
	int d = c->rotary_dim, half = d / 2;
	double base = c->rope_theta, om = r->orig_max_pos;
	double factor = r->factor > 0 ? r->factor : (double)c->max_pos / om;
	double att = r->attention_factor;
	if (!(att > 0)) {
		if (r->mscale && r->mscale_all_dim)
			att = yarn_mscale(factor, r->mscale) / yarn_mscale(factor, r->mscale_all_dim);
		else
			att = yarn_mscale(factor, 1);
	}
	double bf = r->beta_fast ? r->beta_fast : 32, bs = r->beta_slow ? r->beta_slow : 1;
	double lo = yarn_corr_dim(bf, d, base, om), hi = yarn_corr_dim(bs, d, base, om);
	if (r->truncate) {
		lo = floor(lo);
		hi = ceil(hi);
	}
	lo = lo > 0 ? lo : 0;
	hi = hi < d - 1 ? hi : d - 1;
	if (lo == hi)
		hi += 0.001;
	float flo = (float)lo, span = (float)(hi - lo), ff = (float)factor;
	for (int i = 0; i < half; i++) {
		float pf = pos_freq(i, d, c->rope_theta);
		float extra = 1.0f / pf, interp = 1.0f / (ff * pf);
		float ramp = ((float)i - flo) / span;
		ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
		float ef = 1.0f - ramp;
		float a = interp * (1.0f - ef), b = extra * ef;
		inv[i] = a + b;
	}
	return (float)att;
}

static float longrope(const struct tk_model_config *c, int seq_len, float *inv)
{
	const struct tk_rope_config *r = &c->rope;
	int d = c->rotary_dim;
	double om = r->orig_max_pos;
	double factor = r->factor > 0 ? r->factor : (double)c->max_pos / om;
	double att = r->attention_factor;
	if (!(att > 0))
		att = factor <= 1.0 ? 1.0 : sqrt(1 + log(factor) / log(om));
	const float *ext = seq_len > r->orig_max_pos ? r->long_factor : r->short_factor;
	for (int i = 0; i < d / 2; i++)
		inv[i] = 1.0f / (ext[i] * pos_freq(i, d, c->rope_theta));
	return (float)att;
}

static void llama3(const struct tk_model_config *c, float *inv)
{
	const struct tk_rope_config *r = &c->rope;
	int d = c->rotary_dim;
	double old = r->orig_max_pos;
	float lw = (float)(old / r->low_freq_factor), hw = (float)(old / r->high_freq_factor);
	float f = (float)r->factor, two_pi = (float)(2 * M_PI), fold = (float)old;
	float lff = (float)r->low_freq_factor;
	float den = (float)(r->high_freq_factor - r->low_freq_factor);
	for (int i = 0; i < d / 2; i++) {
		float x = 1.0f / pos_freq(i, d, c->rope_theta);
		float wl = (1.0f / x) * two_pi;
		float il = wl > lw ? x / f : x;
		float s = ((1.0f / wl) * fold - lff) / den;
		float sm = ((1.0f - s) * il) / f + s * il;
		int medium = !(wl < hw) && !(wl > lw);
		inv[i] = medium ? sm : il;
	}
}

void tk_rope_table(const struct tk_model_config *c, int seq_len, float *inv, float *scale)
{
	int d = c->rotary_dim;
	*scale = 1.0f;
	switch (c->rope.type) {
	case TK_ROPE_LINEAR:
		plain(inv, d, c->rope_theta);
		for (int i = 0; i < d / 2; i++)
			inv[i] /= (float)c->rope.factor;
		break;
	case TK_ROPE_DYNAMIC:
		dynamic(c, seq_len, inv);
		break;
	case TK_ROPE_YARN:
		*scale = yarn(c, inv);
		break;
	case TK_ROPE_LONGROPE:
		*scale = longrope(c, seq_len, inv);
		break;
	case TK_ROPE_LLAMA3:
		llama3(c, inv);
		break;
	default:
		plain(inv, d, c->rope_theta);
		break;
	}
}

const float *tk_rope_update(struct tk_rope_state *st, const struct tk_model_config *c,
			    int seq_len)
{
	if (!st->ready) {
		tk_rope_table(c, 0, st->inv, &st->scale);
		st->cached = c->max_pos;
		st->ready = 1;
	}
	if (c->rope.type == TK_ROPE_LONGROPE) {
		tk_rope_table(c, seq_len, st->inv, &st->scale);
	} else if (c->rope.type == TK_ROPE_DYNAMIC) {
		int cached = st->cached;
		if (seq_len > cached) { /* growth */
			tk_rope_table(c, seq_len, st->inv, &st->scale);
			st->cached = seq_len;
		}
		/* reset: compares the length cached before the growth step */
		if (seq_len < c->max_pos && cached > c->max_pos) {
			tk_rope_table(c, 0, st->inv, &st->scale);
			st->cached = c->max_pos;
		}
	}
	return st->inv;
}

void tk_rope_local_table(const struct tk_model_config *c, float *inv)
{
	plain(inv, c->head_dim, c->rope_local_theta);
}

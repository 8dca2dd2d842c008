/* test-rope.c - model/rope.c's tables against the ones transformers
 * computes (tests/fixtures/rope/, made by tests/parity/gen-rope-fixtures.py):
 * every scaling, on real models' parameters, over a run of forwards of
 * changing length, so that dynamic NTK's state and LongRoPE's switch
 * between its factors are followed too.
 *
 * The tables are compared in ulps.  tk computes each fp32 operation torch
 * performs, in its order, and differs only where torch's vectorised pow
 * (Sleef, within 1 ulp) rounds theta^(2i/d) the other way from glibc's
 * powf: the reciprocal and the scalings after it keep that to 1 ulp, but
 * dynamic NTK raises a base that is itself a power and LongRoPE rounds the
 * product of a factor and the power before the reciprocal, so 2 ulps are
 * allowed there.  The attention scaling (computed in doubles on both
 * sides, then rounded once) must be equal.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/config.h"
#include "formats/safetensors.h"
#include "model/rope.h"
#include "tt.h"

static const char *const cases[] = { "default-128", "default-96",      "llama3-8b",
				     "llama3-32",   "linear-128",      "linear-frac",
				     "yarn-qwen",   "yarn-notrunc",    "yarn-mscale",
				     "yarn-attn",   "longrope-96",     "longrope-factor",
				     "dynamic-64",  "dynamic-128",     "phi3-longrope-partial",
				     "phi3-partial" };

/* Distance in ulps between two finite floats of the same sign. */
static long ulps(float a, float b)
{
	int32_t x, y;
	memcpy(&x, &a, 4);
	memcpy(&y, &b, 4);
	return labs((long)x - (long)y);
}

static void test_against_transformers(void)
{
	struct tk_diag d;
	tk_safetensors_t *st;
	long worst_all = 0, inexact = 0, total = 0;

	tk_diag_clear(&d);
	TT_REQUIRE(!tk_safetensors_open(&st, tt_fixture("rope/rope.safetensors"), &d), "%s",
		   d.msg);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const char *name = cases[k];
		char path[256], key[96];
		struct tk_model_config c;
		struct tk_rope_state rs;
		snprintf(path, sizeof(path), "rope/%s.json", name);
		TT_REQUIRE(!tk_config_load(&c, tt_fixture(path), &d), "%s: %s", name, d.msg);
		snprintf(key, sizeof(key), "%s.seq", name);
		const struct tk_tensor_info *ts = tk_safetensors_find(st, key);
		snprintf(key, sizeof(key), "%s.inv", name);
		const struct tk_tensor_info *ti = tk_safetensors_find(st, key);
		snprintf(key, sizeof(key), "%s.scale", name);
		const struct tk_tensor_info *tc = tk_safetensors_find(st, key);
		TT_REQUIRE(ts && ti && tc && ti->ndim == 2 && ti->shape[1] == c.rotary_dim / 2,
			   "%s: no tables", name);
		const int32_t *seq = ts->data;
		const float *inv = ti->data, *scale = tc->data;
		long allow = c.rope.type == TK_ROPE_DYNAMIC || c.rope.type == TK_ROPE_LONGROPE ? 2
														: 1;
		long worst = 0;
		int half = c.rotary_dim / 2;
		memset(&rs, 0, sizeof(rs));
		for (int s = 0; s < (int)ts->nelem; s++) {
			const float *got = tk_rope_update(&rs, &c, seq[s]);
			for (int i = 0; i < half; i++) {
				long u = ulps(got[i], inv[s * half + i]);
				worst = u > worst ? u : worst;
				inexact += u != 0;
				total++;
			}

			TT_CHECK(rs.scale == scale[s], "%s: forward %d (%d tokens): scaling %.9g, "
				 "transformers %.9g", name, s, seq[s], rs.scale, scale[s]);
		}
		TT_CHECK(worst <= allow, "%s: inverse frequencies off by %ld ulps", name, worst);
		worst_all = worst > worst_all ? worst : worst_all;
	}
	printf("info rope: %ld of %ld inverse frequencies differ from transformers', by at "
	       "most %ld ulp\n", inexact, total, worst_all);
	tk_safetensors_close(st);
}

/* What a wrong state would give: dynamic NTK after a long forward keeps
 * the long table for a shorter one past max_position_embeddings, and goes
 * back to the original below it. */
static void test_dynamic_state(void)
{
	struct tk_model_config c;
	struct tk_diag d;
	struct tk_rope_state rs;
	float orig[64], longer[64];
	float sc;

	TT_REQUIRE(!tk_config_load(&c, tt_fixture("rope/dynamic-64.json"), &d), "%s", d.msg);
	memset(&rs, 0, sizeof(rs));
	tk_rope_table(&c, 0, orig, &sc);
	memcpy(longer, tk_rope_update(&rs, &c, 77), sizeof(float) * 32);
	TT_CHECK(longer[31] < orig[31], "a longer forward lowers the frequencies");
	TT_CHECK(!memcmp(tk_rope_update(&rs, &c, 50), longer, sizeof(float) * 32),
		 "a shorter one past the context keeps the longest table");
	TT_CHECK(!memcmp(tk_rope_update(&rs, &c, 20), orig, sizeof(float) * 32),
		 "one within the context resets it");
	TT_CHECK(rs.cached == c.max_pos, "cached %d", rs.cached);
}

int main(void)
{
	TT_RUN(test_against_transformers);
	TT_RUN(test_dynamic_state);
	return tt_done();
}

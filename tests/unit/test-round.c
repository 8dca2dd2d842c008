/* test-round.c - fp32 rounding to bf16, fp16 and tf32 (lib/base/math-common.h)
 * against torch's conversions (tests/fixtures/round/round.txt, made by
 * tests/parity/gen-round-fixtures.py), and against an independent
 * reference written with frexp/nearbyint in double. */
#include <fenv.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/math-common.h"
#include "tt.h"

static float f_of(uint32_t b)
{
	return tk_float_from_bits((int)b);
}

static uint32_t b_of(float f)
{
	return tk_bits_from_float(f);
}

/* x rounded to nearest even with mbits significant bits (implicit bit
 * included), exponents below emin as subnormals of quantum 2^(emin -
 * mbits + 1), values of 2^(emax + 1) or more after rounding as inf. */
static float ref_round(float x, int mbits, int emin, int emax)
{
	if (!isfinite(x) || x == 0.0f)
		return x;
	int e;
	frexp(x, &e); /* x = m 2^e, 0.5 <= |m| < 1: exponent of x is e - 1 */
	int ex = e - 1 < emin ? emin : e - 1;
	double q = ldexp(1.0, ex - mbits + 1);
	double r = nearbyint((double)x / q) * q; /* exact: x / q has few bits */
	if (fabs(r) >= ldexp(1.0, emax + 1))
		return r > 0 ? INFINITY : -INFINITY;
	return (float)r; /* -0.0 stays signed: nearbyint(-tiny) is -0.0 */
}

static void test_torch_codes(void)
{
	FILE *f = fopen(tt_fixture("round/round.txt"), "r");
	TT_REQUIRE(f, "no fixture %s", tt_fixture("round/round.txt"));
	unsigned xb, bb, hb;
	int n = 0, nan = 0, bad = 0;
	while (fscanf(f, "%x %x %x", &xb, &bb, &hb) == 3) {
		float x = f_of(xb);
		n++;
		unsigned short b = tk_bf16_code(x), h = tk_f16_code(x);
		if (isnan(x)) {
			/* torch's NaN bits depend on its CPU path: NaN in, NaN out */
			nan++;
			TT_CHECK(isnan(tk_bf16_value(b)) && isnan(tk_bf16_value((unsigned short)bb)),
				 "%08x: bf16 %04x torch %04x", xb, b, bb);
			TT_CHECK(isnan(tk_f16_value(h)) && isnan(tk_f16_value((unsigned short)hb)),
				 "%08x: f16 %04x torch %04x", xb, h, hb);
			TT_CHECK(isnan(tk_round_bf16(x)) && isnan(tk_round_f16(x)), "%08x", xb);
			continue;
		}
		if (b != bb || h != hb) {
			if (!bad++)
				TT_CHECK(0, "%08x: bf16 %04x torch %04x, f16 %04x torch %04x", xb, b,
					 bb, h, hb);
		}
		/* the float forms are the codes' values */
		TT_CHECK(b_of(tk_round_bf16(x)) == (uint32_t)bb << 16, "%08x", xb);
		float hv = tk_round_f16(x);
		TT_CHECK(b_of(hv) == b_of(tk_f16_value((unsigned short)hb)), "%08x", xb);
	}
	fclose(f);
	TT_CHECK(n == 4048 && nan >= 8, "%d inputs, %d NaN", n, nan);
	TT_CHECK(!bad, "%d of %d differ", bad, n);
}

/* The f16 value decoder against the reference on every half code. */
static void test_f16_values(void)
{
	for (unsigned c = 0; c < 0x10000; c++) {
		float v = tk_f16_value((unsigned short)c);
		unsigned e = (c >> 10) & 31, m = c & 0x3ff;
		if (e == 31) {
			TT_CHECK(m ? isnan(v) : isinf(v), "%04x", c);
			continue;
		}
		double w = e ? ldexp(1024 + m, (int)e - 25) : ldexp(m, -24);
		if (c & 0x8000)
			w = -w;
		TT_REQUIRE(v == (float)w && !!signbit(v) == !!(c & 0x8000), "%04x: %g", c, v);
		/* and codes round-trip */
		TT_REQUIRE(tk_f16_code(v) == c, "%04x", c);
	}
}

/* bf16 and fp16 against the frexp reference on random bit patterns. */
static void test_against_reference(void)
{
	TT_REQUIRE(fegetround() == FE_TONEAREST, "rounding mode");
	uint64_t s = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 200000; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		float x = f_of((uint32_t)s);
		if (isnan(x))
			continue;
		float rb = ref_round(x, 8, -126, 127), rh = ref_round(x, 11, -14, 15);
		TT_REQUIRE(b_of(tk_round_bf16(x)) == b_of(rb), "%08x: %a vs %a", b_of(x),
			   tk_round_bf16(x), rb);
		TT_REQUIRE(b_of(tk_round_f16(x)) == b_of(rh), "%08x: %a vs %a", b_of(x),
			   tk_round_f16(x), rh);
	}
}

/* TF32 has no torch reference (torch never materializes TF32 values):
 * this checks its definition - 11 significant bits, fp32 exponent range,
 * round to nearest even - through the frexp reference, plus the defining
 * properties on edge values. */
static void test_tf32(void)
{
	uint64_t s = 0x243f6a8885a308d3ull;
	for (int i = 0; i < 200000; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		float x = f_of((uint32_t)s);
		if (isnan(x))
			continue;
		float t = tk_round_tf32(x), r = ref_round(x, 11, -126, 127);
		TT_REQUIRE(b_of(t) == b_of(r), "%08x: %a vs %a", b_of(x), t, r);
		TT_REQUIRE((b_of(t) & 0x1fff) == 0 || isinf(t), "%08x: low bits", b_of(x));
		TT_REQUIRE(b_of(tk_round_tf32(t)) == b_of(t), "%08x: not idempotent", b_of(x));
	}
	/* ties: 1 + 2^-11 (halfway between 1 and 1 + 2^-10) goes to 1 (even);
	 * 1 + 3 2^-11 to 1 + 2^-9 (even); one bit above a tie rounds up */
	TT_CHECK(tk_round_tf32(1.0f + 0x1p-11f) == 1.0f, "tie down");
	TT_CHECK(tk_round_tf32(1.0f + 3 * 0x1p-11f) == 1.0f + 0x1p-9f, "tie up");
	TT_CHECK(tk_round_tf32(1.0f + 0x1p-11f + 0x1p-23f) == 1.0f + 0x1p-10f, "above tie");
	/* fp32 range kept (unlike fp16): 1e30 stays finite, FLT_MAX rounds to inf */
	TT_CHECK(isfinite(tk_round_tf32(1e30f)) && isinf(tk_round_tf32(f_of(0x7f7fffff))), "range");
	TT_CHECK(isinf(tk_round_tf32(INFINITY)) && isnan(tk_round_tf32(NAN)), "inf, nan");
	TT_CHECK(b_of(tk_round_tf32(-0.0f)) == 0x80000000u, "-0");
	/* fp16 overflow and bf16 keeping the range */
	TT_CHECK(isinf(tk_round_f16(65520.0f)) && tk_round_f16(65519.0f) == 65504.0f, "f16 max");
	TT_CHECK(tk_round_bf16(1e30f) > 9e29f && tk_round_bf16(1e30f) < 1.1e30f, "bf16 range");
}

int main(void)
{
	TT_RUN(test_torch_codes);
	TT_RUN(test_f16_values);
	TT_RUN(test_against_reference);
	TT_RUN(test_tf32);
	return tt_done();
}

#!/usr/bin/env python3
"""fp32 -> bf16 / fp16 rounding as torch does it, for tests/unit/test-round.c.

Writes tests/fixtures/round/round.txt: one line per input, three hex words
"XBITS BF16 F16": the fp32 input's bits, then the codes of
torch.tensor(x).to(torch.bfloat16) and of .half() (read back with
.view(torch.int16)).  Inputs: edge values (zeros, infinities, NaNs with
payloads and signs, fp32 subnormals, the fp16 overflow and subnormal
boundaries, ties at every boundary kind) and 4000 random bit patterns
(seeded) spread over all exponents.  torch's codes for NaN inputs depend on
its CPU path (vectorized bf16 gives 0xffff, F16C keeps the payload's top
bits), so the unit test requires only a NaN there.  Run with the reference
venv:
    .venv/bin/python tests/parity/gen-round-fixtures.py [OUT]
"""
import os, random, struct, sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests/fixtures/round/round.txt")


def bits(f):
    return struct.unpack("<I", struct.pack("<f", f))[0]


edge = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000,   # zeros, infinities
        0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001,   # NaNs (quiet, signalling, signs)
        0x7FA00000, 0x7FFFFFFF, 0x7F812345,
        0x00000001, 0x007FFFFF, 0x00800000, 0x80000001,   # fp32 subnormals, min normal
        0x7F7FFFFF, 0x7F7F7FFF, 0x7F7F8000, 0x7F7F8001,   # near FLT_MAX (bf16 overflow)
        bits(65504.0), bits(65519.0), 0x477FEFFF, 0x477FF000, 0x477FF001, bits(65536.0),
        bits(-65520.0),                                     # fp16 overflow boundary
        bits(2.0**-14), bits(2.0**-24), bits(2.0**-25), 0x33000001, bits(3 * 2.0**-26),
        bits(2.0**-15 + 2.0**-25), bits(2.0**-15 + 2.0**-24 + 2.0**-25),  # subnormal ties
        bits(2.0**-14 - 2.0**-25), bits(-2.0**-26),
        0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF,   # bf16 ties (even/odd), around
        0x3F801000, 0x3F803000, 0x3F801001, 0x3F800FFF,   # fp16 ties, around
        bits(1.0), bits(-1.0), bits(0.1), bits(1.0 / 3.0), bits(3.14159265)]
rng = random.Random(7)
rand = []
for _ in range(2000):
    rand.append(rng.getrandbits(32))
for _ in range(2000):  # exponents around the fp16 range
    e = rng.randint(127 - 30, 127 + 17)
    rand.append((rng.getrandbits(1) << 31) | (e << 23) | rng.getrandbits(23))
xs = edge + rand
# from the bits (a Python float would quiet signalling NaNs)
x = torch.frombuffer(bytearray(struct.pack("<%dI" % len(xs), *xs)), dtype=torch.float32).clone()
b = x.to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xFFFF
h = x.half().view(torch.int16).to(torch.int32) & 0xFFFF
with open(out, "w") as f:
    for xb, bb, hb in zip(xs, b.tolist(), h.tolist()):
        f.write("%08x %04x %04x\n" % (xb, bb, hb))

#!/usr/bin/env python3
"""Writes tests/fixtures/quant/*.bin: bitsandbytes' 4-bit quantization
(bitsandbytes.functional.quantize_4bit / dequantize_4bit on CPU tensors) of
deterministic fp32 inputs, for test-quant.c to reproduce bit for bit.

Also writes tests/fixtures/quant/bounds.txt: for nf4 and fp4, the code
book, the decision bounds and the bucket-to-code order that bitsandbytes'
CPU quantize_4bit uses (bitsandbytes/backends/default/ops.py), as hex
floats, so the tables in lib/base/quant-common.h are checked against them; and
the 8-bit dynamic map that double quantization uses (create_dynamic_map).

Case file format (little-endian):
  char magic[4] "TKQ4"; u32 quant_type (0 nf4, 1 fp4); u32 blocksize;
  u32 n; u32 nblocks; u32 nested (1 if double-quant stats follow)
  f32 input[n]; u8 packed[(n+1)/2]; f32 absmax[nblocks]; f32 dequant[n]
  if nested: f32 offset; u32 nested_blocks; f32 nested_absmax[nested_blocks];
             u8 qabsmax[nblocks]; f32 nested_code[256];
             f32 dequant_nested[n] (dequantize_4bit with the nested state)
"""
import os
import struct
import sys

import numpy as np
import torch
import bitsandbytes.functional as F
from bitsandbytes.backends.default.ops import _get_4bit_quantize_bounds

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "quant")


def special_values(quant_type):
    """Values to place in blocks whose absmax is exactly 1 (scale exactly
    1): code values, the exact decision bounds (ties), their float
    neighbours, +-1, zeros, -0."""
    code = F.get_4bit_type(quant_type, device="cpu")
    bounds, _ = _get_4bit_quantize_bounds(quant_type, torch.device("cpu"))
    v = [-1.0, 0.0, -0.0]
    v += code.tolist()
    for b in bounds.tolist():
        b32 = np.float32(b)
        v += [float(b32), float(np.nextafter(b32, np.float32(2))),
              float(np.nextafter(b32, np.float32(-2)))]
    return v


def make_input(quant_type, bs, n, seed, zero_tail=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32) * np.float32(0.05)
    sp = special_values(quant_type)
    per = bs - 1
    nsp = -(-len(sp) // per)                              # blocks needed
    if n >= (nsp + 2) * bs:
        for k in range(nsp):                              # specials, absmax 1
            chunk = sp[k * per:(k + 1) * per]
            blk = [1.0] + chunk + list(rng.uniform(-1, 1, per - len(chunk)))
            x[k * bs:(k + 1) * bs] = np.array(blk, dtype=np.float32)
        k = nsp * bs
        x[k:k + bs] = 0.0                                 # an all-zero block
        # code values times a non-trivial absmax
        am = np.float32(0.37)
        code = F.get_4bit_type(quant_type, device="cpu").numpy()
        y = rng.choice(code, bs).astype(np.float32) * am
        y[0] = am
        y[1] = -am
        x[k + bs:k + 2 * bs] = y
        if n > (nsp + 4) * bs:
            x[(nsp + 2) * bs] = np.float32(-3.5)          # negative extreme
            x[(nsp + 3) * bs + 1] = np.float32(2.75)
    if zero_tail:
        x[n - (n % bs):] = 0.0
    return x


def make_ties_input(quant_type, bs, n, seed):
    """Every block, the short last one included, holds its absmax first and
    then fp32 products bound * absmax and their neighbours, for absmax
    values that are not powers of two: the scaled values land on or next
    to the decision bounds, where multiplying by 1/absmax (full blocks)
    and dividing by absmax (the short last block) give different codes."""
    rng = np.random.default_rng(seed)
    bounds, _ = _get_4bit_quantize_bounds(quant_type, torch.device("cpu"))
    bounds = bounds.numpy().astype(np.float32)
    x = np.empty(n, dtype=np.float32)
    for lo in range(0, n, bs):
        hi = min(lo + bs, n)
        am = np.float32(rng.uniform(0.01, 3.0))
        v = [am]
        while len(v) < hi - lo:
            b = np.float32(rng.choice(bounds)) * am
            v.append(np.nextafter(b, np.float32(rng.choice([-9, 9])))
                     if rng.random() < 0.3 else b)
        x[lo:hi] = np.array(v, dtype=np.float32)
    return x


def write_case(name, quant_type, bs, x):
    t = torch.from_numpy(x.copy())
    packed, st = F.quantize_4bit(t, blocksize=bs, quant_type=quant_type,
                                 compress_statistics=False)
    deq = F.dequantize_4bit(packed, st).reshape(-1)
    packed2, st2 = F.quantize_4bit(t, blocksize=bs, quant_type=quant_type,
                                   compress_statistics=True)
    assert torch.equal(packed, packed2)
    n = x.size
    nb = st.absmax.numel()
    assert packed.numel() == (n + 1) // 2
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(b"TKQ4")
        f.write(struct.pack("<5I", 0 if quant_type == "nf4" else 1, bs, n, nb, 1))
        f.write(x.astype("<f4").tobytes())
        f.write(packed.reshape(-1).numpy().astype(np.uint8).tobytes())
        f.write(st.absmax.numpy().astype("<f4").tobytes())
        f.write(deq.numpy().astype("<f4").tobytes())
        s2 = st2.state2
        assert st2.absmax.dtype == torch.uint8 and st2.absmax.numel() == nb
        f.write(struct.pack("<f", float(st2.offset)))
        f.write(struct.pack("<I", s2.absmax.numel()))
        f.write(s2.absmax.numpy().astype("<f4").tobytes())
        f.write(st2.absmax.numpy().astype(np.uint8).tobytes())
        assert s2.code.numel() == 256 and s2.blocksize == 256
        f.write(s2.code.numpy().astype("<f4").tobytes())
        deq2 = F.dequantize_4bit(packed2, st2).reshape(-1)
        f.write(deq2.numpy().astype("<f4").tobytes())


def write_nest_case():
    """nest.bin: double quantization of 33000 absmax values (more than
    torch's 32768-element grain, so torch.mean splits over threads).  The
    weight has one non-zero value per block of 32, so its absmax vector is
    chosen freely without storing the 1M-value weight.
    Format: u32 n; f32 absmax[n]; f32 offset (2 threads); f32 offset
    (1 thread); u8 qabsmax[n]; u32 nested_blocks; f32 nested_absmax[...]
    (the last three from the 2-thread run)."""
    rng = np.random.default_rng(20)
    n, bs = 33000, 32
    am = np.exp(rng.normal(-3.0, 0.6, n)).astype(np.float32)
    am[:50] = am[0]                              # a run of equal values
    am[100:356] = am[100]                        # a nested block of one value
    w = np.zeros((n, bs), dtype=np.float32)
    w[np.arange(n), rng.integers(0, bs, n)] = am * np.where(rng.random(n) < 0.5, -1, 1)
    t = torch.from_numpy(w.reshape(-1))
    res = {}
    for threads in (2, 1):
        torch.set_num_threads(threads)
        packed, st = F.quantize_4bit(t, blocksize=bs, quant_type="nf4",
                                     compress_statistics=True)
        res[threads] = st
    torch.set_num_threads(2)
    _, plain = F.quantize_4bit(t, blocksize=bs, quant_type="nf4")
    assert np.array_equal(plain.absmax.numpy(), am)
    st = res[2]
    with open(os.path.join(OUT, "nest.bin"), "wb") as f:
        f.write(struct.pack("<I", n))
        f.write(am.astype("<f4").tobytes())
        f.write(struct.pack("<ff", float(res[2].offset), float(res[1].offset)))
        f.write(st.absmax.numpy().astype(np.uint8).tobytes())
        f.write(struct.pack("<I", st.state2.absmax.numel()))
        f.write(st.state2.absmax.numpy().astype("<f4").tobytes())


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "bounds.txt"), "w") as f:
        for qt in ("nf4", "fp4"):
            code = F.get_4bit_type(qt, device="cpu")
            bounds, order = _get_4bit_quantize_bounds(qt, torch.device("cpu"))
            f.write(qt + " code " + " ".join(float(v).hex() for v in code.tolist()) + "\n")
            f.write(qt + " bounds " + " ".join(float(v).hex() for v in bounds.tolist()) + "\n")
            f.write(qt + " order " + " ".join(str(int(v)) for v in order.tolist()) + "\n")
        dyn = F.create_dynamic_map().float()
        f.write("dynamic code " + " ".join(float(v).hex() for v in dyn.tolist()) + "\n")
    cases = [
        # name, type, blocksize, n, seed, zero tail
        ("nf4-b64", "nf4", 64, 64 * 12, 1, False),
        ("fp4-b64", "fp4", 64, 64 * 12, 2, False),
        ("nf4-b128-odd", "nf4", 128, 128 * 6 + 77, 3, False),
        ("fp4-b128-odd", "fp4", 128, 128 * 6 + 77, 4, False),
        ("nf4-b256", "nf4", 256, 256 * 5 + 10, 5, False),
        ("fp4-b32", "fp4", 32, 32 * 9 + 1, 6, False),
        ("nf4-b32", "nf4", 32, 32 * 7 + 31, 12, False),
        ("nf4-b64-zerotail", "nf4", 64, 64 * 6 + 9, 7, True),
        ("fp4-b64-zerotail", "fp4", 64, 64 * 6 + 9, 8, True),
        ("nf4-b64-short", "nf4", 64, 5, 9, False),
        ("nf4-b64-many", "nf4", 64, 64 * 300 + 33, 10, False),
        ("fp4-b4096", "fp4", 4096, 4096 + 1000, 11, False),
    ]
    for name, qt, bs, n, seed, zt in cases:
        write_case(name, qt, bs, make_input(qt, bs, n, seed, zt))
    ties = [
        ("nf4-b64-ties", "nf4", 64, 64 * 40 + 63, 13),
        ("fp4-b64-ties", "fp4", 64, 64 * 40 + 63, 14),
    ]
    for name, qt, bs, n, seed in ties:
        write_case(name, qt, bs, make_ties_input(qt, bs, n, seed))
    cases += ties
    write_nest_case()
    print("wrote", len(cases), "cases to", os.path.normpath(OUT), file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes tests/fixtures/adamw8/adamw8.txt: 10 steps of bitsandbytes'
AdamW with 8-bit state (bnb.optim.AdamW(optim_bits=8), what transformers'
Trainer builds for optim="adamw_8bit") on the CPU, over four parameters:
4097 elements (8-bit, a short last block), 4352 (8-bit, whole blocks),
4096 (8-bit, the smallest bitsandbytes quantizes) and 300 (below
min_8bit_size 4096: bitsandbytes' 32-bit state).  Two parameter groups
(weight decay 0.01 and 0), the learning rate changing every step.
test-adamw8 replays the same steps through tk_adamw8 and compares, after
every step, each parameter's state bytes and absmax with these, and after
steps 1 and 10 (PSTEPS) its values.

The inputs are not stored: both sides compute them from splitmix64
(tk_mix64 in lib/base/rng.h), every float formed exactly or with one
fp32 rounding, so C and numpy agree:
  x(key, i) = ((mix64(key + i * GAMMA) >> 40) - 2^23) * 2^-23   (exact)
  p0[i]     = x(1000 t, i) * 0.05f
  g_k[i]    = x(1000 t + k, i) * S[(i / 97 + k) % 6],  0 in block 2
with t the parameter's index and S the fp32 scales below.  Block 2
(elements 512..767) never gets a gradient: its state stays zero, absmax 0.

Format (text):
  case STEPS                          then, per parameter,
  param NAME N WD                     (WD as %.17g)
  pvalues K1 K2                       the steps whose values params.bin holds
  step K LR                           (lr of step K, %.17g)
  NAME s1 s2 a1 a2                    FNV-1a 64 (hex) of the bytes of the
                                      two states and the two absmax vectors
                                      after step K ('-' for the absmax of
                                      32-bit state)
tests/fixtures/adamw8/params.bin: the fp32 values (little-endian) of every
parameter in order after step K1, then after K2.
With --dump DIR it also writes DIR/NAME-K.npz with the arrays themselves,
for tests/parity/check-adamw8.py's element-wise comparison.
"""
import math
import os
import sys

import numpy as np
import torch
import bitsandbytes as bnb

STEPS = 10
GAMMA = 0x9E3779B97F4A7C15
M64 = (1 << 64) - 1
SCALES = np.array([1e-9, 1e-3, 1.0, 30.0, 2e-5, 0.25], dtype=np.float32)
PSTEPS = (1, STEPS)
PARAMS = [("a", 4097, 0.01), ("b", 4352, 0.0), ("c", 4096, 0.01), ("d", 300, 0.01)]


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def xs(key, n):
    h = np.array([mix64((key + i * GAMMA) & M64) >> 40 for i in range(n)], dtype=np.int64)
    return (h - (1 << 23)).astype(np.float32) * np.float32(2.0 ** -23)


def grad(t, k, n):
    i = np.arange(n)
    g = xs(1000 * t + k, n) * SCALES[(i // 97 + k) % 6]
    g[512:768] = 0
    return g.astype(np.float32)


def lr_at(k, base=2e-3, warmup=3):
    s = k - 1  # transformers' cosine with warmup, as gen-adamw-fixture.py
    if s < warmup:
        return base * float(s + 1) / float(warmup + 1)
    prog = float(s - warmup) / float(max(1, STEPS - warmup))
    return base * max(0.0, 0.5 * (1.0 + math.cos(math.pi * prog)))


def fnv(a):
    h = 0xCBF29CE484222325
    for b in np.ascontiguousarray(a).tobytes():
        h = ((h ^ b) * 0x100000001B3) & M64
    return "%016x" % h


def main():
    args = sys.argv[1:]
    dump = None
    if args[:1] == ["--dump"]:
        dump, args = args[1], args[2:]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    path = args[0] if args else os.path.join(root, "tests", "fixtures", "adamw8", "adamw8.txt")
    torch.set_num_threads(1)
    ps = [torch.nn.Parameter(torch.from_numpy(xs(1000 * t, n) * np.float32(0.05)))
          for t, (_, n, _) in enumerate(PARAMS)]
    groups = [{"params": [p for p, (_, _, wd) in zip(ps, PARAMS) if wd > 0], "weight_decay": 0.01},
              {"params": [p for p, (_, _, wd) in zip(ps, PARAMS) if wd == 0], "weight_decay": 0.0}]
    opt = bnb.optim.AdamW(groups, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, optim_bits=8)
    lines = ["# bitsandbytes %s, torch %s: tests/parity/gen-adamw8-fixture.py"
             % (bnb.__version__, torch.__version__), "case %d" % STEPS]
    for name, n, wd in PARAMS:
        lines.append("param %s %d %.17g" % (name, n, wd))
    lines.append("pvalues %d %d" % PSTEPS)
    pvals = []
    for k in range(1, STEPS + 1):
        lr = lr_at(k)
        for grp in opt.param_groups:
            grp["lr"] = lr
        for t, (p, (_, n, _)) in enumerate(zip(ps, PARAMS)):
            p.grad = torch.from_numpy(grad(t, k, n))
        opt.step()
        lines.append("step %d %.17g" % (k, lr))
        for p, (name, n, _) in zip(ps, PARAMS):
            st = opt.state[p]
            arrs = [p.detach().numpy(), st["state1"].numpy(), st["state2"].numpy()]
            eight = st["state1"].dtype == torch.uint8
            assert eight == (n >= 4096)
            if eight:
                arrs += [st["absmax1"].numpy(), st["absmax2"].numpy()]
            hs = [fnv(a) for a in arrs[1:]] + ([] if eight else ["-", "-"])
            if k in PSTEPS:
                pvals.append(np.array(arrs[0], dtype="<f4", copy=True).reshape(-1))
            lines.append("%s %s" % (name, " ".join(hs)))
            if dump:
                np.savez(os.path.join(dump, "%s-%d.npz" % (name, k)),
                         *[np.array(a, copy=True) for a in arrs])
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    bpath = os.path.join(os.path.dirname(path), "params.bin")
    with open(bpath + ".tmp", "wb") as f:
        f.write(np.concatenate(pvals).tobytes())
    os.replace(bpath + ".tmp", bpath)


if __name__ == "__main__":
    main()

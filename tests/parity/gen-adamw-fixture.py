#!/usr/bin/env python3
"""Writes tests/fixtures/adamw/adamw.txt: 10 steps of torch.optim.AdamW
(foreach=False, the single-tensor path) on a parameter of 131 fp32 values
(whole vectors of torch's kernels plus a tail), with weight decay and a
learning rate that changes every step (linear warmup then cosine, as
transformers' get_cosine_schedule_with_warmup), for two sets of
hyperparameters.  test-backend-ops replays the same gradients through
tk_adamw and compares p, m and v after every step.

Format (text, every float printed with %.9g so it reads back bit-exact):
  case NAME n STEPS lr BETA1 BETA2 EPS WD      (hyperparameters as doubles)
  p0 v1 ... vn                                  (initial parameter)
  step K LR                                     (lr used at step K, %.17g)
  g v1 ... vn
  p v1 ... vn                                   (torch's values after step K)
  m v1 ... vn
  v v1 ... vn
"""
import math
import os
import sys

import torch

N = 131
STEPS = 10


def schedule(base, step, warmup=3, total=STEPS):
    # transformers' get_cosine_schedule_with_warmup (num_cycles 0.5): the
    # lambda of scheduler step s = step - 1, so the first update has lr 0.
    s = step - 1
    if s < warmup:
        return base * float(s) / float(max(1, warmup))
    prog = float(s - warmup) / float(max(1, total - warmup))
    return base * max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * prog)))


def fmt(t):
    return " ".join("%.9g" % x for x in t.tolist())


def run(out, name, lr, betas, eps, wd, seed):
    g = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(N, generator=g, dtype=torch.float32) * 0.05)
    opt = torch.optim.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=wd,
                            foreach=False, fused=False)
    out.write("case %s %d %d %.17g %.17g %.17g %.17g %.17g\n"
              % (name, N, STEPS, lr, betas[0], betas[1], eps, wd))
    out.write("p0 " + fmt(p.detach()) + "\n")
    for k in range(1, STEPS + 1):
        grad = torch.randn(N, generator=g, dtype=torch.float32)
        # a spread of magnitudes: tiny (below eps), zero, and large
        scale = torch.tensor([1e-9, 0.0, 1e-3, 1.0, 30.0])[torch.arange(N) % 5]
        grad = grad * scale
        cur = schedule(lr, k)
        for group in opt.param_groups:
            group["lr"] = cur
        p.grad = grad.clone()
        opt.step()
        st = opt.state[p]
        out.write("step %d %.17g\n" % (k, cur))
        out.write("g " + fmt(grad) + "\n")
        out.write("p " + fmt(p.detach()) + "\n")
        out.write("m " + fmt(st["exp_avg"]) + "\n")
        out.write("v " + fmt(st["exp_avg_sq"]) + "\n")


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        root, "tests", "fixtures", "adamw", "adamw.txt")
    torch.set_num_threads(1)
    tmp = path + ".tmp"
    with open(tmp, "w") as out:
        out.write("# torch %s: tests/parity/gen-adamw-fixture.py\n" % torch.__version__)
        run(out, "default", 1e-3, (0.9, 0.999), 1e-8, 0.01, 1)
        run(out, "strong-wd", 3e-2, (0.8, 0.95), 1e-6, 0.1, 2)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Learning rates from transformers' schedulers, for tests/unit/test-sched.c.

Writes tests/fixtures/sched/lr.txt: per case a line "CASE type base_lr warmup total"
(warmup as given to TrainingArguments: steps, or a fraction below 1) followed by
one line per scheduler step k = 0..total+1: "k warmup_steps lr" with lr =
scheduler.get_last_lr()[0] after k calls of scheduler.step(), printed with
repr() (shortest round-trip form).  Run with the reference venv:
    .venv/bin/python tests/parity/gen-sched-fixture.py [OUT]
"""
import os, sys

import torch
from transformers import TrainingArguments, get_scheduler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests/fixtures/sched/lr.txt")
cases = []
for kind in ("linear", "cosine", "constant", "constant_with_warmup"):
    for base, warmup, total in ((5e-5, 0, 10), (2e-4, 3, 17), (1e-3, 0.1, 25), (3e-4, 0.05, 7),
                                (1e-4, 10, 10)):
        cases.append((kind, base, warmup, total))
lines = []
for kind, base, warmup, total in cases:
    args = TrainingArguments(output_dir="/tmp/unused", warmup_steps=warmup, report_to=[])
    w = args.get_warmup_steps(total)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=base)
    sched = get_scheduler(kind, opt, num_warmup_steps=w, num_training_steps=total)
    lines.append(f"CASE {kind} {base!r} {warmup!r} {total}")
    for k in range(total + 2):
        lines.append(f"{k} {w} {sched.get_last_lr()[0]!r}")
        opt.step()
        sched.step()
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")

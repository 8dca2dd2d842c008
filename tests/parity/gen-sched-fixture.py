#!/usr/bin/env python3
"""Learning rates from transformers' schedulers, for tests/unit/test-schedule.c.

Writes tests/fixtures/sched/lr.txt: per case a line
"CASE type base_lr warmup total KWARGS" (warmup as given to TrainingArguments:
steps, or a fraction below 1; KWARGS the lr_scheduler_kwargs as compact JSON)
followed by one line per scheduler step k = 0..total+1: "k warmup_steps lr"
with lr = scheduler.get_last_lr()[0] after k calls of scheduler.step(),
printed with repr() (shortest round-trip form).

reduce_lr_on_plateau follows as "PLATEAU base_lr KWARGS", then per
evaluation "metric lr": the rate after scheduler.step(metric), as the
Trainer steps it after each evaluation.

Cases get_scheduler refuses are "REFUSE type base_lr warmup total KWARGS".
Run with the reference venv:
    .venv/bin/python tests/parity/gen-sched-fixture.py [OUT]
"""
import json, math, os, sys

import torch
from transformers import TrainingArguments, get_scheduler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests/fixtures/sched/lr.txt")
steps = ((5e-5, 0, 10), (2e-4, 3, 17), (1e-3, 0.1, 25), (3e-4, 0.05, 7), (1e-4, 10, 10))
cases = []
for kind in ("linear", "cosine", "constant", "constant_with_warmup"):
    for base, warmup, total in steps:
        cases.append((kind, base, warmup, total, {}))
# every other schedule, with its defaults and with kwargs
more = {
    "cosine": [{"num_cycles": 1.5}, {"num_cycles": 0.25}],
    "cosine_with_restarts": [{}, {"num_cycles": 3}, {"num_cycles": 2.5}],
    "polynomial": [{}, {"power": 2.0, "lr_end": 1e-5}, {"power": 0.5}],
    "inverse_sqrt": [{}, {"timescale": 7}],
    "cosine_with_min_lr": [{"min_lr_rate": 0.1}, {"min_lr": 1e-5, "num_cycles": 1.0}],
    "cosine_warmup_with_min_lr": [{"min_lr_rate": 0.05},
                                  {"min_lr": 2e-6, "warmup_lr_rate": 0.1}],
    "warmup_stable_decay": [{"num_decay_steps": 4},
                            {"num_decay_steps": 3, "num_stable_steps": 2,
                             "warmup_type": "cosine", "decay_type": "linear",
                             "min_lr_ratio": 0.1},
                            {"num_decay_steps": 5, "warmup_type": "1-sqrt",
                             "decay_type": "1-sqrt"},
                            {"num_decay_steps": 6, "decay_type": "cosine", "num_cycles": 1.0}],
    "constant": [{"num_cycles": 2}],  # get_scheduler passes constant nothing
}
for kind, kws in more.items():
    for kw in kws:
        for base, warmup, total in steps[1:4]:
            cases.append((kind, base, warmup, total, kw))
refuse = [
    ("polynomial", 1e-4, 0, 10, {"lr_end": 1e-3}),
    ("cosine_with_min_lr", 1e-4, 0, 10, {}),
    ("cosine_with_min_lr", 1e-4, 0, 10, {"min_lr": 1e-5, "min_lr_rate": 0.1}),
    ("warmup_stable_decay", 1e-4, 0, 10, {}),
    ("linear", 1e-4, 0, 10, {"num_cycles": 2}),
    ("cosine", 1e-4, 0, 10, {"power": 2}),
    ("reduce_lr_on_plateau", 1e-4, 0, 10, {"factor": 1.0}),
]


def make(kind, base, warmup, total, kw):
    args = TrainingArguments(output_dir="/tmp/unused", warmup_steps=warmup, report_to=[])
    w = args.get_warmup_steps(total)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=base)
    return w, opt, get_scheduler(kind, opt, num_warmup_steps=w, num_training_steps=total,
                                 scheduler_specific_kwargs=dict(kw))


lines = []
for kind, base, warmup, total, kw in cases:
    w, opt, sched = make(kind, base, warmup, total, kw)
    lines.append(f"CASE {kind} {base!r} {warmup!r} {total} {json.dumps(kw, separators=(',', ':'))}")
    for k in range(total + 2):
        lines.append(f"{k} {w} {sched.get_last_lr()[0]!r}")
        opt.step()
        sched.step()
for kind, base, warmup, total, kw in refuse:
    try:
        make(kind, base, warmup, total, kw)
    except (TypeError, ValueError):
        lines.append(f"REFUSE {kind} {base!r} {warmup!r} {total} "
                     f"{json.dumps(kw, separators=(',', ':'))}")
    else:
        sys.exit(f"{kind} {kw}: get_scheduler accepted it")
# reduce_lr_on_plateau: metric sequences that improve, stall, and recover
metrics = [3.0, 2.5, 2.5, 2.49999, 2.6, 2.4, 2.4, 2.4, 2.4, 2.39, 2.5, 2.5, 2.5, 2.5, 2.5,
           1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
plateau = [
    {"patience": 1},
    {"patience": 2, "factor": 0.5, "cooldown": 2},
    {"patience": 0, "factor": 0.5, "min_lr": 2e-5, "threshold": 0.01},
    {"patience": 1, "mode": "max", "threshold_mode": "abs", "threshold": 0.05},
    {"patience": 1, "threshold_mode": "abs", "eps": 1e-3},
    {},
]
for kw in plateau:
    base = 1e-4
    w, opt, sched = make("reduce_lr_on_plateau", base, 0, 10, kw)
    lines.append(f"PLATEAU {base!r} {json.dumps(kw, separators=(',', ':'))}")
    for m in metrics:
        sched.step(m)
        lines.append(f"{m!r} {opt.param_groups[0]['lr']!r}")
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")

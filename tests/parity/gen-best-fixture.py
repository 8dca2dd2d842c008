#!/usr/bin/env python3
"""Best-model tracking, early stopping and checkpoint rotation as transformers
runs them, for tests/unit/test-best.c.

Writes tests/fixtures/best/best.txt.  Evaluation runs use the Trainer's own
_determine_best_metric (called on a stand-in holding args and state) and
EarlyStoppingCallback.on_evaluate, in the Trainer's order (the callback
inside evaluate(), then the best metric):
    RUN greater patience threshold
    value step -> stop best_metric best_step counter new_best
Rotation cases call trainer_utils.rotate_checkpoints on real directories:
    ROT limit best_step steps... -> kept steps...
Run with the reference venv:
    .venv/bin/python tests/parity/gen-best-fixture.py [OUT]
"""
import os, sys, tempfile
from types import SimpleNamespace

from transformers import Trainer, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import EarlyStoppingCallback
from transformers.trainer_utils import rotate_checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests/fixtures/best/best.txt")
nan = float("nan")
seqs = [
    [3.0, 2.5, 2.6, 2.4, 2.45, 2.41, 2.5, 2.0, 2.0, 2.1],
    [1.0, 1.0, 1.0, 0.999, 0.99, 0.98, 1.2, 0.5],
    [2.0, nan, 1.5, nan, nan, 1.4, 1.6, 1.7],
    [nan, 3.0, 2.0, 2.5, 2.5, 2.5, 1.0],
]
runs = []
for seq in seqs:
    for greater in (False, True):
        for patience, threshold in ((0, 0.0), (1, 0.0), (2, 0.0), (3, 0.05), (2, 0.2)):
            runs.append((seq, greater, patience, threshold))
lines = []
for seq, greater, patience, threshold in runs:
    args = TrainingArguments(output_dir="/tmp/unused", report_to=[], eval_strategy="steps",
                             metric_for_best_model="loss", greater_is_better=greater)
    state = TrainerState()
    fake = SimpleNamespace(args=args, state=state)
    cb = EarlyStoppingCallback(early_stopping_patience=max(patience, 1),
                               early_stopping_threshold=threshold)
    lines.append(f"RUN {int(greater)} {patience} {threshold!r}")
    for i, v in enumerate(seq):
        step = 10 * (i + 1)
        state.global_step = step
        control = TrainerControl()
        if patience:
            cb.on_evaluate(args, state, control, metrics={"eval_loss": v})
        new = Trainer._determine_best_metric(fake, metrics={"eval_loss": v}, trial=None)
        bm = state.best_metric
        lines.append(f"{v!r} {step} {int(control.should_training_stop)} {bm!r} "
                     f"{state.best_global_step or 0} {cb.early_stopping_patience_counter if patience else 0} "
                     f"{int(new)}")
rot = [
    (2, 0, [5, 10, 15, 20]), (2, 10, [5, 10, 15, 20]), (1, 10, [5, 10, 15, 20]),
    (1, 20, [5, 10, 15, 20]), (3, 5, [5, 10, 15, 20, 25]), (1, 0, [7]), (5, 10, [10, 20]),
    (2, 15, [20, 5, 15, 10]), (3, 99, [1, 2, 3, 4, 5]), (0, 1, [1, 2, 3]),
]
for limit, best, steps in rot:
    with tempfile.TemporaryDirectory() as d:
        for s in steps:
            os.mkdir(os.path.join(d, f"checkpoint-{s}"))
        rotate_checkpoints(d, save_total_limit=limit,
                           best_model_checkpoint=os.path.join(d, f"checkpoint-{best}") if best else None,
                           use_mtime=False)
        kept = sorted(int(n.split("-")[1]) for n in os.listdir(d))
    lines.append(f"ROT {limit} {best} {' '.join(map(str, steps))} -> {' '.join(map(str, kept))}")
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")

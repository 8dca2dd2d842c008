#!/usr/bin/env python3
"""make parity: tk's TensorBoard event files, read by the tensorboard package.

- tboard-fixture: tests/parity/gen-tboard-fixture.py, run with the installed
  tensorboard, still writes the committed tests/fixtures/tboard/events.bin
  (the bytes test-tboard.c holds lib/formats/tboard.c to).
- tboard-tk-train: tk-train --report-to tensorboard on the fixture model;
  the event file is read with tensorboard's EventAccumulator (the scalars
  API) and with plugin_event_accumulator (what the TensorBoard UI reads:
  simple_value turned into scalar tensors); every tag must hold, at the
  same steps, the values of OUT/metrics.jsonl (as float32), with
  transformers' rewrite_logs() names (train/loss, eval/loss...).
Prints "PASS name" or "FAIL name: detail".
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
from tensorboard.util import tensor_util

ROOT = os.environ.get("TK_ROOT") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")


def check_fixture():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "events.bin")
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "parity",
                                                     "gen-tboard-fixture.py"), path], check=True)
        with open(path, "rb") as f, open(os.path.join(FIX, "tboard", "events.bin"), "rb") as g:
            if f.read() == g.read():
                print("PASS tboard-fixture")
            else:
                print("FAIL tboard-fixture: tests/fixtures/tboard/events.bin differs from what "
                      "this tensorboard writes (rerun gen-tboard-fixture.py and test-tboard)")


def expected(metrics_path):
    """{tag: [(step, value)]} from metrics.jsonl, as TensorBoardCallback
    names them (rewrite_logs)."""
    want = {}
    with open(metrics_path) as f:
        for line in f:
            e = json.loads(line)
            step = e.pop("step")
            if "train_loss" in e:                       # the summary at the end
                keys = {"train_loss": "train/train_loss",
                        "train_runtime": "train/train_runtime", "epoch": "train/epoch"}
            elif "eval_loss" in e:
                keys = {"eval_loss": "eval/loss", "eval_perplexity": "eval/perplexity",
                        "epoch": "train/epoch"}
            else:
                keys = {"loss": "train/loss", "grad_norm": "train/grad_norm",
                        "learning_rate": "train/learning_rate", "epoch": "train/epoch"}
            for k, tag in keys.items():
                want.setdefault(tag, []).append((step, e[k]))
    return want


def compare(name, got, want):
    bad = []
    for tag, pts in sorted(want.items()):
        g = got.get(tag)
        if g is None:
            bad.append("%s: missing" % tag)
            continue
        if [s for s, _ in g] != [s for s, _ in pts]:
            bad.append("%s: steps %s, want %s" % (tag, [s for s, _ in g], [s for s, _ in pts]))
            continue
        for (s, v), (_, w) in zip(g, pts):
            # train_runtime: metrics.jsonl rounds it to 4 decimals
            tol = 1e-4 if tag == "train/train_runtime" else 0
            if abs(float(np.float32(v)) - float(np.float32(w))) > tol:
                bad.append("%s at step %d: %r, want %r" % (tag, s, v, w))
    for tag in ("train/tokens_per_second", "train/peak_rss_mb", "train/train_tokens_per_second"):
        if not got.get(tag) or any(not v > 0 for _, v in got[tag]):
            bad.append("%s: missing or not positive" % tag)
    if bad:
        print("FAIL %s: %s" % (name, "; ".join(bad[:6])))
    else:
        print("PASS %s" % name)


def check_tk_train():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        cmd = ["tk-train", "-q", "--model", os.path.join(FIX, "train", "model"), "--data",
               os.path.join(FIX, "train", "blocks"), "-o", out, "--max-steps", "6",
               "--per-device-train-batch-size", "4", "--logging-steps", "2",
               "--eval-strategy", "steps", "--eval-steps", "3", "--save-strategy", "no",
               "--threads", "1", "--report-to", "tensorboard"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            print("FAIL tboard-tk-train: tk-train exit %d: %s" % (r.returncode, r.stderr[-400:]))
            return
        runs = os.listdir(os.path.join(out, "runs"))
        if len(runs) != 1:
            print("FAIL tboard-tk-train: %d runs in OUT/runs" % len(runs))
            return
        logdir = os.path.join(out, "runs", runs[0])
        want = expected(os.path.join(out, "metrics.jsonl"))

        ea = event_accumulator.EventAccumulator(logdir, size_guidance={"scalars": 0})
        ea.Reload()
        got = {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}
        fv = ea.file_version
        if fv != 2.0:
            print("FAIL tboard-tk-train: file_version %r" % fv)
            return
        compare("tboard-tk-train", got, want)

        pa = plugin_event_accumulator.EventAccumulator(logdir, size_guidance={"tensors": 0})
        pa.Reload()
        got = {t: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                   for e in pa.Tensors(t)] for t in pa.Tags()["tensors"]}
        compare("tboard-tk-train-ui", got, want)


def main():
    check_fixture()
    check_tk_train()


if __name__ == "__main__":
    main()

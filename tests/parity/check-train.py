#!/usr/bin/env python3
"""make parity: tk-train against transformers' Trainer, live.

Regenerates the fixture of gen-train-fixture.py in a temporary directory
(a tiny GPT-2, tk-pack blocks, Trainer.train() with train-args.json on them
in file order), trains the same model with tk-train --config train-args.json
--no-shuffle, and compares the final weights (relative to each tensor's
largest value; GPT-2's key biases, whose gradient is zero in exact
arithmetic, only within an absolute 1e-4) and the logged loss, grad_norm,
learning_rate, epoch and eval_loss.  Prints PASS/FAIL lines.
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("TK_BIN", os.path.join(ROOT, "bin"))


def check(name, ok, what):
    print(("PASS " if ok else "FAIL ") + name + ": " + what)
    return ok


def main():
    spec = importlib.util.spec_from_file_location("gen", os.path.join(HERE, "gen-train-fixture.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        fix = os.path.join(tmp, "fix")
        sys.argv = ["gen", fix]
        gen.main()
        out = os.path.join(tmp, "out")
        subprocess.run([os.path.join(BIN, "tk-train"), "-q", "--model", os.path.join(fix, "model"),
                        "--data", os.path.join(fix, "blocks"), "--config",
                        os.path.join(fix, "train-args.json"), "--no-shuffle", "--threads", "1",
                        "-o", out], check=True, stdout=subprocess.DEVNULL)
        got = load_file(os.path.join(out, "model.safetensors"))
        want = load_file(os.path.join(fix, "expected", "model.safetensors"))
        worst, where, kb = 0.0, "", 0.0
        for k, w in want.items():
            d = np.abs(got[k].astype(np.float64) - w)
            if k.endswith("attn.c_attn.bias"):
                c = w.shape[0] // 3
                kb = max(kb, float(d[c:2 * c].max()))
                d = np.concatenate([d[:c], d[2 * c:]])
            e = float(d.max() / max(np.abs(w).max(), 1e-30))
            if e > worst:
                worst, where = e, k
        ok &= check("train-weights", worst < 1e-5 and kb < 1e-4,
                    f"{len(want)} tensors after 10 steps, worst relative error {worst:.2e} "
                    f"({where}), key biases within {kb:.2e}")
        with open(os.path.join(fix, "expected", "expected.json")) as f:
            hist = json.load(f)["log_history"]
        with open(os.path.join(out, "metrics.jsonl")) as f:
            mine = [json.loads(l) for l in f if "train_loss" not in l]
        ok &= check("train-log-length", len(mine) == len(hist),
                    f"{len(mine)} entries, the Trainer logged {len(hist)}")
        errs = {}
        for a, b in zip(mine, hist):
            for k, v in b.items():
                if k == "step":
                    errs["step"] = max(errs.get("step", 0), abs(a[k] - v))
                elif v == 0:
                    errs[k] = max(errs.get(k, 0), abs(a[k]))
                else:
                    errs[k] = max(errs.get(k, 0), abs(a[k] - v) / abs(v))
        ok &= check("train-log", all(e < 1e-5 for e in errs.values()),
                    ", ".join(f"{k} {e:.2e}" for k, e in sorted(errs.items())))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

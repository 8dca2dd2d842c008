#!/usr/bin/env python3
"""make parity: tk's safetensors writer and config.json writer against the
Python safetensors library and transformers, live.

- Files that safetensors.torch / safetensors.numpy save_file write now
  (the fixture tensors and seeded random sets) are read and rewritten by
  tk (build/tests/test-safetensors with TK_ST_PARITY_DIR): the bytes must
  be identical.
- A file tk writes from scratch is loaded by safetensors: values, dtypes,
  shapes and metadata must be what tk was given.
- config.json files that transformers writes now (and the committed
  fixtures) are loaded and saved by tk (build/tests/test-config with
  TK_CONFIG_PARITY_DIR): AutoConfig must read tk's file into the same
  model (sizes, biases, tying, ids), and tk's parameter count must equal
  sum(p.numel() for p in model.parameters()).

Prints "PASS name" or "FAIL name: detail" per check.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import load_file as pt_load_file
from safetensors.torch import save_file as pt_save_file
from transformers import AutoConfig
from transformers.utils import logging as hf_logging

ROOT = os.environ.get("TK_ROOT") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("TK_BUILD", "build"), "tests")
spec = importlib.util.spec_from_file_location(
    "gen", os.path.join(ROOT, "tests", "parity", "gen-safetensors-fixtures.py"))
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)
hf_logging.set_verbosity_error()

failed = 0


def report(name, ok, detail=""):
    global failed
    if ok:
        print("PASS %s" % name)
    else:
        failed += 1
        print("FAIL %s: %s" % (name, detail))


def random_tensors(seed):
    rng = np.random.default_rng(seed)
    dts = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8,
           torch.int16, torch.int32, torch.int64, torch.bool, torch.uint16, torch.uint32,
           torch.uint64]
    out = {}
    for i in range(int(rng.integers(1, 30))):
        name = "".join(rng.choice(list("abcxyz._0123456789\u00e9\"\\\n")) for _ in range(
            int(rng.integers(1, 12))))
        shape = tuple(int(x) for x in rng.integers(0, 5, size=int(rng.integers(0, 4))))
        dt = dts[int(rng.integers(0, len(dts)))]
        t = torch.from_numpy(np.asarray(rng.standard_normal(shape) * 100, dtype=np.float32))
        out[name] = t.to(dt) if dt != torch.bool else t > 0
    return out


def check_safetensors(tmp):
    os.makedirs(os.path.join(tmp, "in"))
    os.makedirs(os.path.join(tmp, "out"))
    rng = np.random.default_rng(1)
    t = gen.mixed_tensors(rng)
    pt_save_file(t, os.path.join(tmp, "in", "mixed.safetensors"), metadata={"format": "pt"})
    np_save_file({k: v.numpy() for k, v in t.items() if v.dtype != torch.bfloat16},
                 os.path.join(tmp, "in", "plain.safetensors"))
    pt_save_file({}, os.path.join(tmp, "in", "empty.safetensors"))
    for seed in range(20):
        pt_save_file(random_tensors(seed), os.path.join(tmp, "in", "rand%02d.safetensors" % seed),
                     metadata={"format": "pt"} if seed % 2 else None)
    p = subprocess.run([os.path.join(BUILD, "test-safetensors")], capture_output=True, text=True,
                       env=dict(os.environ, TK_ST_PARITY_DIR=tmp, TK_ROOT=ROOT))
    report("tk rewrote the files", p.returncode == 0, p.stdout + p.stderr)
    for fn in sorted(os.listdir(os.path.join(tmp, "in"))):
        a = open(os.path.join(tmp, "in", fn), "rb").read()
        try:
            b = open(os.path.join(tmp, "out", fn), "rb").read()
        except OSError as e:
            report("rewrite %s" % fn, False, str(e))
            continue
        report("rewrite %s byte-identical" % fn, a == b, "%d vs %d bytes" % (len(a), len(b)))
    path = os.path.join(tmp, "out", "tk-made.safetensors")
    try:
        got = pt_load_file(path)
        with safe_open(path, "pt") as f:
            meta = f.metadata()
        x = torch.tensor([i * 0.3 - 0.5 for i in range(5)], dtype=torch.float32)
        want = {"w.f32": torch.arange(24, dtype=torch.float32).reshape(4, 6) / 8 - 1,
                "w.f16": x.to(torch.float16), "w.bf16": x.to(torch.bfloat16),
                "ids": torch.tensor([-1, 0, 2 ** 63 - 1], dtype=torch.int64)}
        ok = set(got) == set(want) and all(
            got[k].dtype == want[k].dtype and got[k].shape == want[k].shape and
            torch.equal(got[k], want[k]) for k in want)
        report("safetensors reads tk's file", ok, repr(got))
        report("safetensors reads tk's metadata", meta == {"format": "pt", "by": "tk"}, repr(meta))
        n = np_load_file(os.path.join(tmp, "out", "plain.safetensors"))
        report("numpy reads tk's rewrite", set(n) == {k for k, v in t.items()
                                                      if v.dtype != torch.bfloat16})
    except Exception as e:  # noqa: BLE001 - any failure to load is the finding
        report("safetensors reads tk's file", False, repr(e))


def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1e-30)
    return a == b


def check_configs(tmp):
    os.makedirs(os.path.join(tmp, "in"))
    os.makedirs(os.path.join(tmp, "out"))
    for name, cfg in gen.CONFIGS.items():
        d = tempfile.mkdtemp(dir=tmp)
        cfg.save_pretrained(d)
        shutil.copy(os.path.join(d, "config.json"), os.path.join(tmp, "in", "live-%s.json" % name))
    fix = os.path.join(ROOT, "tests", "fixtures", "configs")
    for fn in os.listdir(fix):
        if fn.endswith(".json"):
            shutil.copy(os.path.join(fix, fn), os.path.join(tmp, "in", fn))
    p = subprocess.run([os.path.join(BUILD, "test-config")], capture_output=True, text=True,
                       env=dict(os.environ, TK_CONFIG_PARITY_DIR=tmp, TK_ROOT=ROOT))
    report("tk loaded and saved the configs", p.returncode == 0, p.stdout + p.stderr)
    for fn in sorted(os.listdir(os.path.join(tmp, "in"))):
        name = fn[:-5]
        try:
            a = gen.describe(AutoConfig.from_pretrained(os.path.join(tmp, "in", fn)))
            b = gen.describe(AutoConfig.from_pretrained(os.path.join(tmp, "out", fn)))
            n = int(open(os.path.join(tmp, "out", name + ".n_params")).read())
        except Exception as e:  # noqa: BLE001
            report("config %s" % name, False, repr(e))
            continue
        diff = [k for k in a if not close(a[k], b.get(k))]
        report("config %s: transformers reads tk's file as the same model" % name, not diff,
               ", ".join("%s %r vs %r" % (k, a[k], b.get(k)) for k in diff))
        report("config %s: n_params" % name, n == a["n_params"], "%d vs %d" % (n, a["n_params"]))


def main():
    for need in ("test-safetensors", "test-config"):
        if not os.access(os.path.join(BUILD, need), os.X_OK):
            report(need, False, "not built (run make)")
            return 1
    with tempfile.TemporaryDirectory() as tmp:
        check_safetensors(os.path.join(tmp, "st"))
        check_configs(os.path.join(tmp, "cfg"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""make parity: tk's decoder against transformers, live.

1. Builds the fixture models and their reference outputs afresh with
   transformers (gen-model-fixtures.py's code) in a temporary directory.
2. Runs tk's model unit test on them (build/tests/test-model with
   TK_MODEL_FIXTURES pointing there): logits, loss and every gradient
   against transformers, save/load round trips.  TK_MODEL_KEEP makes it
   leave the models it saved there.
3. Loads with transformers' from_pretrained what tk saved: the fixture
   models after a tk round trip (their logits must equal transformers' on
   the original checkpoint) and models tk initialised from each config
   (their logits must equal the ones tk computed, and their weights follow
   transformers' initialisation scheme).

Prints "PASS name" or "FAIL name: detail" lines.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("TK_ROOT") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("TK_BUILD", os.path.join(ROOT, "build"))

spec = importlib.util.spec_from_file_location("gen", os.path.join(HERE, "gen-model-fixtures.py"))
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

fails = 0


def report(ok, name, detail=""):
    global fails
    if ok:
        print("PASS " + name)
    else:
        fails += 1
        print("FAIL %s: %s" % (name, detail))


def hf_logits(mdir, ids):
    model = AutoModelForCausalLM.from_pretrained(mdir, attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    with torch.no_grad():
        return model, model(input_ids=ids).logits.float()


def main():
    with tempfile.TemporaryDirectory(prefix="tk-model-parity.") as tmp:
        fix = os.path.join(tmp, "fixtures")
        keep = os.path.join(tmp, "saved")
        os.makedirs(keep)
        gen.generate(fix)
        env = dict(os.environ, TK_ROOT=ROOT, TK_MODEL_FIXTURES=fix, TK_MODEL_KEEP=keep,
                   TK_TMP=tmp)
        test = os.path.join(BUILD, "tests", "test-model")
        r = subprocess.run([test], env=env, capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if line.startswith(("PASS ", "FAIL ", "SKIP ")):
                print(line.replace(" ", " model/", 1))
                if line.startswith("FAIL "):
                    global fails
                    fails += 1
            elif line.startswith("info "):
                print(line)
        if r.returncode and "FAIL " not in r.stdout:
            report(False, "model/test-model", "exit status %d: %s" % (r.returncode, r.stderr))

        for name, cfg_fn, seed, dtype, _ in gen.MODELS:
            ref = load_file(os.path.join(fix, name + ".ref.safetensors"))
            ids = ref["input_ids"].long()
            # a tk round trip gives the checkpoint transformers started from
            saved = os.path.join(keep, name + "-saved")
            try:
                _, lg = hf_logits(saved, ids)
                err = (lg - ref["logits"]).abs().max().item()
                report(err == 0.0, "model/hf-loads-tk-saved-" + name,
                       "logits differ by %g" % err)
            except Exception as e:  # noqa: BLE001 - report any failure to load
                report(False, "model/hf-loads-tk-saved-" + name, repr(e))
            # a tk-initialised model: transformers computes what tk computed
            init = os.path.join(keep, name + "-init")
            try:
                model, lg = hf_logits(init, ids)
                tk = load_file(os.path.join(keep, name + "-init.logits.safetensors"))["logits"]
                err = (lg - tk).abs().max().item()
                report(err <= 2e-5, "model/hf-logits-of-tk-init-" + name,
                       "logits differ by %g" % err)
                ok, detail = init_scheme(model, cfg_fn())
                report(ok, "model/init-scheme-" + name, detail)
            except Exception as e:  # noqa: BLE001
                report(False, "model/hf-logits-of-tk-init-" + name, repr(e))
    return 1 if fails else 0


def init_scheme(model, cfg):
    """Checks tk's initialisation against transformers' _init_weights rules."""
    std = cfg.initializer_range
    n_layer = getattr(cfg, "n_layer", None) or cfg.num_hidden_layers
    for name, p in model.named_parameters():
        if p.dim() == 1:
            # Gemma's norms multiply by 1 + weight: transformers starts them at 0
            gemma = cfg.model_type.startswith("gemma")
            want = 0.0 if name.endswith("bias") or gemma else 1.0
            if not torch.all(p == want):
                return False, "%s is not all %g" % (name, want)
            continue
        s = std / (2 * n_layer) ** 0.5 if (cfg.model_type == "gpt2" and
                                            name.endswith("c_proj.weight")) else std
        got = p.std().item()
        # the sample std of n normals is within 4 standard errors (1/sqrt(2n))
        if abs(got - s) > 4 * s / (2 * p.numel()) ** 0.5:
            return False, "%s: std %g, transformers uses %g" % (name, got, s)
    return True, ""


if __name__ == "__main__":
    sys.exit(main())

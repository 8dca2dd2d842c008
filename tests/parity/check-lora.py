#!/usr/bin/env python3
"""make parity: tk's PEFT adapters and tk-merge against peft, live.

1. Builds the LoRA fixtures afresh with peft (gen-lora-fixtures.py's code)
   in a temporary directory.
2. Runs tk's unit test on them (build/tests/test-peft with TK_LORA_FIXTURES
   there): config reading, load/save round trips, logits and merged weights
   against peft.  TK_PEFT_KEEP makes it leave each adapter as tk saved it,
   with tk's logits.
3. peft loads each adapter tk saved (PeftModel.from_pretrained): its logits
   must equal tk's.
4. tk-merge merges each adapter into its base (--dtype float32);
   transformers loads the result: its logits must equal those of peft's
   merge_and_unload(), and its weights peft's merged weights.

Prints "PASS name" or "FAIL name: detail" lines, and "# " lines with the
largest differences seen.
"""
import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from peft import PeftModel

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("TK_ROOT") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("TK_BUILD", os.path.join(ROOT, "build"))
BIN = os.environ.get("TK_BIN", os.path.join(ROOT, "bin"))

spec = importlib.util.spec_from_file_location("gen", os.path.join(HERE, "gen-lora-fixtures.py"))
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

fails = 0
TOL = 1e-4


def report(ok, name, detail=""):
    global fails
    if ok:
        print("PASS " + name)
    else:
        fails += 1
        print("FAIL %s: %s" % (name, detail))


def main():
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="tk-lora-parity.") as tmp:
        fix = os.path.join(tmp, "fixtures")
        keep = os.path.join(tmp, "saved")
        os.makedirs(keep)
        with contextlib.redirect_stdout(io.StringIO()):
            gen.generate(fix)
        env = dict(os.environ, TK_ROOT=ROOT, TK_LORA_FIXTURES=fix, TK_PEFT_KEEP=keep)
        out = subprocess.run([os.path.join(BUILD, "tests", "test-peft")], env=env,
                             capture_output=True, text=True)
        for line in out.stdout.splitlines():
            if line.startswith("PASS ") or line.startswith("FAIL "):
                report(line.startswith("PASS "), "test-peft " + line[5:].split(":")[0],
                       line[5:])
            elif line.startswith("#"):
                print(line)
        report(out.returncode == 0, "test-peft exit", out.stderr[-500:])

        worst_load = worst_logits = worst_w = 0.0
        for name, base, seed, kw in gen.ADAPTERS:
            ref = load_file(os.path.join(fix, name + ".ref.safetensors"))
            ids = ref["input_ids"].long()
            # 3. peft on the adapter tk saved
            try:
                pm = PeftModel.from_pretrained(gen.load_base(base),
                                               os.path.join(keep, name)).eval()
                with torch.no_grad():
                    lp = pm(input_ids=ids).logits
                lt = load_file(os.path.join(keep, name + ".logits.safetensors"))["logits"]
                err = (lp - lt).abs().max().item()
                worst_load = max(worst_load, err)
                report(err < TOL, "peft loads tk's %s" % name, "logits differ by %g" % err)
            except Exception as e:  # noqa: BLE001 - reported as a failure
                report(False, "peft loads tk's %s" % name, repr(e))
            # 4. tk-merge against merge_and_unload
            mdir = os.path.join(tmp, "merged-" + name)
            r = subprocess.run([os.path.join(BIN, "tk-merge"), "-q", "--model",
                                os.path.join(gen.BASES, base), "--adapter",
                                os.path.join(fix, name), "-o", mdir, "--dtype", "float32"],
                               capture_output=True, text=True)
            if r.returncode:
                report(False, "tk-merge %s" % name, r.stderr.strip())
                continue
            merged = gen.make_adapter(base, seed, kw).merge_and_unload()
            mine = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32,
                                                        attn_implementation="eager").eval()
            with torch.no_grad():
                la = merged(input_ids=ids).logits
                lb = mine(input_ids=ids).logits
            err = (la - lb).abs().max().item()
            worst_logits = max(worst_logits, err)
            report(err < TOL, "tk-merge %s logits" % name, "differ by %g" % err)
            sa, sb = merged.state_dict(), mine.state_dict()
            werr = max((sa[k] - sb[k]).abs().max().item() for k in sa)
            worst_w = max(worst_w, werr)
            report(set(sa) == set(sb) and werr < 1e-5, "tk-merge %s weights" % name,
                   "max abs error %g" % werr)
        print("# peft on tk-saved adapters vs tk: logits max abs diff %.3g" % worst_load)
        print("# tk-merge vs merge_and_unload: weights max abs error %.3g, logits %.3g"
              % (worst_w, worst_logits))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""make parity: tk's GGUF dequantization against the gguf package, live.

For a few seeds, tests/parity/gen-gguf-fixtures.py writes quants.gguf (one
tensor per type tk dequantizes) and quants.f32 (gguf.quants.dequantize of
each) into a temporary directory; build/tests/test-gguf reads them
(TK_GGUF_PARITY_DIR) and must reproduce every value bit for bit.  The
committed fixtures must also be what the generator writes now.

Prints "PASS name" or "FAIL name: detail" per check.
"""
import filecmp
import os
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
GEN = os.path.join(ROOT, "tests", "parity", "gen-gguf-fixtures.py")
TEST = os.path.join(ROOT, os.environ.get("TK_BUILD", "build"), "tests", "test-gguf")


def run_test(d):
    env = dict(os.environ, TK_ROOT=ROOT, TK_GGUF_PARITY_DIR=d)
    r = subprocess.run([TEST], env=env, capture_output=True, text=True)
    line = [l for l in r.stdout.splitlines() if "test_dequant_fixtures" in l]
    return line[0] if line else "FAIL test_dequant_fixtures: no output (%s)" % r.stderr.strip()


def main():
    fails = 0
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "fixed")
        subprocess.run([sys.executable, GEN, d], check=True)
        for f in ("quants.gguf", "quants.f32"):
            same = filecmp.cmp(os.path.join(d, f), os.path.join(ROOT, "tests", "fixtures", "gguf", f),
                               shallow=False)
            print(("PASS" if same else "FAIL") + f" committed {f} is what the generator writes now")
            fails += not same
        for seed in (1, 2, 3):
            d = os.path.join(tmp, f"seed{seed}")
            subprocess.run([sys.executable, GEN, d, str(seed)], check=True)
            line = run_test(d)
            ok = line.startswith("PASS")
            print(("PASS" if ok else "FAIL") + f" dequantize seed {seed}" + ("" if ok else ": " + line))
            fails += not ok
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""make parity: tk_adamw against torch.optim.AdamW, live.

Regenerates the AdamW fixture with the installed torch into a temporary
file (tests/parity/gen-adamw-fixture.py), then runs the unit test that
replays it through tk_adamw (build/tests/test-backend-ops, with
TK_ADAMW_FIXTURE pointing at the new file).  Prints "PASS adamw" or
"FAIL adamw: detail"; also says whether the committed fixture is still
what this torch produces.
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.environ.get("TK_ROOT") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main():
    build = os.environ.get("TK_BUILD", os.path.join(ROOT, "build"))
    test = os.path.join(build, "tests", "test-backend-ops")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "adamw.txt")
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "parity",
                                                     "gen-adamw-fixture.py"), path], check=True)
        with open(path) as f, open(os.path.join(ROOT, "tests", "fixtures", "adamw",
                                                "adamw.txt")) as g:
            same = f.read().splitlines()[1:] == g.read().splitlines()[1:]
        if not same:
            print("note: tests/fixtures/adamw/adamw.txt differs from what this torch writes")
        env = dict(os.environ, TK_ROOT=ROOT, TK_ADAMW_FIXTURE=path)
        r = subprocess.run([test], env=env, capture_output=True, text=True)
        line = [l for l in r.stdout.splitlines() if "test_adamw_torch" in l]
        if r.returncode == 0 and line and line[0].startswith("PASS"):
            print("PASS adamw")
        else:
            print("FAIL adamw: %s" % (line[0] if line else r.stdout[-400:] + r.stderr[-400:]))


if __name__ == "__main__":
    main()

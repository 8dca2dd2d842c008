#!/usr/bin/env python3
"""make parity: the chat-template fixtures regenerated live.

tests/fixtures/chat-templates/generate.py asks transformers'
apply_chat_template (and TRL's training templates) for every expected
render, exception and {% generation %} span that test-chat holds tk to.
This runs it again on a copy of the fixtures, with the reference stack of
this run, and wants the same files byte for byte: then tk's renders, equal
to the committed ones in make test, equal what transformers renders today.

Prints "PASS name" or "FAIL name: detail" lines.
"""
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.environ.get("TK_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SHARED = os.environ.get("TK_SHARED") or os.path.join(ROOT, "..", "shared")
FIX = os.path.join(ROOT, "tests", "fixtures")

with tempfile.TemporaryDirectory() as tmp:
    # generate.py finds ../../../../shared and ../generate/chatml from its folder
    top = os.path.join(tmp, "repo")
    os.symlink(os.path.abspath(SHARED), os.path.join(tmp, "shared"))
    for sub in ("chat-templates", os.path.join("generate", "chatml")):
        shutil.copytree(os.path.join(FIX, sub), os.path.join(top, "tests", "fixtures", sub))
    here = os.path.join(top, "tests", "fixtures", "chat-templates")
    r = subprocess.run([sys.executable, os.path.join(here, "generate.py")], cwd=top,
                       capture_output=True, text=True)
    if r.returncode:
        print(f"FAIL chat-templates: generate.py exited {r.returncode}: {r.stderr[-400:]}")
        sys.exit(1)
    bad = []
    names = sorted(os.listdir(os.path.join(FIX, "chat-templates", "expected")))
    for name in names:
        if not filecmp.cmp(os.path.join(FIX, "chat-templates", "expected", name),
                           os.path.join(here, "expected", name), shallow=False):
            bad.append(name)
    for name in ("conversations.json", "tokenized.json"):
        if not filecmp.cmp(os.path.join(FIX, "chat-templates", name), os.path.join(here, name),
                           shallow=False):
            bad.append(name)
    if sorted(os.listdir(os.path.join(here, "expected"))) != names:
        bad.append("(the set of expected files)")
    if bad:
        print(f"FAIL chat-templates: {len(bad)} files differ from a live render: "
              + ", ".join(bad[:8]))
        sys.exit(1)
    print(f"PASS chat-templates ({len(names)} templates rendered live, equal to the fixtures)")

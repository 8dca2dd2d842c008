#!/usr/bin/env python3
"""make parity: tk's tokenizer against Hugging Face `tokenizers`, live.

For every tokenizer in tests/fixtures/tokenizers/ and the real GPT-2 one,
encodes the hard text (tests/fixtures/tokenizers/hard-text.jsonl) and a few
hundred seeded random strings (scripts, whitespace, emoji, digits,
punctuation, contractions, the tokenizer's own added tokens) with
`tokenizers`, runs

    tk-tokenize -t TOKENIZER --format text --split-lines --ids
                [--no-add-special-tokens] --no-add-eos FILE

on the same lines and compares, printing "PASS name" or "FAIL name: detail".
Lines are texts without line breaks (the tool reads one document a line).
"""
import json
import os
import random
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer

ROOT = os.environ.get("TK_ROOT") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")

PIECES = [
    "hello", "World", "the", "don't", "I'LL", "we've", "'s", "x'\u017f", "caf\u00e9",
    "cafe\u0301", "\u00c5", "na\u00efve", "\u0130", "\u03a3\u03bf\u03c6\u03af\u03b1",
    "\u043f\u0440\u0438\u0432\u0435\u0442", "\u0645\u0631\u062d\u0628\u0627",
    "\u05e9\u05dc\u05d5\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\u4f60\u597d", "\u3072\u3089\u304c\u306a", "\ud55c\uad6d\uc5b4", "\u1230\u120b\u121d",
    "\U0001F600", "\U0001F44D\U0001F3FD", "\U0001F468\u200d\U0001F469\u200d\U0001F467",
    "\U0001F1EB\U0001F1F7", "\u2764\ufe0f", "1", "12", "1234", "3.14", "\u0661\u0662",
    "\u00b2", "\u2167", "\uff11", "!", "?!", "...", "--", "(", ")", "[", "]", "#", "$", "%",
    "&&", "'", "\"", "`", "_", "__init__", "\u2014", "\u2026", "\u00ab", "\u300c",
    "\u2581", "\u2581\u2581", "\ufffd", "\x01", "\x7f", "\ue000", "\U00011f04",
]
SPACES = [" ", " ", " ", "  ", "   ", "\t", "\t\t", "\u00a0", "\u2003", "\u3000", "\u202f",
          "\u0085", "\u2028", "\u200b", "\x0b", "\x0c", ""]


def random_texts(tok, n, seed):
    rng = random.Random(seed)
    added = [t.content for t in tok.get_added_tokens_decoder().values()]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 24)):
            r = rng.random()
            if r < 0.08 and added:
                parts.append(rng.choice(added))
            elif r < 0.12:
                parts.append("".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 4))))
            else:
                parts.append(rng.choice(PIECES))
            parts.append(rng.choice(SPACES))
        s = "".join(parts)
        if rng.random() < 0.3:
            s = rng.choice(SPACES) + s
        out.append(s)
    return out


def usable(s):
    return s.strip() != "" and not any(c in s for c in "\n\r")


def run_tk(tokpath, path, add_special):
    cmd = ["tk-tokenize", "-t", tokpath, "--format", "text", "--split-lines", "--ids",
           "--no-add-eos", "-q"]
    if not add_special:
        cmd.append("--no-add-special-tokens")
    cmd.append(path)
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        return None, r.stderr.decode("utf-8", "replace").strip()
    return r.stdout.decode().split("\n")[:-1] if r.stdout else [], ""


def check(name, tokpath, texts):
    tok = Tokenizer.from_file(tokpath if tokpath.endswith(".json")
                              else os.path.join(tokpath, "tokenizer.json"))
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        f.write("".join(s + "\n" for s in texts))
        path = f.name
    try:
        for add in (False, True):
            what = "%s (add_special_tokens=%s)" % (name, add)
            got, err = run_tk(tokpath, path, add)
            if got is None:
                print("FAIL %s: tk-tokenize failed: %s" % (what, err))
                continue
            want = [" ".join(map(str, tok.encode(s, add_special_tokens=add).ids)) for s in texts]
            if len(got) != len(want):
                print("FAIL %s: %d lines from tk-tokenize, %d texts" % (what, len(got), len(want)))
                continue
            bad = [i for i in range(len(want)) if got[i].strip() != want[i]]
            if bad:
                i = bad[0]
                print("FAIL %s: %d of %d texts differ; first %s: tk [%s], hf [%s]"
                      % (what, len(bad), len(want), json.dumps(texts[i]), got[i][:300],
                         want[i][:300]))
            else:
                print("PASS %s (%d texts)" % (what, len(want)))
    finally:
        os.unlink(path)


def main():
    with open(os.path.join(FIX, "tokenizers", "hard-text.jsonl"), encoding="utf-8") as f:
        hard = [json.loads(line) for line in f]
    names = sorted(n[:-5] for n in os.listdir(os.path.join(FIX, "tokenizers"))
                   if n.endswith(".json"))
    targets = [(n, os.path.join(FIX, "tokenizers", n + ".json")) for n in names]
    targets.append(("gpt2", os.path.join(FIX, "gpt2", "tokenizer.json")))
    try:
        subprocess.run(["tk-tokenize", "--help"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        print("FAIL tokenizer parity: tk-tokenize not found on PATH (run make)")
        return 1
    for seed, (name, path) in enumerate(targets):
        tok = Tokenizer.from_file(path)
        texts = [s for s in hard + random_texts(tok, 400, 1000 + seed) if usable(s)]
        check(name, path, texts)
    return 0


if __name__ == "__main__":
    sys.exit(main())

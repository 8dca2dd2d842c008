#!/usr/bin/env python3
"""make parity: tk-train --bf16 against a torch reference of the same arithmetic, live.

The reference: transformers' Trainer (fp32, as check-train.py) on the
committed tiny GPT-2 and blocks of tests/fixtures/train with train-args.json,
in file order, where every matrix product tk computes with tk_matmul - the
Conv1D layers and the tied lm_head - is a custom autograd function whose
forward and backward GEMMs take bf16-rounded operands (x.to(bfloat16)
.float(), round to nearest even) and accumulate in fp32: y = r(x) r(W),
dx = r(dy) r(W)^T, dW = r(x)^T r(dy).  Attention, norms, GELU, the loss and
AdamW stay fp32, as in tk.  Compared with tk-train --bf16 --no-shuffle's
metrics.jsonl.

Tolerances.  Step 1's loss and grad_norm come from the untrained model:
both sides sum the same exact products (bf16 x bf16 fits fp32) in
different orders, so they agree to fp32 rounding, amplified where a sum
lands near a bf16 rounding boundary and rounds to the neighbour 2^-8 away
in the next GEMM; required: within a tenth of bf16's own effect (the gap
between the reference and fp32 training), which a tk that did not round,
or rounded elsewhere, would not meet.  From step 2 on, AdamW's first
updates (about lr times the sign of each gradient element) turn last-bit
differences of near-zero gradient elements into full-size weight changes,
as check-train.py's key biases show in fp32, so the later steps are only
required to stay within twice bf16's effect, and the numbers are printed.
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("TK_BIN", os.path.join(ROOT, "bin"))
FIX = os.path.join(ROOT, "tests", "fixtures", "train")


def check(name, ok, what):
    print(("PASS " if ok else "FAIL ") + name + ": " + what)
    return ok


def r16(t):
    return t.to(torch.bfloat16).float()


class MatmulBF16(torch.autograd.Function):
    """y = r(x) @ r(w) with fp32 sums; the backward's GEMMs round too."""

    @staticmethod
    def forward(ctx, x, w):
        xr, wr = r16(x), r16(w)
        ctx.save_for_backward(xr, wr)
        return xr @ wr

    @staticmethod
    def backward(ctx, gy):
        xr, wr = ctx.saved_tensors
        g = r16(gy)
        return g @ wr.t(), xr.t() @ g


def patch(model):
    from transformers.pytorch_utils import Conv1D

    def conv1d_forward(self, x):
        shape = x.size()[:-1] + (self.nf,)
        y = MatmulBF16.apply(x.reshape(-1, x.size(-1)), self.weight) + self.bias
        return y.view(shape)

    Conv1D.forward = conv1d_forward
    head = model.lm_head
    head.forward = lambda x: MatmulBF16.apply(x.reshape(-1, x.size(-1)),
                                              head.weight.t()).view(x.shape[:-1] + (-1,))


def reference(bf16, gen, tmp):
    from transformers import GPT2LMHeadModel, TrainingArguments, default_data_collator
    torch.set_num_threads(1)
    model = GPT2LMHeadModel.from_pretrained(os.path.join(FIX, "model"))
    if bf16:
        patch(model)
    train = gen.Blocks(gen.read_blocks(os.path.join(FIX, "blocks", "train-00000.tks")))
    evals = gen.Blocks(gen.read_blocks(os.path.join(FIX, "blocks", "eval-00000.tks")))
    args = TrainingArguments(output_dir=os.path.join(tmp, "ref%d" % bf16), use_cpu=True,
                             **gen.ARGS)
    tr = gen.InOrder(model=model, args=args, train_dataset=train, eval_dataset=evals,
                     data_collator=default_data_collator)
    tr.train()
    return [e for e in tr.state.log_history if "loss" in e and "train_runtime" not in e]


def rel_gap(a, b):
    return max(abs(x - y) / max(abs(y), 1e-30) for x, y in zip(a, b))


def main():
    spec = importlib.util.spec_from_file_location("gen", os.path.join(HERE, "gen-train-fixture.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        h32 = reference(False, gen, tmp)
        h16 = reference(True, gen, tmp)
        out = os.path.join(tmp, "tk")
        subprocess.run([os.path.join(BIN, "tk-train"), "-q", "--model", os.path.join(FIX, "model"),
                        "--data", os.path.join(FIX, "blocks"), "--config",
                        os.path.join(FIX, "train-args.json"), "--no-shuffle", "--threads", "1",
                        "--bf16", "-o", out], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "metrics.jsonl")) as f:
            tk = [e for e in map(json.loads, f) if "loss" in e]
        for key in ("loss", "grad_norm"):
            a = [e[key] for e in tk]
            b = [e[key] for e in h16]
            c = [e[key] for e in h32]
            if not check("bf16-" + key + "-steps", len(a) == len(b) == len(c) == 10,
                         f"{len(a)} tk, {len(b)} reference steps logged"):
                ok = False
                continue
            gap, effect = rel_gap(a[:1], b[:1]), rel_gap(c[:1], b[:1])
            ok &= check("bf16-" + key + "-step1", gap <= effect / 10,
                        f"tk {a[0]!r}, reference {b[0]!r}, fp32 {c[0]!r}: gap {gap:.2e} "
                        f"relative, bf16's effect {effect:.2e}")
            gap, effect = rel_gap(a, b), rel_gap(c, b)
            ok &= check("bf16-" + key + "-10-steps", gap <= 2 * effect,
                        f"worst gap {gap:.2e} relative, bf16's effect {effect:.2e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

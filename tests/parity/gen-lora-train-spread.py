#!/usr/bin/env python3
"""Measures how far fp32 rounding alone moves the LoRA Trainer fixture, so
that test-lora-train can hold tk to a tolerance derived from the
arithmetic instead of to digits one BLAS kernel happened to produce.

tests/fixtures/lora-train/expected/ is transformers' Trainer in fp32
(gen-lora-train-fixture.py).  This script reruns exactly that training
(same start adapter, blocks, TrainingArguments, file order):

- in float64 (model.double()): the exact result to rounding of fp64;
- in float32 under every MKL instruction level this CPU runs
  (MKL_ENABLE_INSTRUCTIONS=SSE4_2, AVX2, AVX512; each in a subprocess):
  PyTorch's own spread across GEMM kernels;

and writes tests/fixtures/lora-train/spread.json with, for each fp32 run
and for the committed fixture, its distance from the fp64 result in the
metrics test-lora-train uses: the adapter's max over tensors of
max|a - b| / max|b|, and the max relative difference of the logged loss,
grad_norm and eval_loss.  Adam normalises each update by the running
gradient RMS, so elements whose gradients are near zero take steps of
lr size whatever their rounding: this spread is much larger than fp32's
epsilon and is what the test's tolerance is a small multiple of.

Usage: gen-lora-train-spread.py [OUT.json]   (needs bin/ for the blocks)
"""
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "lora-train")


def run_one(dtype, out):
    """One Trainer run in this process; writes the adapter and log to out/."""
    import torch
    spec = importlib.util.spec_from_file_location(
        "gen", os.path.join(ROOT, "tests", "parity", "gen-lora-train-fixture.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    from peft import PeftModel
    from transformers import TrainingArguments, default_data_collator
    torch.set_num_threads(1)
    train = gen.Blocks(gen.read_blocks(os.path.join(gen.TRAIN, "blocks", "train-00000.tks")))
    evals = gen.Blocks(gen.read_blocks(os.path.join(gen.TRAIN, "blocks", "eval-00000.tks")))
    model = PeftModel.from_pretrained(gen.base(), os.path.join(FIX, "start"), is_trainable=True)
    if dtype == "float64":
        model = model.double()
    args = TrainingArguments(output_dir=os.path.join(out, "run"), use_cpu=True, **gen.ARGS)
    tr = gen.InOrder(model=model, args=args, train_dataset=train, eval_dataset=evals,
                     data_collator=default_data_collator)
    tr.train()
    sd = {k: v.detach().double() for k, v in model.state_dict().items() if "lora_" in k}
    torch.save(sd, os.path.join(out, "adapter.pt"))
    hist = [e for e in tr.state.log_history if "train_runtime" not in e]
    with open(os.path.join(out, "log.json"), "w") as f:
        json.dump(hist, f)


def load(out):
    import torch
    with open(os.path.join(out, "log.json")) as f:
        return torch.load(os.path.join(out, "adapter.pt")), json.load(f)


def distance(a, b, ha, hb):
    """test-lora-train's metrics of a against the reference b."""
    def key(k):  # peft's state_dict names vs the saved adapter's
        return k.replace(".default", "")
    bb = {key(k): v for k, v in b.items()}
    adapter = 0.0
    for k, v in a.items():
        w = bb[key(k)]
        adapter = max(adapter, ((v - w).abs().max() / w.abs().max()).item())
    worst = {"loss": 0.0, "grad_norm": 0.0, "eval_loss": 0.0}
    for ea, eb in zip(ha, hb):
        for m in worst:
            if m in ea and m in eb:
                worst[m] = max(worst[m], abs(ea[m] - eb[m]) / abs(eb[m]))
    return {"adapter": adapter, **worst}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        os.environ.setdefault("PYTHONHASHSEED", "0")
        run_one(sys.argv[2], sys.argv[3])
        return
    out_json = sys.argv[1] if len(sys.argv) > 1 else os.path.join(FIX, "spread.json")
    import torch
    from safetensors.torch import load_file
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
    flags = open("/proc/cpuinfo").read()
    levels = ["SSE4_2", "AVX2"] + (["AVX512"] if " avx512f" in flags else [])
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, dtype, extra in [("float64", "float64", {})] + \
                [(f"float32 MKL {lv}", "float32", {"MKL_ENABLE_INSTRUCTIONS": lv})
                 for lv in levels]:
            d = os.path.join(tmp, name.replace(" ", "-"))
            os.makedirs(d)
            subprocess.run([sys.executable, __file__, "--one", dtype, d], check=True,
                           env=dict(env, **extra), stdout=subprocess.DEVNULL)
            runs[name] = load(d)
        ref, href = runs.pop("float64")
        fix = {k: v.double() for k, v in
               load_file(os.path.join(FIX, "expected", "adapter_model.safetensors")).items()}
        with open(os.path.join(FIX, "expected", "expected.json")) as f:
            hfix = json.load(f)["log_history"]
        result = {name: distance(a, ref, h, href) for name, (a, h) in runs.items()}
        result["fixture (expected/)"] = distance(fix, ref, hfix, href)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    doc = {"about": "distance from the float64 Trainer run of lora-train's fp32 runs "
                    "(gen-lora-train-spread.py); test-lora-train's tolerances are multiples of "
                    "the largest",
           "torch": torch.__version__, "cpu": cpu, "fp32_vs_fp64": result,
           "max": {m: max(r[m] for r in result.values())
                   for m in ("adapter", "loss", "grad_norm", "eval_loss")}}
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()

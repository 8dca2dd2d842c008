#!/usr/bin/env python3
"""Makes tests/fixtures/dora-train/: the reference for DoRA training in
tk-train, as gen-lora-train-fixture.py makes lora-train/ (same tiny GPT-2,
blocks, TrainingArguments and file order; its helpers are imported).

- start/: a DoRA adapter (LoraConfig(r=4, lora_alpha=8, target_modules
  c_attn, c_proj, c_fc, use_dora=True, init_lora_weights=False) after
  torch.manual_seed(8)); the magnitudes peft initialised to the row norms
  of W + scale B A are then multiplied by 1 + 0.1 N(0, 1) (seeded), so
  that the first step already sees m / norm != 1;
- train-args.json: lora-train's TrainingArguments with max_grad_norm 0.8
  (DoRA's gradients here are smaller: 1.0 would clip no step);
- expected/: Trainer with PeftModel.from_pretrained(base, start/,
  is_trainable=True) for 10 steps: adapter_model.safetensors and
  expected.json (log_history, eval_loss before training), as lora-train's;
- spread.json: as gen-lora-train-spread.py measures lora-train's: the same
  training rerun in float64, and the distance from it of expected/ and of
  fp32 reruns with torch's MKL kernels forced to each instruction level
  this CPU runs (MKL_ENABLE_INSTRUCTIONS, one subprocess each), in
  test-lora-train's metrics (adapter: max over tensors of max|a-b|/max|b|;
  loss, grad_norm, eval_loss: max relative difference); the test's
  tolerances are multiples of the largest;
- trainable.txt: peft's print_trainable_parameters() line for
  LoraConfig(r=4, target_modules=["c_attn", "c_fc"], use_dora=True) on the
  model, "dora-r4: LINE" (tests/cli/tk-train/dora-train.sh).

Usage: gen-dora-train-fixture.py [OUTDIR]   (default tests/fixtures/dora-train; needs bin/)
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import TrainingArguments, default_data_collator

ARGS = None  # gen.ARGS with max_grad_norm 0.8, set below

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("gen_lora_train",
                                               os.path.join(HERE, "gen-lora-train-fixture.py"))
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)
ARGS = dict(gen.ARGS, max_grad_norm=0.8)


def make_start(out):
    model = gen.base()
    torch.manual_seed(8)
    cfg = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
                     target_modules=["c_attn", "c_proj", "c_fc"], init_lora_weights=False,
                     use_dora=True)
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_magnitude_vector" in name:
                p.mul_(1 + 0.1 * torch.randn(p.shape, generator=g))
    pm.peft_config["default"].base_model_name_or_path = gen.BASE
    pm.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))


def train(start, dtype, tmp):
    train = gen.Blocks(gen.read_blocks(os.path.join(gen.TRAIN, "blocks", "train-00000.tks")))
    evals = gen.Blocks(gen.read_blocks(os.path.join(gen.TRAIN, "blocks", "eval-00000.tks")))
    model = PeftModel.from_pretrained(gen.base(), start, is_trainable=True)
    if dtype == "float64":
        model = model.double()
    args = TrainingArguments(output_dir=os.path.join(tmp, "out-" + dtype), use_cpu=True,
                             **ARGS)
    tr = gen.InOrder(model=model, args=args, train_dataset=train, eval_dataset=evals,
                     data_collator=default_data_collator)
    before = tr.evaluate()
    tr.train()
    hist = [{k: v for k, v in e.items() if k in ("loss", "grad_norm", "learning_rate",
                                                    "epoch", "step", "eval_loss")}
            for e in tr.state.log_history if "train_runtime" not in e]
    return model, before, hist, len(train), len(evals)


def distance(got, exact, hist, h64):
    d = {"adapter": max(((got[k].double() - exact[k].double()).abs().max()
                         / exact[k].double().abs().max()).item() for k in exact)}
    for m in ("loss", "grad_norm", "eval_loss"):
        d[m] = max((abs(a[m] - b[m]) / abs(b[m]) for a, b in zip(hist, h64)
                    if m in a and m in b), default=0.0)
    return d


def run_one(start, dtype, out):
    """One Trainer run (subprocess mode): the adapter and log into out/."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model, _, hist, _, _ = train(start, dtype, tmp)
    model.save_pretrained(out)
    with open(os.path.join(out, "log.json"), "w") as f:
        json.dump(hist, f)


def rerun(start, dtype, out, extra):
    os.makedirs(out)
    subprocess.run([sys.executable, __file__, "--one", start, dtype, out], check=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1", **extra),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, "log.json")) as f:
        return load_file(os.path.join(out, "adapter_model.safetensors")), json.load(f)


def main():
    if len(sys.argv) > 4 and sys.argv[1] == "--one":
        run_one(*sys.argv[2:5])
        return
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable] + sys.argv,
                  dict(os.environ, PYTHONHASHSEED="0"))
    fix = sys.argv[1] if len(sys.argv) > 1 else os.path.join(gen.ROOT, "tests", "fixtures",
                                                             "dora-train")
    for sub in ("start", "expected"):
        shutil.rmtree(os.path.join(fix, sub), ignore_errors=True)
    os.makedirs(fix, exist_ok=True)
    torch.set_num_threads(1)
    start = os.path.join(fix, "start")
    make_start(start)
    with open(os.path.join(fix, "train-args.json"), "w") as f:
        json.dump(ARGS, f, indent=2)
        f.write("\n")
    with tempfile.TemporaryDirectory() as tmp:
        model, before, hist, n_train, n_eval = train(start, "float32", tmp)
        out = os.path.join(fix, "expected")
        model.save_pretrained(out)
        os.remove(os.path.join(out, "README.md"))
        with open(os.path.join(out, "expected.json"), "w") as f:
            json.dump({"n_train_blocks": n_train, "n_eval_blocks": n_eval,
                       "eval_loss_before": before["eval_loss"], "log_history": hist}, f, indent=1)
            f.write("\n")
        exact, h64 = rerun(start, "float64", os.path.join(tmp, "f64"), {})
        got = load_file(os.path.join(out, "adapter_model.safetensors"))
        result = {"fixture (expected/)": distance(got, exact, hist, h64)}
        flags = open("/proc/cpuinfo").read()
        for lv in ["SSE4_2", "AVX2"] + (["AVX512"] if " avx512f" in flags else []):
            a, h = rerun(start, "float32", os.path.join(tmp, lv), {"MKL_ENABLE_INSTRUCTIONS": lv})
            result["float32 MKL " + lv] = distance(a, exact, h, h64)
    spread = {m: max(r[m] for r in result.values())
              for m in ("adapter", "loss", "grad_norm", "eval_loss")}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "")
    with open(os.path.join(fix, "spread.json"), "w") as f:
        json.dump({"about": "distance from the float64 Trainer run of dora-train's fp32 runs "
                            "(gen-dora-train-fixture.py); test-lora-train's DoRA tolerances "
                            "are multiples of the largest",
                   "torch": torch.__version__, "cpu": cpu, "fp32_vs_fp64": result,
                   "max": spread}, f, indent=1)
        f.write("\n")
    with open(os.path.join(fix, "trainable.txt"), "w") as f:
        pm = get_peft_model(gen.base(), LoraConfig(task_type="CAUSAL_LM", r=4, use_dora=True,
                                                   target_modules=["c_attn", "c_fc"]))
        f.write("dora-r4: %s\n" % gen.trainable_line(pm))
    s0 = load_file(os.path.join(start, "adapter_model.safetensors"))
    moved = max((got[k] - s0[k]).abs().max().item() for k in s0)
    clipped = sum(1 for e in hist if e.get("grad_norm", 0) > ARGS["max_grad_norm"])
    print(f"{fix}: {len(s0)} adapter tensors moved up to {moved:.3g}; {len(hist)} log entries, "
          f"{clipped} steps clipped; spread {spread}")


if __name__ == "__main__":
    main()

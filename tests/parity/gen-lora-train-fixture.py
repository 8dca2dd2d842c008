#!/usr/bin/env python3
"""Makes tests/fixtures/lora-train/: the reference for LoRA training in tk-train.

On the tiny GPT-2 and the blocks of tests/fixtures/train/ (gen-train-fixture.py):

- start/: a PEFT adapter as PeftModel.save_pretrained writes it (model card
  removed): LoraConfig(r=4, lora_alpha=8, target_modules c_attn, c_proj,
  c_fc, init_lora_weights=False) after torch.manual_seed(7), so lora_B is
  not zero and the first step already moves both A and B;
- train-args.json: TrainingArguments as JSON (warmup, cosine, weight decay,
  gradient accumulation 2, a max_grad_norm that clips some of the steps);
- expected/: what transformers' Trainer does with PeftModel.from_pretrained(
  base, start/, is_trainable=True) on the train blocks in file order
  (SequentialSampler, as tk-train --no-shuffle): adapter_model.safetensors
  after 10 optimizer steps and expected.json with its log_history (loss,
  grad_norm, learning_rate, epoch, step, eval_loss) and the eval_loss of
  the adapter before training;
- trainable.txt: the line peft's print_trainable_parameters() prints for
  the configurations the tk-train CLI tests use, one "NAME: LINE" each:
  start (the adapter above), r4 (LoraConfig(r=4), peft's default target
  c_attn) and nf4-r4-all (r=4, all-linear, on the model that
  tk-quantize --bnb-4bit-quant-type nf4 --bnb-4bit-use-double-quant makes
  of the fixture, loaded by transformers + bitsandbytes: peft counts each
  packed 4-bit weight as two parameters per byte).

Usage: gen-lora-train-fixture.py [OUTDIR]   (default tests/fixtures/lora-train; needs bin/)
"""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import (AutoModelForCausalLM, GPT2LMHeadModel, TrainingArguments,
                          default_data_collator)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tkparity, from any cwd
import tkparity
from tkparity import Blocks, InOrder  # as gen.Blocks, gen.InOrder in scripts loading this

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, "tests", "fixtures", "train")
BASE = "tests/fixtures/train/model"   # relative to ROOT: base_model_name_or_path
BIN = os.environ.get("TK_BIN", os.path.join(ROOT, "bin"))

ARGS = {
    "max_steps": 10,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 2,
    "learning_rate": 1e-2,
    "weight_decay": 0.1,
    "adam_beta1": 0.9,
    "adam_beta2": 0.99,
    "adam_epsilon": 1e-7,
    "max_grad_norm": 1.0,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 3,
    "logging_steps": 1,
    "eval_strategy": "steps",
    "eval_steps": 5,
    "per_device_eval_batch_size": 3,
    "save_strategy": "no",
    "seed": 0,
    "report_to": [],
}


def read_blocks(path):
    """[(ids, mask)] of a block shard, tokenized with the train fixture's model."""
    return tkparity.read_blocks(path, os.path.join(TRAIN, "model"), BIN)


def trainable_line(model):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        model.print_trainable_parameters()
    return buf.getvalue().strip()


def base():
    return GPT2LMHeadModel.from_pretrained(os.path.join(ROOT, BASE))


def make_start(out):
    model = base()
    torch.manual_seed(7)
    cfg = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
                     target_modules=["c_attn", "c_proj", "c_fc"], init_lora_weights=False)
    pm = get_peft_model(model, cfg)
    pm.peft_config["default"].base_model_name_or_path = BASE
    pm.save_pretrained(out)
    card = os.path.join(out, "README.md")
    if os.path.exists(card):
        os.remove(card)
    return trainable_line(pm)


def nf4_line(tmp):
    q = os.path.join(tmp, "nf4")
    subprocess.run([os.path.join(BIN, "tk-quantize"), "-q", os.path.join(TRAIN, "model"), "-o", q,
                    "--bnb-4bit-quant-type", "nf4", "--bnb-4bit-use-double-quant"], check=True)
    model = AutoModelForCausalLM.from_pretrained(q, device_map="cpu")
    assert type(model.transformer.h[0].attn.c_attn).__name__ == "Linear4bit"
    pm = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4,
                                          target_modules="all-linear"))
    return trainable_line(pm)


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":  # peft keeps target_modules in a set
        os.execve(sys.executable, [sys.executable] + sys.argv,
                  dict(os.environ, PYTHONHASHSEED="0"))
    fix = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures", "lora-train")
    for sub in ("start", "expected"):
        shutil.rmtree(os.path.join(fix, sub), ignore_errors=True)
    os.makedirs(fix, exist_ok=True)
    torch.set_num_threads(1)
    lines = {"start": make_start(os.path.join(fix, "start"))}
    lines["r4"] = trainable_line(get_peft_model(base(), LoraConfig(task_type="CAUSAL_LM", r=4)))
    with open(os.path.join(fix, "train-args.json"), "w") as f:
        json.dump(ARGS, f, indent=2)
        f.write("\n")
    with tempfile.TemporaryDirectory() as tmp:
        lines["nf4-r4-all"] = nf4_line(tmp)
        train = Blocks(read_blocks(os.path.join(TRAIN, "blocks", "train-00000.tks")))
        evals = Blocks(read_blocks(os.path.join(TRAIN, "blocks", "eval-00000.tks")))
        model = PeftModel.from_pretrained(base(), os.path.join(fix, "start"), is_trainable=True)
        args = TrainingArguments(output_dir=os.path.join(tmp, "out"), use_cpu=True, **ARGS)
        tr = InOrder(model=model, args=args, train_dataset=train, eval_dataset=evals,
                     data_collator=default_data_collator)
        before = tr.evaluate()
        tr.train()
        out = os.path.join(fix, "expected")
        model.save_pretrained(out)
        card = os.path.join(out, "README.md")
        if os.path.exists(card):
            os.remove(card)
        hist = [{k: v for k, v in e.items() if k in ("loss", "grad_norm", "learning_rate",
                                                        "epoch", "step", "eval_loss")}
                for e in tr.state.log_history if "train_runtime" not in e]
        with open(os.path.join(out, "expected.json"), "w") as f:
            json.dump({"n_train_blocks": len(train), "n_eval_blocks": len(evals),
                       "eval_loss_before": before["eval_loss"], "log_history": hist}, f, indent=1)
            f.write("\n")
    with open(os.path.join(fix, "trainable.txt"), "w") as f:
        for k, v in lines.items():
            f.write(f"{k}: {v}\n")
    start = load_file(os.path.join(fix, "start", "adapter_model.safetensors"))
    end = load_file(os.path.join(fix, "expected", "adapter_model.safetensors"))
    moved = max((end[k] - start[k]).abs().max().item() for k in start)
    clipped = sum(1 for e in hist if e.get("grad_norm", 0) > ARGS["max_grad_norm"])
    print(f"{fix}: {len(start)} adapter tensors moved up to {moved:.3g}; {len(hist)} log entries, "
          f"{clipped} steps clipped, final loss {hist[-2].get('loss')}")
    for k, v in lines.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()

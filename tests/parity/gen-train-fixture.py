#!/usr/bin/env python3
"""Makes tests/fixtures/train/: the reference for tk-train.

- model/: a tiny GPT-2 (hidden 36, 3 heads, 2 layers, odd vocabulary) that
  transformers creates with torch.manual_seed(0), with a byte-level BPE
  tokenizer trained by `tokenizers` on text.txt (33 one-line entries of
  Debian's fortunes `computers` file);
- blocks/: text.txt tokenized by tk-tokenize and packed by tk-pack (--pad:
  one document per block, padding left out of the loss; 4 documents in eval);
- train-args.json: TrainingArguments as JSON (tk-train --config reads it);
- expected/: what transformers' Trainer does with them: the model after 10
  optimizer steps (warmup + cosine, clipping, weight decay, gradient
  accumulation 2, a short last batch each epoch, two epochs), its
  log_history (loss, grad_norm, learning_rate, epoch, step, eval_loss), and
  eval_loss of the untrained model (trainer.evaluate()).

The Trainer sees the blocks in file order (a SequentialSampler), as
tk-train --no-shuffle does; the ids and masks come from the .tks files
themselves (tk-tokenize --ids --show-mask), so both sides train on the
same bytes.

Usage: gen-train-fixture.py [OUTDIR]   (default tests/fixtures/train; needs bin/)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast,
                          TrainingArguments, default_data_collator)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tkparity, from any cwd
import tkparity
from tkparity import Blocks, InOrder  # as gen.Blocks, gen.InOrder in scripts loading this

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "train")
BIN = os.environ.get("TK_BIN", os.path.join(ROOT, "bin"))

ARGS = {
    "max_steps": 10,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 2,
    "learning_rate": 5e-3,
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


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def make_model(out, text):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=301, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(text.splitlines(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.save_pretrained(out)
    eos = tok.token_to_id("<|endoftext|>")
    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=36, n_layer=2,
                     n_head=3, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=eos, eos_token_id=eos, initializer_range=0.05)
    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(out)


def read_blocks(path):
    """[(ids, mask)] of a block shard, tokenized with FIX/model (FIX as main() set it)."""
    return tkparity.read_blocks(path, os.path.join(FIX, "model"), BIN)


def main():
    global FIX
    if len(sys.argv) > 1:
        FIX = sys.argv[1]
    with open(os.path.join(ROOT, "tests", "fixtures", "train", "text.txt")) as f:
        text = f.read()
    for sub in ("model", "blocks", "expected"):
        shutil.rmtree(os.path.join(FIX, sub), ignore_errors=True)
    os.makedirs(FIX, exist_ok=True)
    if os.path.abspath(FIX) != os.path.join(ROOT, "tests", "fixtures", "train"):
        shutil.copy(os.path.join(ROOT, "tests", "fixtures", "train", "text.txt"), FIX)
    make_model(os.path.join(FIX, "model"), text)
    with tempfile.TemporaryDirectory() as tmp:
        docs = os.path.join(tmp, "docs.tks")
        run(os.path.join(BIN, "tk-tokenize"), "-q", "-t", os.path.join(FIX, "model"),
            "--split-lines", "-o", docs, os.path.join(FIX, "text.txt"))
        run(os.path.join(BIN, "tk-pack"), "-q", "--pad", "--seq-len", "24", "--eval-docs", "4",
            "-o", os.path.join(FIX, "blocks"), docs)
        train = Blocks(read_blocks(os.path.join(FIX, "blocks", "train-00000.tks")))
        evals = Blocks(read_blocks(os.path.join(FIX, "blocks", "eval-00000.tks")))
        with open(os.path.join(FIX, "train-args.json"), "w") as f:
            json.dump(ARGS, f, indent=2)
            f.write("\n")
        torch.set_num_threads(1)
        model = GPT2LMHeadModel.from_pretrained(os.path.join(FIX, "model"))
        args = TrainingArguments(output_dir=os.path.join(tmp, "out"), use_cpu=True, **ARGS)
        tr = InOrder(model=model, args=args, train_dataset=train, eval_dataset=evals,
                     data_collator=default_data_collator)
        before = tr.evaluate()
        tr.train()
        out = os.path.join(FIX, "expected")
        model.save_pretrained(out)
        os.remove(os.path.join(out, "generation_config.json"))
        hist = [{k: v for k, v in e.items() if k in ("loss", "grad_norm", "learning_rate",
                                                        "epoch", "step", "eval_loss")}
                for e in tr.state.log_history if "train_runtime" not in e]
        with open(os.path.join(out, "expected.json"), "w") as f:
            json.dump({"n_train_blocks": len(train), "n_eval_blocks": len(evals),
                       "eval_loss_before": before["eval_loss"], "log_history": hist}, f, indent=1)
            f.write("\n")
    print(f"{FIX}: {len(train)} train blocks, {len(evals)} eval blocks, "
          f"{len(hist)} log entries, final loss {hist[-2].get('loss')}")


if __name__ == "__main__":
    main()

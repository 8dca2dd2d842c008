#!/usr/bin/env python3
"""make parity: tk-quantize against transformers + bitsandbytes, live.

Creates small random models with transformers (llama: hidden 64, 2 layers,
bf16; gemma2 of that shape, bf16, and gemma3, fp32; gpt2: hidden 64, fp32, Conv1D; gpt2-wide: hidden 1024, 1 layer, whose
c_fc weight has 65536 absmax blocks, so that double quantization's mean is
summed over torch's threads), quantizes each with
from_pretrained(quantization_config=BitsAndBytesConfig(...), device_map="cpu")
+ save_pretrained, and with `tk-quantize` using the same options.  Checks:

  - model.safetensors, config.json and generation_config.json are byte-equal;
  - transformers loads tk-quantize's directory (with bitsandbytes) and its
    logits on a fixed input equal those of the directory transformers wrote
    (torch.equal);
  - an already quantized input is refused (exit 1) and nothing is written.

Rows are 64 or more wide (multiples of the block size): there bitsandbytes'
CPU dequantize_4bit agrees with its own reference implementation (see
gen-bnb-fixtures.py).  Prints "PASS name" or "FAIL name: detail".
"""
import filecmp
import os
import subprocess
import sys
import tempfile

import torch
from transformers import (AutoModelForCausalLM, BitsAndBytesConfig, Gemma2Config,
                          Gemma3TextConfig, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM)

fails = 0


def report(name, ok, detail=""):
    global fails
    if ok:
        print("PASS", name)
    else:
        fails += 1
        print("FAIL %s: %s" % (name, detail))


def make_models(tmp):
    torch.manual_seed(1)
    llama = LlamaForCausalLM(LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=101, max_position_embeddings=64,
        tie_word_embeddings=False, initializer_range=0.1)).to(torch.bfloat16)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=101,
                                      n_positions=64, initializer_range=0.1))
    wide = GPT2LMHeadModel(GPT2Config(n_embd=1024, n_layer=1, n_head=8, vocab_size=101,
                                      n_positions=64, initializer_range=0.05))
    gemma = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=101,
                 max_position_embeddings=64, initializer_range=0.1, sliding_window=4)
    gemma2 = AutoModelForCausalLM.from_config(Gemma2Config(**gemma)).to(torch.bfloat16)
    gemma3 = AutoModelForCausalLM.from_config(Gemma3TextConfig(**gemma, tie_word_embeddings=False))
    dirs = {}
    for name, m in (("llama", llama), ("gpt2", gpt2), ("gpt2-wide", wide), ("gemma2", gemma2),
                    ("gemma3", gemma3)):
        dirs[name] = os.path.join(tmp, name)
        m.save_pretrained(dirs[name])
    return dirs


CASES = [
    ("llama", "nf4-dq-bf16", dict(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16),
     ["--bnb-4bit-quant-type", "nf4", "--bnb-4bit-use-double-quant",
      "--bnb-4bit-compute-dtype", "bfloat16"]),
    ("llama", "fp4", dict(load_in_4bit=True, bnb_4bit_quant_type="fp4"),
     ["--bnb-4bit-quant-type", "fp4"]),
    ("llama", "int8", dict(load_in_8bit=True), ["--load-in-8bit"]),
    ("gpt2", "nf4", dict(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                         bnb_4bit_compute_dtype=torch.float32), []),
    ("gpt2", "fp4-dq-f16", dict(load_in_4bit=True, bnb_4bit_quant_type="fp4",
                                bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float16),
     ["--bnb-4bit-quant-type", "fp4", "--bnb-4bit-use-double-quant",
      "--bnb-4bit-compute-dtype", "float16"]),
    ("gpt2", "int8", dict(load_in_8bit=True), ["--load-in-8bit"]),
    ("gemma2", "nf4-dq-bf16", dict(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                   bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16),
     ["--bnb-4bit-quant-type", "nf4", "--bnb-4bit-use-double-quant",
      "--bnb-4bit-compute-dtype", "bfloat16"]),
    ("gemma3", "int8", dict(load_in_8bit=True), ["--load-in-8bit"]),
    ("gpt2-wide", "nf4-dq", dict(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                 bnb_4bit_use_double_quant=True), 
     ["--bnb-4bit-use-double-quant"]),
]


def logits(path):
    m = AutoModelForCausalLM.from_pretrained(path, device_map="cpu")
    ids = torch.tensor([[1, 5, 9, 33, 70, 2, 99, 14]])
    with torch.no_grad():
        return m(ids).logits.float()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        dirs = make_models(tmp)
        for model, tag, cfg, args in CASES:
            name = "%s-%s" % (model, tag)
            ref = os.path.join(tmp, name + "-ref")
            out = os.path.join(tmp, name + "-tk")
            m = AutoModelForCausalLM.from_pretrained(
                dirs[model], quantization_config=BitsAndBytesConfig(**cfg), device_map="cpu")
            m.save_pretrained(ref)
            del m
            r = subprocess.run(["tk-quantize", "-q", dirs[model], "-o", out] + args,
                               capture_output=True, text=True)
            if r.returncode != 0:
                report(name, False, "tk-quantize exit %d: %s" % (r.returncode, r.stderr))
                continue
            for f in ("model.safetensors", "config.json", "generation_config.json"):
                same = filecmp.cmp(os.path.join(ref, f), os.path.join(out, f), shallow=False)
                report("%s %s bytes" % (name, f), same, "differs from transformers'")
            if model != "gpt2-wide":
                a, b = logits(ref), logits(out)
                report("%s logits" % name, torch.equal(a, b),
                       "max |diff| %g" % (a - b).abs().max().item())
            if tag == "int8":
                again = os.path.join(tmp, name + "-again")
                r = subprocess.run(["tk-quantize", ref, "-o", again], capture_output=True,
                                   text=True)
                report("%s refused" % name, r.returncode == 1 and
                       "already quantized" in r.stderr and not os.path.exists(again),
                       "exit %d: %s" % (r.returncode, r.stderr))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

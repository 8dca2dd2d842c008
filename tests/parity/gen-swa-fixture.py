#!/usr/bin/env python3
"""Tiny random models with sliding windows, and transformers' greedy
continuation of a prompt well past the window (fp32, eager attention,
which masks keys outside the window):

  tests/fixtures/swa/model/, expected.txt
      a Mistral with a sliding window of 8 positions
  tests/fixtures/swa/qwen2/, expected-qwen2.txt
      a Qwen2 with use_sliding_window, sliding_window 6 and
      max_window_layers 1: layer 0 full causal, layers 1 and 2 windowed

expected*.txt: PROMPT_IDS(comma-separated) NEW_IDS(space-separated).

    .venv/bin/python tests/parity/gen-swa-fixture.py
"""
import os
import shutil

import torch
from transformers import AutoModelForCausalLM, MistralConfig, Qwen2Config

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "swa")
PROMPT = [5, 9, 17, 33, 2, 71]


def make(cfg, seed, sub, expected):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    model.eval()
    shutil.rmtree(os.path.join(OUT, sub), ignore_errors=True)
    model.save_pretrained(os.path.join(OUT, sub))
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24,
                           do_sample=False, pad_token_id=0)
    with open(os.path.join(OUT, expected), "w") as f:
        f.write("%s %s\n" % (",".join(map(str, PROMPT)),
                             " ".join(map(str, g[0, len(PROMPT):].tolist()))))
    print(open(os.path.join(OUT, expected)).read())


def main():
    make(MistralConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       sliding_window=8, tie_word_embeddings=False, eos_token_id=None,
                       bos_token_id=None, pad_token_id=None),
         7, "model", "expected.txt")
    # initializer_range 0.2: attention far from uniform, so that the masked
    # keys matter to the argmax
    make(Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                     use_sliding_window=True, sliding_window=6, max_window_layers=1,
                     initializer_range=0.2, tie_word_embeddings=True, eos_token_id=None,
                     bos_token_id=None, pad_token_id=None),
         8, "qwen2", "expected-qwen2.txt")


if __name__ == "__main__":
    main()

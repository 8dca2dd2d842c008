#!/usr/bin/env python3
"""A tiny random Mistral with a sliding window of 8 positions, and
transformers' greedy continuation of a prompt well past the window (fp32,
eager attention, which masks keys outside the window):
tests/fixtures/swa/model/ and tests/fixtures/swa/expected.txt
(PROMPT_IDS(comma-separated) NEW_IDS(space-separated)).

    .venv/bin/python tests/parity/gen-swa-fixture.py
"""
import os
import shutil

import torch
from transformers import AutoModelForCausalLM, MistralConfig

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "swa")


def main():
    torch.manual_seed(7)
    cfg = MistralConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                        sliding_window=8, tie_word_embeddings=False, eos_token_id=None,
                        bos_token_id=None, pad_token_id=None)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    model.eval()
    shutil.rmtree(os.path.join(OUT, "model"), ignore_errors=True)
    model.save_pretrained(os.path.join(OUT, "model"))
    prompt = [5, 9, 17, 33, 2, 71]
    ids = torch.tensor([prompt])
    with torch.no_grad():
        g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24,
                           do_sample=False, pad_token_id=0)
    with open(os.path.join(OUT, "expected.txt"), "w") as f:
        f.write("%s %s\n" % (",".join(map(str, prompt)), " ".join(map(str, g[0, len(prompt):].tolist()))))
    print(open(os.path.join(OUT, "expected.txt")).read())


if __name__ == "__main__":
    main()

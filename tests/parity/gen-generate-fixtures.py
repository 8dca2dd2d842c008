#!/usr/bin/env python3
"""Greedy continuations by transformers' generate() for tests/fixtures/generate.

Loads the fixture models (tests/fixtures/models/{gpt2,llama,qwen2}) in fp32
with eager attention and writes tests/fixtures/generate/greedy.json: for each
model and prompt (token ids; the fixture vocabulary has 97 tokens and no
tokenizer) the ids generate(do_sample=False) returns after the prompt, with
and without a repetition penalty.  Run with the reference venv:

    /tmp/refvenv/bin/python tests/parity/gen-generate-fixtures.py
"""
import json
import os

import torch
import transformers
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "generate", "greedy.json")

PROMPTS = [[5], [10, 20, 30, 40], [1, 50, 7, 7, 88, 3, 61, 12, 90, 44, 17]]
CASES = [{"max_new_tokens": 16, "repetition_penalty": 1.0},
         {"max_new_tokens": 16, "repetition_penalty": 1.3}]


def main():
    torch.manual_seed(0)
    out = {"transformers": transformers.__version__, "torch": torch.__version__, "cases": []}
    for name in ("gpt2", "llama", "qwen2"):
        model = AutoModelForCausalLM.from_pretrained(
            os.path.join(MODELS, name), dtype=torch.float32, attn_implementation="eager")
        model.eval()
        for prompt in PROMPTS:
            for c in CASES:
                ids = torch.tensor([prompt])
                with torch.no_grad():
                    g = model.generate(ids, attention_mask=torch.ones_like(ids),
                                       do_sample=False, **c)
                out["cases"].append({"model": name, "prompt": prompt, **c,
                                     "output": g[0, len(prompt):].tolist()})
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

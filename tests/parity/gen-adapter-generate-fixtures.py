#!/usr/bin/env python3
"""Greedy continuations of peft models (base + LoRA adapter, unmerged) with
transformers' generate(), fp32 on the CPU, for tk-generate --adapter:
tests/fixtures/generate-adapter/expected.txt, one line per case:
MODEL ADAPTER MAX_NEW_TOKENS PROMPT_IDS(comma-separated) NEW_IDS(space-separated)
(paths relative to tests/fixtures); generation stops at the model's EOS as transformers does.  Bases tests/fixtures/models/*, adapters tests/fixtures/lora/*
(gen-lora-fixtures.py), the QLoRA pairs of tests/fixtures/qlora
(gen-qlora-fixtures.py; bitsandbytes 4-bit on the CPU), and DoRA adapters
of tests/fixtures/dora (gen-dora-fixtures.py).

    .venv/bin/python tests/parity/gen-adapter-generate-fixtures.py
"""
import os

import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from peft import PeftModel

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CASES = [
    ("models/gpt2", "lora/gpt2-all", [5, 17, 33, 2], 12),
    ("models/llama", "lora/llama-seven", [1, 40, 7, 12, 9], 12),
    ("models/qwen2", "lora/qwen2-qkv", [3, 8, 21], 12),
    ("qlora/llama-nf4-dq", "qlora/llama-nf4-dq-adapter", [1, 40, 7, 12, 9], 12),
    ("models/gpt2", "dora/gpt2", [5, 17, 33, 2], 12),
    ("models/llama", "dora/llama", [1, 40, 7, 12, 9], 12),
    ("qlora/llama-nf4-dq", "dora/llama-nf4-dq", [1, 40, 7, 12, 9], 12),
]


def main():
    out = []
    for base, adapter, prompt, n in CASES:
        kw = dict(dtype=torch.float32, attn_implementation="eager")
        if base.startswith("qlora/"):
            kw["device_map"] = "cpu"
        model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "tests/fixtures", base), **kw)
        model = PeftModel.from_pretrained(model, os.path.join(ROOT, "tests/fixtures", adapter))
        model.eval()
        ids = torch.tensor([prompt])
        with torch.no_grad():
            g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                               max_new_tokens=n, do_sample=False,
                               pad_token_id=0)
        out.append({"model": base, "adapter": adapter, "prompt_ids": prompt,
                    "max_new_tokens": n, "ids": g[0, len(prompt):].tolist()})
        print(base, adapter, out[-1]["ids"])
    with open(os.path.join(ROOT, "tests/fixtures/generate-adapter/expected.txt"), "w") as f:
        for c in out:
            f.write("%s %s %d %s %s\n" % (c["model"], c["adapter"], c["max_new_tokens"],
                                        ",".join(map(str, c["prompt_ids"])),
                                        " ".join(map(str, c["ids"]))))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generates tests/fixtures/lora/: PEFT LoRA adapters that peft itself
creates and saves, and what peft computes with them.

Run from anywhere (deterministic on the CPU, fp32; needs torch,
transformers, peft, safetensors):
    .venv/bin/python tests/parity/gen-lora-fixtures.py [OUTDIR [NAME...]]
(NAMEs: only those adapters, the others left as they are)

The base models are the committed tests/fixtures/models/{gpt2,llama,qwen2,qwen3,
gemma2,gemma3,phi3*}
(tiny random models, see tests/parity/gen-model-fixtures.py), loaded with
from_pretrained in fp32 (the half-precision checkpoints upcast exactly).

For each adapter NAME in ADAPTERS it writes
    NAME/adapter_config.json, NAME/adapter_model.safetensors
        as PeftModel.save_pretrained wrote them (the model card README.md
        peft also writes is deleted).  LoraConfig(init_lora_weights=False)
        so that lora_B is not zero, and every other trainable tensor (the
        modules_to_save copies, the biases trained per `bias`) gets seeded
        noise so that it differs from the base model's.
    NAME.ref.safetensors
        input_ids  I32 [2, 8]
        labels     I32 [2, 8]   (== input_ids; HF shifts them inside)
        loss       F32 [1]      model(input_ids, labels=labels).loss
        logits     F32 [2, 8, V]
        grad.KEY   F32          after loss.backward(), for every trainable
                                tensor, under its key in
                                adapter_model.safetensors
        merged.NAME F32         merge_and_unload().state_dict(), under the
                                base model's names, for the tensors that
                                differ from the base model's (the rest are
                                unchanged: the test compares them with the
                                base; a tied lm_head is left out)
The model is in eval mode (lora_dropout, where set, does not apply) and uses
eager attention.

check-lora.py imports this file.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from peft import LoraConfig, PeftModel, get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "lora")
BASES = "tests/fixtures/models"   # relative to ROOT: base_model_name_or_path

B, T = 2, 8

LLAMA_ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# name, base, seed, LoraConfig arguments
ADAPTERS = [
    ("gpt2-default", "gpt2", 11, dict(r=4, lora_alpha=8)),
    ("gpt2-all", "gpt2", 12, dict(r=8, lora_alpha=16, target_modules="all-linear",
                                  use_rslora=True, bias="all")),
    ("gpt2-mlp", "gpt2", 13, dict(r=2, lora_alpha=5, target_modules=["c_fc", "mlp.c_proj"],
                                  lora_dropout=0.1, bias="lora_only", modules_to_save=["ln_f"])),
    ("llama-qv", "llama", 21, dict(r=4, lora_alpha=8)),
    ("llama-all", "llama", 22, dict(r=8, lora_alpha=16, target_modules="all-linear",
                                    use_rslora=True, modules_to_save=["lm_head"])),
    ("llama-seven", "llama", 23, dict(r=2, lora_alpha=3, target_modules=LLAMA_ALL,
                                      lora_dropout=0.05)),
    ("qwen2-qkv", "qwen2", 31, dict(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj",
                                                                      "v_proj"],
                                    bias="lora_only")),
    # Qwen3: peft's default targets (q_proj, v_proj), and every linear layer
    # with the per-head norms trained as modules_to_save
    ("qwen3-default", "qwen3", 41, dict(r=4, lora_alpha=8)),
    ("qwen3-all", "qwen3", 42, dict(r=4, lora_alpha=16, target_modules="all-linear",
                                    modules_to_save=["q_norm", "k_norm"])),
    # Gemma-2: the seven projections by name (tied head, soft-caps,
    # windows); Gemma-3: every linear layer, rsLoRA, its (1 + w) q/k norms
    # trained as modules_to_save
    ("gemma2-seven", "gemma2", 51, dict(r=4, lora_alpha=8, target_modules=LLAMA_ALL)),
    ("gemma3-all", "gemma3", 52, dict(r=4, lora_alpha=16, target_modules="all-linear",
                                      use_rslora=True, modules_to_save=["q_norm", "k_norm"])),
    # Phi-3: peft puts one A/B pair on each fused linear (qkv_proj's B has
    # q, k and v rows, gate_up_proj's gate then up); peft has no default
    # targets for phi3, so each names them
    ("phi3-fused", "phi3", 51, dict(r=4, lora_alpha=8, target_modules=["qkv_proj", "o_proj",
                                                                      "gate_up_proj",
                                                                      "down_proj"])),
    ("phi3-partial-all", "phi3-partial", 52, dict(r=3, lora_alpha=5, use_rslora=True,
                                                  target_modules="all-linear",
                                                  modules_to_save=["norm"])),
    ("phi3-longrope-qkv", "phi3-longrope", 53, dict(r=2, lora_alpha=4,
                                                    target_modules=["qkv_proj"])),
]


def load_base(base):
    return AutoModelForCausalLM.from_pretrained(os.path.join(BASES, base), dtype=torch.float32,
                                                attn_implementation="eager")


def make_adapter(base, seed, kw):
    """The peft model: base + LoRA with random A and B (seeded)."""
    torch.manual_seed(seed)
    model = load_base(base)
    cfg = LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **kw)
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed + 500)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if p.requires_grad and "lora_" not in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return pm.eval()


def make_inputs(seed, vocab):
    g = torch.Generator().manual_seed(2000 + seed)
    ids = torch.randint(0, vocab, (B, T), generator=g)
    return ids, ids.clone()


def saved_key_of(pm):
    """Trainable parameter name -> its key in adapter_model.safetensors."""
    from peft.utils import get_peft_model_state_dict
    sd = get_peft_model_state_dict(pm)
    by_ptr = {}
    for k, v in sd.items():
        by_ptr[v.data_ptr()] = "base_model.model." + k if not k.startswith("base_model.") else k
    out = {}
    for name, p in pm.named_parameters():
        if p.requires_grad:
            out[name] = by_ptr[p.data_ptr()]
    return out


def reference(pm, ids, labels):
    pm.zero_grad(set_to_none=True)
    out = pm(input_ids=ids, labels=labels)
    out.loss.backward()
    ref = {
        "input_ids": ids.to(torch.int32).contiguous(),
        "labels": labels.to(torch.int32).contiguous(),
        "logits": out.logits.detach().float().contiguous(),
        "loss": out.loss.detach().float().reshape(1).contiguous(),
    }
    keys = saved_key_of(pm)
    for name, p in pm.named_parameters():
        if p.requires_grad:
            ref["grad." + keys[name]] = p.grad.detach().float().contiguous().clone()
    return ref


def generate(outdir, only=()):
    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(outdir, exist_ok=True)
    for name, base, seed, kw in ADAPTERS:
        if only and name not in only:
            continue
        pm = make_adapter(base, seed, kw)
        ids, labels = make_inputs(seed, pm.config.vocab_size)
        ref = reference(pm, ids, labels)
        adir = os.path.join(outdir, name)
        pm.save_pretrained(adir)
        card = os.path.join(adir, "README.md")
        if os.path.exists(card):
            os.remove(card)
        # Saved keys must be exactly the gradient keys.
        from safetensors import safe_open
        with safe_open(os.path.join(adir, "adapter_model.safetensors"), "pt") as f:
            saved = set(f.keys())
        grads = {k[5:] for k in ref if k.startswith("grad.")}
        assert saved == grads, (name, saved ^ grads)
        # The adapter as read back gives the same logits.
        back = PeftModel.from_pretrained(load_base(base), adir).eval()
        with torch.no_grad():
            lb = back(input_ids=ids).logits
        assert torch.equal(lb, ref["logits"]), name
        merged = pm.merge_and_unload()
        with torch.no_grad():
            lm = merged(input_ids=ids).logits
        orig = load_base(base).state_dict()
        tied = merged.config.tie_word_embeddings
        for k, v in merged.state_dict().items():
            if tied and k == "lm_head.weight":
                continue
            if not torch.equal(v, orig[k]):
                ref["merged." + k] = v.detach().float().contiguous().clone()
        save_file(ref, os.path.join(outdir, name + ".ref.safetensors"),
                  metadata={"format": "pt"})
        with open(os.path.join(adir, "adapter_config.json")) as f:
            c = json.load(f)
        print("%s: loss %.6f, %d adapter tensors, merged logits max diff %.3g, targets %s"
              % (name, ref["loss"].item(), len(saved), (lm - ref["logits"]).abs().max().item(),
                 c["target_modules"]))


if __name__ == "__main__":
    # peft writes an expanded "all-linear" target list in set order: fix
    # the string hash so that the files come out the same on every run.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    generate(sys.argv[1] if len(sys.argv) > 1 else OUT, sys.argv[2:])

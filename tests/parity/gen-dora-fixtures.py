#!/usr/bin/env python3
"""Generates tests/fixtures/dora/: DoRA adapters (LoraConfig(use_dora=True))
that peft itself creates and saves, and what peft computes with them.

    .venv/bin/python tests/parity/gen-dora-fixtures.py [OUTDIR]

The bases are the committed tiny random models: tests/fixtures/models/
{gpt2,llama} in fp32, and the bitsandbytes 4-bit checkpoints
tests/fixtures/qlora/{llama-nf4-dq,gpt2-fp4} (compute dtype float32).

For each adapter NAME in CASES it writes
    NAME/adapter_config.json, NAME/adapter_model.safetensors
        as PeftModel.save_pretrained wrote them (README.md deleted):
        init_lora_weights=False under a fixed seed, so lora_B is not zero;
        peft then sets each magnitude to the row norms of W + scale B A,
        and the magnitudes get seeded noise (times 1 + 0.1 N(0, 1)) so that
        m / ||W + scale B A|| is not 1.
    NAME.ref.safetensors
        input_ids, labels  I32 [2, 8] (labels == input_ids)
        loss      F32 [1]
        logits    F32 [2, 8, V]
        grad.KEY  F32   after loss.backward(), every lora_A, lora_B and
                        lora_magnitude_vector (and with bias lora_only the
                        adapted modules' biases), KEY as in the adapter file
        init.KEY  F32   each lora_magnitude_vector as peft initialised it
                        (before the noise): ||W + scale B A|| per row
        merged.NAME F32 (fp bases) merge_and_unload().state_dict() for the
                        tensors that differ from the base's
Training mode with the dropout layers off (peft's DoRA then still takes
the base output from the layer, as with dropout 0), eager attention.
"""
import importlib.util
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from peft import LoraConfig, PeftModel, get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "dora")

_spec = importlib.util.spec_from_file_location("gen_lora", os.path.join(HERE, "gen-lora-fixtures.py"))
gen_lora = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_lora)

# name, base (relative to ROOT), seed, LoraConfig arguments
CASES = [
    ("gpt2", "tests/fixtures/models/gpt2", 41,
     dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc", "mlp.c_proj"])),
    ("llama", "tests/fixtures/models/llama", 42,
     dict(r=4, lora_alpha=8, target_modules="all-linear", use_rslora=True, lora_dropout=0.1)),
    ("llama-nf4-dq", "tests/fixtures/qlora/llama-nf4-dq", 43,
     dict(r=4, lora_alpha=8, target_modules="all-linear")),
    ("gpt2-fp4", "tests/fixtures/qlora/gpt2-fp4", 44,
     dict(r=8, lora_alpha=16, target_modules=["c_attn", "c_fc"])),
    ("gpt2-bias", "tests/fixtures/models/gpt2", 45,
     dict(r=2, lora_alpha=4, target_modules=["c_attn", "mlp.c_proj"], bias="lora_only")),
]


def load_base(base):
    return AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, device_map="cpu",
                                                attn_implementation="eager")


def quantized(model):
    return getattr(model.config, "quantization_config", None) is not None


def generate(outdir):
    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(outdir, exist_ok=True)
    for name, base, seed, kw in CASES:
        torch.manual_seed(seed)
        model = load_base(base)
        q = quantized(model)
        pm = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False,
                                              use_dora=True, **kw))
        keys = gen_lora.saved_key_of(pm)
        ref = {}
        g = torch.Generator().manual_seed(seed + 500)
        with torch.no_grad():
            for pname, p in pm.named_parameters():
                if "lora_magnitude_vector" in pname:
                    ref["init." + keys[pname]] = p.detach().clone().contiguous()
                    p.mul_(1 + 0.1 * torch.randn(p.shape, generator=g))
        pm.train()
        for mod in pm.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.eval()
        ids, labels = gen_lora.make_inputs(seed, pm.config.vocab_size)
        ref.update(gen_lora.reference(pm, ids, labels))
        adir = os.path.join(outdir, name)
        shutil.rmtree(adir, ignore_errors=True)
        pm.save_pretrained(adir)
        os.remove(os.path.join(adir, "README.md"))
        from safetensors import safe_open
        with safe_open(os.path.join(adir, "adapter_model.safetensors"), "pt") as f:
            saved = set(f.keys())
        grads = {k[5:] for k in ref if k.startswith("grad.")}
        assert saved == grads, (name, saved ^ grads)
        back = PeftModel.from_pretrained(load_base(base), adir).eval()
        with torch.no_grad():
            lb = back(input_ids=ids).logits
        err = (lb - ref["logits"]).abs().max().item()
        assert err < 1e-5, (name, err)
        if not q:
            merged = pm.merge_and_unload()
            orig = load_base(base).state_dict()
            for k, v in merged.state_dict().items():
                if not torch.equal(v, orig[k]):
                    ref["merged." + k] = v.detach().float().contiguous().clone()
        save_file(ref, os.path.join(outdir, name + ".ref.safetensors"), metadata={"format": "pt"})
        print("%s: loss %.6f, %d adapter tensors, read back max diff %.3g"
              % (name, ref["loss"].item(), len(saved), err))


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    generate(sys.argv[1] if len(sys.argv) > 1 else OUT)

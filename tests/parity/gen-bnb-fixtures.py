#!/usr/bin/env python3
"""Writes tests/fixtures/bnb/: bitsandbytes-quantized model directories as
transformers 5.24 + bitsandbytes 0.50.2 save them on the CPU, for
test-bnb.c (tk_bnb_read_weight, tk_qweight_rows) and the tk-quantize CLI
tests (byte comparison of tk-quantize's output).

From the committed tiny models in tests/fixtures/models/ (gen-model-fixtures.py):
  llama-nf4-dq/   llama, BitsAndBytesConfig(load_in_4bit, nf4, double quant,
                  compute dtype bfloat16)
  gpt2-fp4/       gpt2 (Conv1D), load_in_4bit, fp4, compute dtype float32
  llama-int8/     llama, load_in_8bit
  phi3-nf4-dq/    phi3 (fused qkv_proj, gate_up_proj), as llama-nf4-dq
  phi3-partial-int8/  phi3-partial (tied), load_in_8bit
each: from_pretrained(MODEL, quantization_config=..., device_map="cpu"),
then save_pretrained (config.json, generation_config.json,
model.safetensors).

  custom.safetensors  weights quantized with bitsandbytes.functional
                  directly at blocksizes transformers does not use, saved
                  as Linear4bit saves them (QuantState.as_dict(packed=True)):
                  "a.weight" [33, 31] nf4 blocksize 128 double quant,
                  "b.weight" [33, 31] fp4 blocksize 32, "c.weight" [32, 257]
                  nf4 blocksize 32 double quant (257 blocks: two nested blocks),
                  "d.weight" [8, 128] fp4 blocksize 64 double quant (rows a
                  multiple of the block size: see deq4).
  ref.safetensors  what bitsandbytes dequantizes them to, in fp32:
                  "deq.NAME" = dequantize_4bit(W, state with dtype float32)
                  for a few 4-bit weights of llama-nf4-dq and gpt2-fp4 and
                  every one of custom; for two of llama-int8 "deq.NAME" =
                  CB.float() * (SCB * (1/127)) as bitsandbytes' CPU training
                  matmul (MatMul8bitFp) computes it.
"""
import os
import shutil
import sys

import torch
import bitsandbytes.functional as F
from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
from bitsandbytes.backends.utils import _get_4bit_code
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
OUT = os.path.join(ROOT, "bnb")


def quantize(src, dst, cfg):
    m = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "models", src),
                                             quantization_config=cfg, device_map="cpu")
    path = os.path.join(OUT, dst)
    shutil.rmtree(path, ignore_errors=True)
    m.save_pretrained(path)
    return path


def deq4(sd, name):
    """dequantize_4bit of a saved weight, in fp32, by bitsandbytes' default
    (pure torch) implementation.  The CPU backend's native kernel
    (cdequantize_blockwise_cpu_*) that F.dequantize_4bit calls for an even
    row length gives other values when the row length is not a multiple of
    the block size (it takes blocks per row, not over the flattened
    matrix, which is how quantize_4bit made them): the rows of the tiny
    models (48, 80) are such; where they are multiples, both must agree."""
    qs = {k[len(name) + 1:]: v for k, v in sd.items() if k.startswith(name + ".")}
    state = F.QuantState.from_dict(qs, device=torch.device("cpu"))
    state.dtype = torch.float32
    absmax = state.absmax
    if state.nested:
        absmax = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
    code = _get_4bit_code(state.quant_type, torch.device("cpu"))
    out = _dequantize_4bit_compute(sd[name].reshape(-1), absmax, code, state.blocksize,
                                   state.shape, torch.float32)
    if state.shape[-1] % state.blocksize == 0:
        native = F.dequantize_4bit(sd[name], state)
        assert torch.equal(native.view(torch.int32), out.view(torch.int32)), name
    return out.contiguous()


def phi3():
    """Phi-3's fused weights, quantized whole as bitsandbytes does."""
    quantize("phi3", "phi3-nf4-dq", BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16))
    quantize("phi3-partial", "phi3-partial-int8", BitsAndBytesConfig(load_in_8bit=True))


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    if sys.argv[1:] == ["phi3"]:  # only these, the others left as committed
        phi3()
        return
    ref = {}
    p = quantize("llama", "llama-nf4-dq", BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16))
    sd = load_file(os.path.join(p, "model.safetensors"))
    for k in ("model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.down_proj.weight"):
        ref["deq." + k] = deq4(sd, k)
    p = quantize("gpt2", "gpt2-fp4", BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.float32))
    sd = load_file(os.path.join(p, "model.safetensors"))
    for k in ("transformer.h.0.attn.c_attn.weight",):
        ref["deq." + k] = deq4(sd, k)
    p = quantize("llama", "llama-int8", BitsAndBytesConfig(load_in_8bit=True))
    sd = load_file(os.path.join(p, "model.safetensors"))
    for k in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight"):
        if True:
            scb = sd[k[:-len("weight")] + "SCB"]
            ref["deq." + k] = sd[k].float() * scb.unsqueeze(1).mul(1.0 / 127.0)

    # weights at other block sizes, saved as Linear4bit._save_to_state_dict does
    custom = {}
    for name, shape, qt, bs, nested in (("a.weight", (33, 31), "nf4", 128, True),
                                        ("b.weight", (33, 31), "fp4", 32, False),
                                        ("c.weight", (32, 257), "nf4", 32, True),
                                        ("d.weight", (8, 128), "fp4", 64, True)):
        w = (torch.randn(shape) * 0.05).to(torch.bfloat16)
        q, state = F.quantize_4bit(w, blocksize=bs, quant_type=qt, compress_statistics=nested)
        custom[name] = q
        for k, v in state.as_dict(packed=True).items():
            custom[name + "." + k] = v
    save_file(custom, os.path.join(OUT, "custom.safetensors"), metadata={"format": "pt"})
    for name in ("a.weight", "b.weight", "c.weight", "d.weight"):
        ref["deq." + name] = deq4(custom, name)
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(OUT, "ref.safetensors"))
    phi3()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generates tests/fixtures/rope/: rotary tables transformers computes.

Run from anywhere (needs torch, transformers, safetensors):
    /tmp/venv/bin/python tests/parity/gen-rope-fixtures.py [OUTDIR]

For each case NAME it writes NAME.json, the config.json that
LlamaConfig.save_pretrained (Phi3Config for the phi3-* cases) writes, and
into rope.safetensors
    NAME.seq    I32 [S]         the sequence lengths of S forwards in turn
                                (positions 0 .. seq - 1 each)
    NAME.inv    F32 [S, D/2]    LlamaRotaryEmbedding.inv_freq after each
                                (Phi3RotaryEmbedding's; D the rotated width)
    NAME.scale  F32 [S]         its attention_scaling (as the fp32 it
                                multiplies cos and sin by)
The module is made once per case and run in turn, so dynamic NTK's state
(growth past max_position_embeddings, the stale table of a longer earlier
forward, the reset below it) and LongRoPE's switch are in the tables.
Read by tests/unit/test-rope.c.
"""
import os
import shutil
import sys
import tempfile

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, LlamaConfig, Phi3Config
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "rope")


def cfg(head_dim, max_pos, theta, **rope):
    rope = dict(rope, rope_theta=theta) if rope else {"rope_type": "default",
                                                      "rope_theta": theta}
    return LlamaConfig(hidden_size=head_dim * 2, num_attention_heads=2, num_key_value_heads=1,
                       head_dim=head_dim, num_hidden_layers=1, intermediate_size=8,
                       vocab_size=8, max_position_embeddings=max_pos, rope_parameters=rope)


def factors(n, lo, hi):
    return [round(lo + (hi - lo) * (i / max(n - 1, 1)) ** 2, 4) for i in range(n)]


CASES = {
    "default-128": cfg(128, 8192, 500000.0),
    "default-96": cfg(96, 4096, 10000.0),
    # Llama-3.1 8B
    "llama3-8b": cfg(128, 131072, 500000.0, rope_type="llama3", factor=8.0,
                     low_freq_factor=1.0, high_freq_factor=4.0,
                     original_max_position_embeddings=8192),
    # Llama-3.2 1B/3B
    "llama3-32": cfg(64, 131072, 500000.0, rope_type="llama3", factor=32.0,
                     low_freq_factor=1.0, high_freq_factor=4.0,
                     original_max_position_embeddings=8192),
    "linear-128": cfg(128, 8192, 10000.0, rope_type="linear", factor=4.0),
    "linear-frac": cfg(64, 4096, 10000.0, rope_type="linear", factor=2.5),
    # Qwen2.5 with YaRN as its model cards give it
    "yarn-qwen": cfg(128, 131072, 1000000.0, rope_type="yarn", factor=4.0,
                     original_max_position_embeddings=32768),
    # gpt-oss: truncate false, beta values given
    "yarn-notrunc": cfg(64, 131072, 150000.0, rope_type="yarn", factor=32.0, beta_fast=32.0,
                        beta_slow=1.0, truncate=False, original_max_position_embeddings=4096),
    # DeepSeek style mscale / mscale_all_dim
    "yarn-mscale": cfg(64, 163840, 10000.0, rope_type="yarn", factor=40.0, mscale=1.0,
                       mscale_all_dim=0.707, beta_fast=32, beta_slow=1,
                       original_max_position_embeddings=4096),
    "yarn-attn": cfg(32, 2048, 10000.0, rope_type="yarn", factor=2.0, attention_factor=0.9,
                     original_max_position_embeddings=1024),
    # Phi-3 128k style (head_dim 96), and one with factor given
    "longrope-96": cfg(96, 128, 10000.0, rope_type="longrope",
                       long_factor=factors(48, 1.0, 60.0), short_factor=factors(48, 1.0, 1.2),
                       original_max_position_embeddings=32),
    "longrope-factor": cfg(32, 1024, 10000.0, rope_type="longrope", factor=8.0,
                           long_factor=factors(16, 1.0, 8.0), short_factor=[1.0] * 16,
                           original_max_position_embeddings=64),
    "dynamic-64": cfg(64, 32, 10000.0, rope_type="dynamic", factor=2.0),
    "dynamic-128": cfg(128, 64, 500000.0, rope_type="dynamic", factor=4.0),
    # Phi-4-mini: partial_rotary_factor 0.75 of heads of 128 (96 rotated, 48
    # factors), LongRoPE with the original context at the top
    "phi3-longrope-partial": Phi3Config(
        hidden_size=256, num_attention_heads=2, num_key_value_heads=1, num_hidden_layers=1,
        intermediate_size=8, vocab_size=8, max_position_embeddings=128,
        original_max_position_embeddings=32, partial_rotary_factor=0.75,
        rope_parameters=dict(rope_type="longrope", rope_theta=10000.0,
                             long_factor=factors(48, 1.0, 40.0),
                             short_factor=factors(48, 1.0, 1.3))),
    "phi3-partial": Phi3Config(
        hidden_size=128, num_attention_heads=2, num_key_value_heads=1, num_hidden_layers=1,
        intermediate_size=8, vocab_size=8, max_position_embeddings=64,
        partial_rotary_factor=0.5, pad_token_id=0, bos_token_id=1, eos_token_id=2),
}

# lengths of the forwards in turn: short, past the original context,
# longer, shorter but past (dynamic keeps its longest table), short again
# (dynamic resets), long, then exactly an original context (32, 64), one past
# it, and max_position_embeddings again after a longer one (no reset)
SEQ = [16, 40, 33, 77, 50, 20, 12, 200, 1, 32, 64, 65, 32]


def main(out):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    tensors = {}
    for name, c in CASES.items():
        d = tempfile.mkdtemp()
        c.save_pretrained(d)
        shutil.copy(os.path.join(d, "config.json"), os.path.join(out, name + ".json"))
        shutil.rmtree(d)
        c = AutoConfig.from_pretrained(os.path.join(out, name + ".json"))
        emb = (Phi3RotaryEmbedding if c.model_type == "phi3" else LlamaRotaryEmbedding)(c)
        x = torch.zeros(1, 1, getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads)
        invs, scales = [], []
        for s in SEQ:
            emb(x, torch.arange(s)[None])
            invs.append(emb.inv_freq.detach().float().clone())
            scales.append(torch.tensor(emb.attention_scaling, dtype=torch.float32))
        tensors[name + ".seq"] = torch.tensor(SEQ, dtype=torch.int32)
        tensors[name + ".inv"] = torch.stack(invs).contiguous()
        tensors[name + ".scale"] = torch.stack(scales).contiguous()
    save_file(tensors, os.path.join(out, "rope.safetensors"))
    print("%d cases" % len(CASES))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else OUT)

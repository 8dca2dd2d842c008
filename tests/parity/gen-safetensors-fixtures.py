#!/usr/bin/env python3
"""Generates tests/fixtures/safetensors/ and tests/fixtures/configs/ with the
Python reference stack (torch, safetensors, transformers).

Run from anywhere (deterministic; needs torch, safetensors, numpy,
transformers):
    /tmp/refvenv/bin/python tests/parity/gen-safetensors-fixtures.py

safetensors/
    conv.safetensors   conversions as torch does them: F32 inputs and their
                       F16 and BF16 roundings (.to(torch.float16/bfloat16)),
                       every F16 bit pattern and its F32 value, a sample of
                       BF16 patterns and their F32 values, F64 inputs and
                       their F32 roundings
    mixed.safetensors  tensors of every dtype tk knows, with names that sort
                       differently by dtype and by name, escapes, a scalar,
                       an empty tensor, metadata {"format": "pt"}, as
                       safetensors.torch.save_file writes them; tk must
                       rewrite it byte for byte
    plain.safetensors  the same through safetensors.numpy.save_file, no
                       metadata (numpy has no bf16)
    sharded/           a tiny GPT-2 that transformers saved in shards
                       (model-0000N-of-0000M.safetensors + index), with
                       expect.txt: "NAME DTYPE DIM,DIM SUM" per tensor (SUM
                       of the fp32 values in float64, repr)
configs/
    NAME.json          config.json as transformers' save_pretrained wrote it
                       (or, for *-v4 and *-minimal, as written here in the
                       4.x style / with keys left out)
    NAME.expect        "key value" lines: what transformers makes of it,
                       read off the config and the model it builds (on the
                       meta device): sizes, biases, tying, n_params =
                       sum(p.numel() for p in model.parameters())
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save_file as pt_save_file
from transformers import (AutoConfig, AutoModelForCausalLM, Gemma2Config, Gemma3TextConfig,
                          GPT2Config, GPT2LMHeadModel,
                          LlamaConfig, MistralConfig, Phi3Config, Qwen2Config, Qwen3Config,
                          SmolLM3Config)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
ST = os.path.join(ROOT, "tests", "fixtures", "safetensors")
CF = os.path.join(ROOT, "tests", "fixtures", "configs")


def f32_inputs(rng):
    """F32 bit patterns that exercise rounding to F16 and BF16."""
    special = [0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
               0x7f800001, 0xff800001, 0x7fbfffff, 0x7fffffff, 0x00000001, 0x807fffff,
               0x3f800000, 0xbf800000, 0x477fe000, 0x477fefff, 0x477ff000, 0x477fffff,
               0x47800000, 0x38800000, 0x387fffff, 0x33000000, 0x33000001, 0x33800000,
               0x337fffff, 0x7f7fffff, 0xff7fffff, 0x3f808000, 0x3f818000, 0x3f80ffff,
               0x3f807fff, 0x3f800fff, 0x3f801000, 0x3f803000, 0x3f802000]
    bits = list(special)
    # halfway and near-halfway cases for both targets, across the exponent range
    for e in range(0, 256, 3):
        for low in (0x1000, 0x0fff, 0x1001, 0x3000, 0x8000, 0x7fff, 0x8001, 0x18000):
            m = int(rng.integers(0, 1 << 23)) & ~0x1ffff
            bits.append((e << 23) | ((m | low) & 0x7fffff))
            bits.append(0x80000000 | (e << 23) | ((m + low) & 0x7fffff))
    bits += [int(x) for x in rng.integers(0, 1 << 32, size=12000, dtype=np.uint64)]
    # f16 subnormal range in detail
    bits += [int(x) for x in rng.integers(0x33000000, 0x38800000, size=3000, dtype=np.uint64)]
    return np.array(bits, dtype=np.uint32)


def gen_conv(rng):
    x = torch.from_numpy(f32_inputs(rng).view(np.float32).copy())
    h_all = torch.from_numpy(np.arange(65536, dtype=np.uint16).view(np.float16).copy())
    bf_bits = np.concatenate([np.arange(0, 65536, 17, dtype=np.uint16),
                              np.array([0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffff, 0x0001, 0x8001,
                                        0x007f, 0x0080], dtype=np.uint16)])
    bf_all = torch.from_numpy(bf_bits.view(np.int16).copy()).view(torch.bfloat16)
    d = np.concatenate([rng.standard_normal(3000) * 10.0 ** rng.integers(-45, 39, 3000),
                        np.array([0.0, -0.0, np.inf, -np.inf, 1e-46, 1.4e-45, 7.0e-46, 3.4028235e38,
                                  3.4028236e38, 3.40282357e38, 1e39, 1 + 2 ** -24, 1 + 2 ** -24 + 2 ** -40,
                                  1 + 3 * 2 ** -24])])
    f64 = torch.from_numpy(d)
    tensors = {
        "f32_in": x,
        "f32_to_f16": x.to(torch.float16),
        "f32_to_bf16": x.to(torch.bfloat16),
        "f16_all": h_all,
        "f16_all_f32": h_all.to(torch.float32),
        "bf16_some": bf_all,
        "bf16_some_f32": bf_all.to(torch.float32),
        "f64_in": f64,
        "f64_to_f32": f64.to(torch.float32),
    }
    pt_save_file(tensors, os.path.join(ST, "conv.safetensors"), metadata={"format": "pt"})


def mixed_tensors(rng):
    t = {
        "zeta.weight": torch.from_numpy(rng.standard_normal((3, 5)).astype(np.float32)),
        "alpha.bias": torch.from_numpy(rng.standard_normal(7).astype(np.float32)),
        "h.0.bf16": torch.from_numpy(rng.standard_normal((2, 3)).astype(np.float32)).to(torch.bfloat16),
        "h.0.f16": torch.from_numpy(rng.standard_normal((4,)).astype(np.float16)),
        "f64 value": torch.from_numpy(rng.standard_normal((2, 2))),
        "ids": torch.arange(-3, 6, dtype=torch.int64),
        "count": torch.tensor(42, dtype=torch.int32),
        "u8": torch.arange(0, 250, 50, dtype=torch.uint8),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "i16": torch.tensor([-300, 7], dtype=torch.int16),
        "mask": torch.tensor([True, False, True]),
        "empty": torch.zeros((0, 4), dtype=torch.float32),
        "quote\"back\\slash\ttab\x01ctl": torch.ones(1, dtype=torch.float32),
        "caf\u00e9 \u4f60\u597d": torch.zeros((1, 1, 1), dtype=torch.float16),
        "u16": torch.tensor([1, 65535], dtype=torch.uint16),
        "u32": torch.tensor([1, 4000000000], dtype=torch.uint32),
        "u64": torch.tensor([1, 2 ** 63 + 5], dtype=torch.uint64),
    }
    return t


def gen_mixed(rng):
    t = mixed_tensors(rng)
    pt_save_file(t, os.path.join(ST, "mixed.safetensors"), metadata={"format": "pt"})
    n = {k: v.numpy() for k, v in t.items() if v.dtype != torch.bfloat16}
    np_save_file(n, os.path.join(ST, "plain.safetensors"))


def gen_sharded():
    out = os.path.join(ST, "sharded")
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=16, n_layer=2, n_head=2, n_positions=32, vocab_size=50,
                     bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg)
    model.save_pretrained(out, max_shard_size="4KB")
    with open(os.path.join(out, "expect.txt"), "w") as f:
        from safetensors import safe_open
        names = []
        for fn in sorted(os.listdir(out)):
            if fn.endswith(".safetensors"):
                with safe_open(os.path.join(out, fn), "pt") as s:
                    for k in s.keys():
                        names.append((k, s.get_tensor(k)))
        for k, v in sorted(names):
            dt = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[v.dtype]
            shape = ",".join(str(x) for x in v.shape) or "-"
            f.write("%s %s %s %r\n" % (k, dt, shape, float(v.double().sum())))


def describe(cfg):
    """What transformers makes of a config: from the config and from the
    model it builds (meta device, so the sizes cost nothing)."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    tied = model.lm_head.weight is emb
    e = {"model_type": cfg.model_type, "vocab_size": cfg.vocab_size}
    if cfg.model_type == "gpt2":
        blk = model.transformer.h[0]
        e.update(hidden=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head, n_kv_head=cfg.n_head,
                 head_dim=cfg.n_embd // cfg.n_head,
                 intermediate=blk.mlp.c_fc.weight.shape[1], max_pos=cfg.n_positions,
                 norm="layer", norm_eps=cfg.layer_norm_epsilon, pos="learned", rope_theta=0.0,
                 rope_type="none", rope_factor=0.0,
                 mlp="gelu", attn_bias=int(blk.attn.c_attn.bias is not None),
                 attn_out_bias=int(blk.attn.c_proj.bias is not None),
                 mlp_bias=int(blk.mlp.c_fc.bias is not None), sliding_window=0)
    else:
        blk = model.model.layers[0]
        at = blk.self_attn
        head_dim = at.head_dim
        gemma = cfg.model_type in ("gemma2", "gemma3_text")
        sw = getattr(cfg, "sliding_window", None) or 0
        if cfg.model_type not in ("mistral", "phi3") or sw >= cfg.max_position_embeddings:
            sw = 0
        fused = cfg.model_type == "phi3"   # qkv_proj, gate_up_proj
        inter = (blk.mlp.gate_up_proj.weight.shape[0] // 2 if fused
                 else blk.mlp.gate_proj.weight.shape[0])
        qp = at.qkv_proj if fused else at.q_proj
        # Gemma-3 keeps one set of rope parameters per layer type; Phi-3's
        # older rope types are read through its rotary embedding
        rp = cfg.rope_parameters.get("full_attention", cfg.rope_parameters)
        if fused:
            rp = dict(rp, rope_theta=model.model.rotary_emb.config.rope_parameters["rope_theta"],
                      rope_type=model.model.rotary_emb.rope_type)
        e.update(hidden=cfg.hidden_size, n_layer=cfg.num_hidden_layers,
                 n_head=cfg.num_attention_heads, n_kv_head=cfg.num_key_value_heads,
                 head_dim=head_dim, intermediate=inter,
                 max_pos=cfg.max_position_embeddings, norm="rms", norm_eps=cfg.rms_norm_eps,
                 pos="rope", rope_theta=float(rp["rope_theta"]), rope_type=rp["rope_type"],
                 rope_factor=float(rp.get("factor") or 0.0),
                 mlp="geglu" if gemma else "swiglu", attn_bias=int(qp.bias is not None),
                 attn_out_bias=int(at.o_proj.bias is not None),
                 mlp_bias=int(blk.mlp.down_proj.bias is not None),
                 sliding_window=(cfg.sliding_window or 0) if gemma else sw)
        if fused:
            # the width rotated: the rotary table's pairs, twice
            e["rotary_dim"] = 2 * model.model.rotary_emb.inv_freq.shape[0]
        else:
            assert (at.k_proj.bias is not None) == (at.q_proj.bias is not None)
    eos = cfg.eos_token_id
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    dt = getattr(cfg, "dtype", None)
    e.update(tie_embeddings=int(tied), initializer_range=cfg.initializer_range,
             bos_id=-1 if cfg.bos_token_id is None else cfg.bos_token_id,
             eos_id=-1 if eos is None else eos,
             pad_id=-1 if cfg.pad_token_id is None else cfg.pad_token_id,
             torch_dtype=str(dt).replace("torch.", "") if dt is not None else "-",
             n_params=n_params)
    if cfg.model_type in ("gemma2", "gemma3_text"):
        assert cfg.hidden_activation == "gelu_pytorch_tanh"
        loc = cfg.rope_parameters.get("sliding_attention", {}).get("rope_theta", 0.0)
        e.update(norm_offset=1.0,
                 embed_scale=float(torch.tensor(cfg.hidden_size ** 0.5, dtype=torch.float32)),
                 sandwich=int(hasattr(blk, "post_feedforward_layernorm")),
                 qk_norm=int(hasattr(at, "q_norm")),
                 query_pre_attn_scalar=float(cfg.query_pre_attn_scalar),
                 attn_softcap=float(cfg.attn_logit_softcapping or 0.0),
                 final_softcap=float(cfg.final_logit_softcapping or 0.0),
                 rope_local_theta=float(loc),
                 windows=",".join(str(cfg.sliding_window if t == "sliding_attention" else 0)
                                  for t in cfg.layer_types))
    return e


def write_expect(path, e):
    with open(path, "w") as f:
        for k, v in e.items():
            f.write("%s %s\n" % (k, repr(v) if isinstance(v, float) else v))


def rope(theta):
    return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}


CONFIGS = {
    "gpt2-default": GPT2Config(),
    "gpt2-tiny-untied": GPT2Config(n_embd=48, n_layer=2, n_head=3, n_inner=100, n_positions=64,
                                   vocab_size=101, tie_word_embeddings=False,
                                   layer_norm_epsilon=1e-6, initializer_range=0.05,
                                   bos_token_id=0, eos_token_id=1, pad_token_id=2),
    "llama-default": LlamaConfig(),
    "llama-gqa-bias": LlamaConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                                  num_attention_heads=6, num_key_value_heads=2, rms_norm_eps=1e-5,
                                  tie_word_embeddings=True, attention_bias=True, mlp_bias=True,
                                  max_position_embeddings=128, vocab_size=97, **rope(500000.0)),
    "llama-head-dim": LlamaConfig(hidden_size=48, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=4, num_key_value_heads=1, head_dim=24,
                                  vocab_size=64, max_position_embeddings=64, dtype="bfloat16"),
    "mistral-default": MistralConfig(),
    "mistral-tiny": MistralConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, sliding_window=None,
                                  vocab_size=80, max_position_embeddings=256, **rope(1000000.0)),
    "qwen2-default": Qwen2Config(),
    "qwen3-default": Qwen3Config(),
    "qwen3-tiny-bias": Qwen3Config(hidden_size=48, intermediate_size=72, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=2, head_dim=32,
                                   attention_bias=True, vocab_size=90,
                                   max_position_embeddings=256, **rope(1000000.0)),
    "smollm3-default": SmolLM3Config(),
    "gemma2-default": Gemma2Config(),
    "gemma3-default": Gemma3TextConfig(),
    "gemma2-tiny": Gemma2Config(hidden_size=48, intermediate_size=72, num_hidden_layers=3,
                                num_attention_heads=6, num_key_value_heads=3, head_dim=12,
                                vocab_size=90, query_pre_attn_scalar=12, sliding_window=32,
                                attn_logit_softcapping=None, final_logit_softcapping=20.0,
                                attention_bias=True, tie_word_embeddings=False,
                                max_position_embeddings=256, **rope(1000.0)),
    "gemma3-tiny": Gemma3TextConfig(hidden_size=48, intermediate_size=72, num_hidden_layers=4,
                                    num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                                    vocab_size=90, sliding_window=16, max_position_embeddings=512,
                                    layer_types=["sliding_attention", "full_attention",
                                                 "full_attention", "sliding_attention"],
                                    rope_parameters={
                                        "full_attention": {"rope_type": "linear", "factor": 8.0,
                                                           "rope_theta": 1000000.0},
                                        "sliding_attention": {"rope_type": "default",
                                                              "rope_theta": 10000.0}},
                                    attn_logit_softcapping=30.0, dtype="bfloat16"),
    "phi3-default": Phi3Config(),
    # Phi-4-mini's shape: partial rotary 0.75 (12 of 16), tied, GQA
    "phi3-tiny-partial": Phi3Config(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2,
                                    partial_rotary_factor=0.75, tie_word_embeddings=True,
                                    vocab_size=90, max_position_embeddings=256,
                                    sliding_window=200, bos_token_id=1, eos_token_id=2,
                                    pad_token_id=3, **rope(250000.0)),
    "qwen2-tiny-tied": Qwen2Config(hidden_size=48, intermediate_size=72, num_hidden_layers=3,
                                   num_attention_heads=3, num_key_value_heads=1, vocab_size=90,
                                   tie_word_embeddings=True, max_position_embeddings=512,
                                   bos_token_id=5, eos_token_id=[6, 7], dtype="float16",
                                   **rope(1000000.0)),
}

# As the hub holds them: written by transformers 4.x (rope_theta at the top,
# rope_scaling null, torch_dtype), or with most keys left out.
RAW = {
    "llama-v4": {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 64,
        "initializer_range": 0.02, "intermediate_size": 160, "max_position_embeddings": 2048,
        "model_type": "llama", "num_attention_heads": 8, "num_hidden_layers": 2,
        "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": None, "rope_theta": 500000.0, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "transformers_version": "4.44.0", "use_cache": True,
        "vocab_size": 320,
    },
    "qwen2-v4": {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 56, "initializer_range": 0.02,
        "intermediate_size": 128, "max_position_embeddings": 4096, "max_window_layers": 24,
        "model_type": "qwen2", "num_attention_heads": 7, "num_hidden_layers": 2,
        "num_key_value_heads": 1, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "sliding_window": 4096, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "transformers_version": "4.40.1", "use_cache": True, "use_sliding_window": False,
        "vocab_size": 151936,
    },
    "mistral-v4-window": {
        "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
        "intermediate_size": 112, "max_position_embeddings": 32768, "model_type": "mistral",
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.34.0",
        "use_cache": True, "vocab_size": 200,
    },
    "gpt2-minimal": {"model_type": "gpt2", "n_layer": 2},
    "llama-minimal": {"model_type": "llama", "num_hidden_layers": 1},
    "mistral-minimal": {"model_type": "mistral", "num_hidden_layers": 1},
    "qwen2-minimal": {"model_type": "qwen2", "num_hidden_layers": 1},
    "qwen3-minimal": {"model_type": "qwen3", "num_hidden_layers": 1},
    "smollm3-minimal": {"model_type": "smollm3", "num_hidden_layers": 3},
    "gemma2-minimal": {"model_type": "gemma2", "num_hidden_layers": 3},
    "gemma3-minimal": {"model_type": "gemma3_text", "num_hidden_layers": 7},
    # Gemma-3 1B as transformers 4.5x wrote it (rope_theta, rope_scaling,
    # rope_local_base_freq and sliding_window_pattern at the top)
    "gemma3-v4": {
        "architectures": ["Gemma3ForCausalLM"], "attention_bias": False,
        "attention_dropout": 0.0, "attn_logit_softcapping": None, "bos_token_id": 2,
        "cache_implementation": "hybrid", "eos_token_id": [1, 106], "final_logit_softcapping": None,
        "head_dim": 32, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 64,
        "initializer_range": 0.02, "intermediate_size": 96, "max_position_embeddings": 32768,
        "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 7,
        "num_key_value_heads": 1, "pad_token_id": 0, "query_pre_attn_scalar": 32,
        "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000, "rope_scaling": None,
        "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6,
        "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0", "use_cache": True,
        "vocab_size": 262,
    },
    "phi3-minimal": {"model_type": "phi3", "num_hidden_layers": 1},
    # Phi-3-mini-4k as the hub holds it (sliding_window 2047, rope_scaling null)
    "phi3-mini-4k-v4": {
        "architectures": ["Phi3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu",
        "hidden_size": 96, "initializer_range": 0.02, "intermediate_size": 256,
        "max_position_embeddings": 4096, "model_type": "phi3", "num_attention_heads": 4,
        "num_hidden_layers": 2, "num_key_value_heads": 4, "original_max_position_embeddings": 4096,
        "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": None,
        "rope_theta": 10000.0, "sliding_window": 2047, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "transformers_version": "4.40.2", "use_cache": True,
        "vocab_size": 32064,
    },
    # Phi-3.5-mini as the hub holds it: rope_scaling longrope (head_dim 16:
    # 8 factors each), original_max_position_embeddings at the top
    "phi3.5-mini-v4": {
        "architectures": ["Phi3ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
        "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 64,
        "initializer_range": 0.02, "intermediate_size": 128, "max_position_embeddings": 131072,
        "model_type": "phi3", "num_attention_heads": 4, "num_hidden_layers": 2,
        "num_key_value_heads": 4, "original_max_position_embeddings": 4096,
        "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05,
        "rope_scaling": {"long_factor": [1.08, 1.2, 1.6, 3.4, 9.6, 25.2, 34.7, 47.8],
                         "short_factor": [1.0, 1.0, 1.02, 1.05, 1.1, 1.3, 1.7, 2.1],
                         "type": "longrope"},
        "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "transformers_version": "4.43.3", "use_cache": True,
        "vocab_size": 32064,
    },
    # Phi-4-mini: partial_rotary_factor 0.75 at the top, longrope with
    # factors for the 12 rotated of 16, tied, GQA
    "phi4-mini-v4": {
        "architectures": ["Phi3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 199999, "embd_pdrop": 0.0, "eos_token_id": 199999, "full_attn_mod": 1,
        "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
        "intermediate_size": 160, "interpolate_factor": 1, "lm_head_bias": False,
        "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "phi3",
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "original_max_position_embeddings": 4096, "pad_token_id": 199999,
        "partial_rotary_factor": 0.75, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05,
        "rope_scaling": {"long_factor": [1, 1.12, 1.5, 2.9, 8.6, 21.0],
                         "short_factor": [1, 1.0, 1.0, 1.1, 1.2, 1.4], "type": "longrope"},
        "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.45.0", "use_cache": True,
        "vocab_size": 200064,
    },
    # Llama-3.1 as the hub holds it (4.x rope_scaling with rope_type llama3)
    "llama-3.1-v4": {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
        "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 160,
        "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
        "num_attention_heads": 8, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 256,
    },
}


def gen_configs():
    shutil.rmtree(CF, ignore_errors=True)
    os.makedirs(CF)
    for name, cfg in CONFIGS.items():
        d = tempfile.mkdtemp()
        cfg.save_pretrained(d)
        shutil.copy(os.path.join(d, "config.json"), os.path.join(CF, name + ".json"))
        shutil.rmtree(d)
    for name, raw in RAW.items():
        with open(os.path.join(CF, name + ".json"), "w") as f:
            json.dump(raw, f, indent=2, sort_keys=True)
            f.write("\n")
    for fn in sorted(os.listdir(CF)):
        if fn.endswith(".json"):
            cfg = AutoConfig.from_pretrained(os.path.join(CF, fn))
            write_expect(os.path.join(CF, fn[:-5] + ".expect"), describe(cfg))


def main():
    os.makedirs(ST, exist_ok=True)
    rng = np.random.default_rng(20240607)
    gen_conv(rng)
    gen_mixed(rng)
    gen_sharded()
    gen_configs()
    for d, _, files in os.walk(ST):  # the safetensors library writes 0600
        for fn in files:
            os.chmod(os.path.join(d, fn), 0o644)
    print("torch %s, safetensors %s, transformers %s" % (
        torch.__version__, __import__("safetensors").__version__, transformers.__version__))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Generates tests/fixtures/models/: tiny random models that transformers
itself creates, and what transformers computes with them.

Run from anywhere (deterministic on the CPU; needs torch, transformers,
safetensors):
    /tmp/refvenv/bin/python tests/parity/gen-model-fixtures.py [OUTDIR [NAME...]]

For each model NAME (gpt2, llama, qwen2, qwen3, smollm3, gemma2, gemma3,
rope-TYPE: llama with each rotary scaling, swa-mistral and swa-qwen2:
sliding windows shorter than the sequence, and phi3*: Phi-3 with its fused
qkv_proj and gate_up_proj, partial rotary and LongRoPE; the NAMEs given,
else all) it
writes
    NAME/config.json, NAME/model.safetensors
        the model as save_pretrained(safe_serialization=True) wrote it, in
        the dtype listed in MODELS (so that F16, BF16 and F32 checkpoints
        are all read by the tests)
    NAME.ref.safetensors
        input_ids  I32 [B, T]   (T 11; 40 for the rope-* models, 16 for swa-*)
        labels     I32 [B, T]   (-100 where ignored; HF shifts them inside)
        logits     F32 [B, T, V]
        loss       F32 [1]      model(input_ids, labels=labels).loss
        grad.PARAM F32 (PARAM's shape on disk)  for every named parameter,
                   after loss.backward(), under the Hugging Face names
The reference runs in fp32 with attn_implementation="eager", on the
weights as stored (a half-precision checkpoint is upcast exactly).

Besides the prescribed shapes, every parameter is made non-trivial: the
initializer range is 0.1 (not 0.02) so that attention is far from uniform,
and norm weights and biases (which transformers initialises to 1 and 0;
Gemma's norm weights, applied as 1 + w, to 0) get seeded noise, so that a
weight applied in the wrong place shows.

check-model.py imports this file to build the same models live.
"""
import copy
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, Gemma2Config, Gemma3TextConfig, GPT2Config,
                          LlamaConfig, MistralConfig, Phi3Config, Qwen2Config, Qwen3Config,
                          SmolLM3Config)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "models")

B, T = 2, 11
VOCAB = 97


def gpt2_config():
    return GPT2Config(n_embd=48, n_layer=2, n_head=3, vocab_size=VOCAB, n_positions=64,
                      initializer_range=0.1, attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0,
                      bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)


def llama_config():
    return LlamaConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                       num_attention_heads=6, num_key_value_heads=2, vocab_size=VOCAB,
                       rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.1,
                       max_position_embeddings=64, rms_norm_eps=1e-5)


def qwen2_config():
    return Qwen2Config(hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                       num_attention_heads=6, num_key_value_heads=2, vocab_size=VOCAB,
                       rope_theta=10000.0, tie_word_embeddings=True, initializer_range=0.1,
                       max_position_embeddings=64, rms_norm_eps=1e-6)


def qwen3_config():
    # head_dim 16 with 6 heads of a 48-wide model: q_proj is [96, 48]
    return Qwen3Config(hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                       num_attention_heads=6, num_key_value_heads=2, head_dim=16,
                       vocab_size=VOCAB, tie_word_embeddings=False, initializer_range=0.1,
                       max_position_embeddings=64, rms_norm_eps=1e-6,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def smollm3_config():
    # no_rope_layer_interval 2: layer 1 of 2 has no rotary embedding; tied,
    # rope_theta 2e6 (SmolLM3's default)
    return SmolLM3Config(hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, vocab_size=VOCAB,
                         initializer_range=0.1, max_position_embeddings=64, rms_norm_eps=1e-6,
                         no_rope_layer_interval=2, bos_token_id=1, eos_token_id=2,
                         pad_token_id=None)


def gemma2_config():
    # head_dim 16 apart from 48 / 6 heads, query_pre_attn_scalar 24 (not
    # head_dim), soft-caps small enough to bite (attention scores reach
    # about 3, logits 6), a window of 5 < T on the sliding layers 0 and 2;
    # tied, as Gemma-2 is
    return Gemma2Config(hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                        num_attention_heads=6, num_key_value_heads=2, head_dim=16,
                        vocab_size=VOCAB, initializer_range=0.1, max_position_embeddings=64,
                        rms_norm_eps=1e-6, query_pre_attn_scalar=24, attn_logit_softcapping=2.0,
                        final_logit_softcapping=3.0, sliding_window=5,
                        rope_parameters={"rope_type": "default", "rope_theta": 1000.0})


def gemma3_config():
    # q_norm/k_norm, local layers rotating by theta 100 and the global one
    # by 10000 with a linear scaling, layer_types given (full in the
    # middle), window 4, 3 kv heads of 16, untied
    return Gemma3TextConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                            num_attention_heads=6, num_key_value_heads=3, head_dim=16,
                            vocab_size=VOCAB, initializer_range=0.1, max_position_embeddings=64,
                            rms_norm_eps=1e-6, query_pre_attn_scalar=20, sliding_window=4,
                            layer_types=["sliding_attention", "full_attention",
                                         "sliding_attention"],
                            tie_word_embeddings=False,
                            rope_parameters={
                                "full_attention": {"rope_type": "linear", "factor": 2.0,
                                                   "rope_theta": 10000.0},
                                "sliding_attention": {"rope_type": "default",
                                                      "rope_theta": 100.0}})


def phi3_config():
    # Phi-3 / Phi-3.5-mini: fused qkv_proj [6*8 + 2*2*8, 48] and gate_up_proj
    # [2*76, 48], the whole head rotated, untied
    return Phi3Config(hidden_size=48, intermediate_size=76, num_hidden_layers=2,
                      num_attention_heads=6, num_key_value_heads=2, vocab_size=VOCAB,
                      initializer_range=0.1, max_position_embeddings=64, rms_norm_eps=1e-5,
                      bos_token_id=1, eos_token_id=VOCAB - 1, pad_token_id=VOCAB - 1,
                      tie_word_embeddings=False)


def phi3_partial_config():
    # Phi-4-mini's shape: partial_rotary_factor 0.75 (6 of each head of 8
    # rotated, 2 passed through), one key/value head for 5 query heads,
    # tied embeddings
    return Phi3Config(hidden_size=40, intermediate_size=52, num_hidden_layers=2,
                      num_attention_heads=5, num_key_value_heads=1, vocab_size=VOCAB,
                      initializer_range=0.1, max_position_embeddings=64, rms_norm_eps=1e-5,
                      partial_rotary_factor=0.75, rope_theta=500.0, bos_token_id=1,
                      eos_token_id=VOCAB - 1, pad_token_id=VOCAB - 1, tie_word_embeddings=True)


def phi3_longrope_config():
    # Phi-3.5 / Phi-4-mini's LongRoPE (top-level original_max_position_embeddings
    # 32, run on T_LONG tokens past it: the long factors), with Phi-4-mini's
    # partial rotary: head_dim 16, 12 rotated, 6 factors each
    return Phi3Config(hidden_size=64, intermediate_size=68, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
                      initializer_range=0.1, max_position_embeddings=128,
                      original_max_position_embeddings=32, rms_norm_eps=1e-5,
                      partial_rotary_factor=0.75,
                      rope_parameters=dict(rope_type="longrope", rope_theta=100.0,
                                           long_factor=[1.0, 1.25, 1.5, 2.5, 4.0, 6.0],
                                           short_factor=[1.0, 1.05, 1.1, 1.2, 1.3, 1.5]),
                      bos_token_id=1, eos_token_id=VOCAB - 1, pad_token_id=VOCAB - 1,
                      tie_word_embeddings=False)


# Rotary scalings, on the llama shape (head_dim 8: pairs of wavelength 6.3,
# 20, 63 and 199 with theta 100, so that llama3's three bands and YaRN's
# ramp each hold a pair), run on T_LONG tokens: past the original context
# of 32 (llama3, yarn, longrope) or max_position_embeddings 32 (dynamic).
T_LONG = 40


def rope_config(params, max_pos=128):
    return LlamaConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                       num_attention_heads=6, num_key_value_heads=2, vocab_size=VOCAB,
                       tie_word_embeddings=False, initializer_range=0.1,
                       max_position_embeddings=max_pos, rms_norm_eps=1e-5,
                       rope_parameters=dict(params, rope_theta=100.0))


ROPES = {
    "rope-llama3": dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                        high_freq_factor=4.0, original_max_position_embeddings=32),
    "rope-linear": dict(rope_type="linear", factor=2.0),
    "rope-yarn": dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=32),
    "rope-longrope": dict(rope_type="longrope", long_factor=[1.0, 1.5, 2.5, 4.0],
                          short_factor=[1.0, 1.1, 1.2, 1.3],
                          original_max_position_embeddings=32),
    "rope-dynamic": dict(rope_type="dynamic", factor=2.0),
}


def rope_factory(name):
    return lambda: rope_config(ROPES[name], 32 if name == "rope-dynamic" else 128)


# Sliding windows of 5 positions on 16 tokens: Mistral's on every layer;
# Qwen2's (use_sliding_window) on the layers from max_window_layers = 1 on,
# layer 0 of 3 attending to every earlier key.  make_model checks that the
# window changes what eager attention computes.
T_SWA = 16
SWA_WINDOW = 5


def swa_mistral_config():
    return MistralConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, vocab_size=VOCAB,
                         rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.1,
                         max_position_embeddings=64, rms_norm_eps=1e-5,
                         sliding_window=SWA_WINDOW)


def swa_qwen2_config():
    return Qwen2Config(hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                       num_attention_heads=6, num_key_value_heads=2, vocab_size=VOCAB,
                       rope_theta=10000.0, tie_word_embeddings=True, initializer_range=0.1,
                       max_position_embeddings=64, rms_norm_eps=1e-6,
                       use_sliding_window=True, sliding_window=SWA_WINDOW, max_window_layers=1)


def swa_phi3_config():
    # Phi-3's sliding_window (Phi-3-mini-4k has 2047 of 4096), partial rotary
    return Phi3Config(hidden_size=48, intermediate_size=76, num_hidden_layers=2,
                      num_attention_heads=6, num_key_value_heads=2, vocab_size=VOCAB,
                      initializer_range=0.1, max_position_embeddings=64, rms_norm_eps=1e-5,
                      partial_rotary_factor=0.5, bos_token_id=1, eos_token_id=VOCAB - 1,
                      pad_token_id=VOCAB - 1, sliding_window=SWA_WINDOW)


# name, config factory, seed, dtype of the saved checkpoint, sequence length
MODELS = [
    ("gpt2", gpt2_config, 1, torch.float16, T),
    ("llama", llama_config, 2, torch.bfloat16, T),
    ("qwen2", qwen2_config, 3, torch.float16, T),
    ("qwen3", qwen3_config, 4, torch.bfloat16, T),
    ("smollm3", smollm3_config, 5, torch.bfloat16, T),
    ("gemma2", gemma2_config, 6, torch.bfloat16, T),
    ("gemma3", gemma3_config, 7, torch.float16, T),
] + [(n, rope_factory(n), 10 + i, torch.float32, T_LONG) for i, n in enumerate(ROPES)] + [
    ("swa-mistral", swa_mistral_config, 20, torch.float32, T_SWA),
    ("swa-qwen2", swa_qwen2_config, 21, torch.float32, T_SWA),
    ("phi3", phi3_config, 20, torch.bfloat16, T),
    ("phi3-partial", phi3_partial_config, 21, torch.float16, T),
    ("phi3-longrope", phi3_longrope_config, 22, torch.float32, T_LONG),
    ("swa-phi3", swa_phi3_config, 23, torch.float32, T_SWA),
]


def make_model(cfg_fn, seed, dtype):
    """A transformers model, perturbed, rounded to dtype and back to fp32."""
    torch.manual_seed(seed)
    cfg = cfg_fn()
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager",
                                             dtype=torch.float32)
    gemma = cfg.model_type.startswith("gemma")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                base = 1.0 if name.endswith("weight") and not gemma else 0.0
                p.copy_(base + 0.1 * torch.randn_like(p))
            p.copy_(p.to(dtype).to(torch.float32))
    return model.eval()


def make_inputs(seed, t=T):
    g = torch.Generator().manual_seed(1000 + seed)
    ids = torch.randint(0, VOCAB, (B, t), generator=g)
    labels = ids.clone()
    labels[0, :3] = -100      # a prompt that is not trained on
    labels[1, 6] = -100
    labels[1, t - 1] = -100   # the last label is never used after the shift
    return ids, labels


def reference(model, ids, labels):
    """logits, loss and gradients, as a dict of fp32 tensors (HF names)."""
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    ref = {
        "input_ids": ids.to(torch.int32).contiguous(),
        "labels": labels.to(torch.int32).contiguous(),
        "logits": out.logits.detach().float().contiguous(),
        "loss": out.loss.detach().float().reshape(1).contiguous(),
    }
    for name, p in model.named_parameters():
        ref["grad." + name] = p.grad.detach().float().contiguous()
    return ref


def check_window_applies(model, ids):
    """The sliding window changes eager attention's logits: the same weights
    with every layer full causal give others (else the fixture would test
    nothing)."""
    full = copy.deepcopy(model)
    full.config.sliding_window = None
    full.config.layer_types = ["full_attention"] * full.config.num_hidden_layers
    for layer in full.model.layers:
        layer.self_attn.sliding_window = None
        if hasattr(layer, "attention_type"):
            layer.attention_type = "full_attention"
    if hasattr(full.model, "has_sliding_layers"):
        full.model.has_sliding_layers = False
    with torch.no_grad():
        a, b = model(input_ids=ids).logits, full(input_ids=ids).logits
    t = ids.shape[1]
    # rows up to the window see the same keys either way; later rows do not
    assert torch.equal(a[:, :SWA_WINDOW], b[:, :SWA_WINDOW]), "window changed early rows"
    assert (a[:, SWA_WINDOW:] - b[:, SWA_WINDOW:]).abs().max() > 1e-3, "window has no effect"
    assert t > SWA_WINDOW


def generate(outdir, names=None):
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(outdir, exist_ok=True)
    for name, cfg_fn, seed, dtype, t in MODELS:
        if names and name not in names:
            continue
        model = make_model(cfg_fn, seed, dtype)
        ids, labels = make_inputs(seed, t)
        if name.startswith("swa-"):
            check_window_applies(model, ids)
        ref = reference(model, ids, labels)
        mdir = os.path.join(outdir, name)
        save = make_model(cfg_fn, seed, dtype).to(dtype)
        save.save_pretrained(mdir, safe_serialization=True)
        save_file(ref, os.path.join(outdir, name + ".ref.safetensors"), metadata={"format": "pt"})
        # The checkpoint as read back must give the same model.
        back = AutoModelForCausalLM.from_pretrained(mdir, attn_implementation="eager",
                                                    dtype=torch.float32)
        for (n1, p1), (n2, p2) in zip(model.named_parameters(), back.named_parameters()):
            assert n1 == n2 and torch.equal(p1, p2), (name, n1)
        print("%s: loss %.6f, %d parameters" % (name, ref["loss"].item(),
                                                sum(p.numel() for p in model.parameters())))


if __name__ == "__main__":
    generate(sys.argv[1] if len(sys.argv) > 1 else OUT, sys.argv[2:])

#!/usr/bin/env python3
"""make parity: tk-convert's phi3 GGUF export and import against the gguf
package, llama.cpp and transformers, live.

Two small random Phi-3 models made by transformers (hidden 64, so that
every matrix row is a whole number of 32-value blocks):

  - phi4mini: Phi-4-mini's shape, partial_rotary_factor 0.75, tied
    embeddings, 4 heads on 2 key/value heads;
  - phi35: Phi-3.5's LongRoPE (original context 32 of 128, 8 long and short
    factors), untied.

Each gets the byte-level BPE tokenizer of tests/fixtures/convert/llama.gguf
and is exported with `tk-convert DIR -o X.gguf --outtype T` (f32, f16,
q8_0).  Then:

  - gguf.GGUFReader reads each file: the keys llama.cpp's converter
    (Phi3MiniModel in convert_hf_to_gguf.py) writes, with its values
    (rope.dimension_count int(partial_rotary_factor * n_embd) // n_head,
    rope.scaling.original_context_length, attention.sliding_window 0 for
    none, rope.scaling.attn_factor for LongRoPE), every tensor under its
    name (fused blk.N.attn_qkv and blk.N.ffn_up as transformers holds them,
    rope_factors_long/short.weight F32) with bytes equal to
    gguf.quants.quantize of the source weight;
  - llama.cpp (llama-cpp-python) loads the f32 and f16 exports and
    continues a prompt greedily: the ids equal tk-generate's on the source
    directory (n_ctx 32, the original context: llama.cpp picks LongRoPE's
    short factors by the context size, transformers and tk by the
    sequence's length, and both give the short ones there);
  - tk-convert imports the f32 export back: transformers loads that
    directory and gives the source model's logits on 40 tokens (past the
    original context: the long factors) to 1e-5.

Prints "PASS name" or "FAIL name: detail" per check.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import gguf
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
# check-convert.py's tensor comparison and llama.cpp run (importing it runs nothing)
_spec = importlib.util.spec_from_file_location("conv", os.path.join(HERE, "check-convert.py"))
conv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conv)
BIN = os.environ.get("TK_BIN", os.path.join(ROOT, "bin"))
BIN = BIN if os.path.isabs(BIN) else os.path.join(ROOT, BIN)
TK = os.path.join(BIN, "tk-convert")
FIX = os.path.join(ROOT, "tests", "fixtures", "convert")
TYPES = ("f32", "f16", "q8_0")
fails = 0


def check(ok, name, detail=""):
    global fails
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    fails += not ok


def config(name):
    kw = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2,
              pad_token_id=0)
    if name == "phi4mini":
        return transformers.Phi3Config(max_position_embeddings=64, partial_rotary_factor=0.75,
                                       tie_word_embeddings=True, **kw)
    return transformers.Phi3Config(
        max_position_embeddings=128, original_max_position_embeddings=32,
        tie_word_embeddings=False,
        rope_parameters=dict(rope_type="longrope", rope_theta=10000.0,
                             long_factor=[1.0, 1.1, 1.3, 1.7, 2.5, 4.0, 7.0, 12.0],
                             short_factor=[1.0, 1.0, 1.02, 1.05, 1.1, 1.2, 1.4, 1.8]), **kw)


def make_model(name, d):
    torch.manual_seed({"phi4mini": 1, "phi35": 2}[name])
    m = transformers.Phi3ForCausalLM(config(name)).eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.ndim == 1:
                p.copy_(torch.randn_like(p) * 0.1 + 1.0)
    m.save_pretrained(d)
    tdir = d + "-tok"
    subprocess.run([TK, "-q", os.path.join(FIX, "llama.gguf"), "-o", tdir], check=True)
    shutil.copy(os.path.join(tdir, "tokenizer.json"), d)
    return m


def expected(m):
    """llama.cpp name -> fp32 array, as Phi3MiniModel writes them."""
    sd = {k: v.detach().float().numpy() for k, v in m.state_dict().items()}
    c = m.config
    out = {"token_embd.weight": sd["model.embed_tokens.weight"],
           "output_norm.weight": sd["model.norm.weight"]}
    if not c.tie_word_embeddings:
        out["output.weight"] = sd["lm_head.weight"]
    names = {"input_layernorm": "attn_norm", "self_attn.qkv_proj": "attn_qkv",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for l in range(c.num_hidden_layers):
        for h, g in names.items():
            out[f"blk.{l}.{g}.weight"] = sd[f"model.layers.{l}.{h}.weight"]
    rp = c.rope_parameters
    if rp.get("rope_type") == "longrope":
        out["rope_factors_long.weight"] = np.array(rp["long_factor"], dtype=np.float32)
        out["rope_factors_short.weight"] = np.array(rp["short_factor"], dtype=np.float32)
    return out


def check_file(name, m, path, t, exp):
    import math
    r = gguf.GGUFReader(path)
    c = m.config
    rp = c.rope_parameters
    n_embd, n_head = c.hidden_size, c.num_attention_heads
    want = {"general.architecture": "phi3", "phi3.block_count": c.num_hidden_layers,
            "phi3.context_length": c.max_position_embeddings, "phi3.embedding_length": n_embd,
            "phi3.feed_forward_length": c.intermediate_size, "phi3.attention.head_count": n_head,
            "phi3.attention.head_count_kv": c.num_key_value_heads,
            "phi3.attention.layer_norm_rms_epsilon": np.float32(c.rms_norm_eps),
            "phi3.rope.freq_base": np.float32(rp["rope_theta"]),
            "phi3.rope.dimension_count":
                int(rp.get("partial_rotary_factor", 1.0) * n_embd) // n_head,
            "phi3.rope.scaling.original_context_length": c.original_max_position_embeddings,
            "phi3.attention.sliding_window": c.sliding_window or 0,
            "general.file_type": {"f32": 0, "f16": 1, "q8_0": 7}[t]}
    if rp.get("rope_type") == "longrope":
        scale = c.max_position_embeddings / c.original_max_position_embeddings
        want["phi3.rope.scaling.attn_factor"] = np.float32(
            math.sqrt(1 + math.log(scale) / math.log(c.original_max_position_embeddings))
            if scale > 1.0 else 1.0)
    bad = [f"{k}={conv.field(r, k)!r} (want {v!r})" for k, v in want.items()
           if conv.field(r, k) != v]
    check(not bad, f"{name} {t}: metadata as convert_hf_to_gguf.py's phi3", "; ".join(bad))
    got = {x.name: x for x in r.tensors}
    check(sorted(got) == sorted(exp), f"{name} {t}: tensor names",
          f"extra {sorted(set(got) - set(exp))} missing {sorted(set(exp) - set(got))}")
    bad = conv.tensor_mismatches(got, exp, t)
    check(not bad, f"{name} {t}: tensors equal gguf.quants.quantize of the source weights",
          "; ".join(bad[:4]))


def import_check(name, m, path, tmp):
    d = os.path.join(tmp, name + "-back")
    r = subprocess.run([TK, "-q", path, "-o", d], capture_output=True, text=True)
    check(r.returncode == 0, f"{name}: tk-convert imports its export", r.stderr.strip())
    if r.returncode:
        return
    back = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 97, (1, 40), generator=g)
    with torch.no_grad():
        diff = (back(ids).logits - m(ids).logits).abs().max().item()
    check(diff <= 1e-5, f"{name}: transformers on the import gives the source logits on 40 "
          f"tokens (max diff {diff:.3g})", f"max diff {diff:g}")


def main():
    if not os.path.exists(TK):
        print(f"FAIL {TK} not built")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("phi4mini", "phi35"):
            d = os.path.join(tmp, name)
            m = make_model(name, d)
            exp = expected(m)
            for t in TYPES:
                path = os.path.join(d, f"{name}-{t}.gguf")
                # general.name without "phi3": llama.cpp then sets attributes on
                # Phi-3's special tokens by name, which this tiny vocabulary lacks
                r = subprocess.run([TK, "-q", d, "-o", path, "--outtype", t, "--name", "tiny"],
                                   capture_output=True, text=True)
                check(r.returncode == 0, f"{name} {t}: tk-convert exports", r.stderr.strip())
                if r.returncode:
                    continue
                check_file(name, m, path, t, exp)
                if t in ("f32", "f16"):
                    conv.llama_cpp_check(name, d, path, t, n_ctx=32)
                if t == "f32":
                    import_check(name, m, path, tmp)
    return 1 if fails or conv.fails else 0


if __name__ == "__main__":
    sys.exit(main())

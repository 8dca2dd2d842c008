#!/usr/bin/env python3
"""make parity: tk-convert's GGUF export against the gguf package and
transformers, live.

For llama, qwen2 and gpt2 it builds a small random transformers model
(hidden 64, so that every matrix row is a whole number of 32-value blocks
and Q8_0/Q4_0 are really used), saves it with save_pretrained and a
byte-level BPE tokenizer.json (imported by tk-convert from the committed
tests/fixtures/convert/*.gguf files), and exports it with
`tk-convert DIR -o X.gguf --outtype T` for every T.  Then:

  - gguf.GGUFReader reads each file: the metadata keys llama.cpp needs with
    the config's values, every tensor under llama.cpp's name and shape, and
    its bytes equal to gguf.quants.quantize(W, T) of the expected fp32
    matrix W (the source weight, q/k rows permuted as convert_hf_to_gguf.py's
    LlamaModel.permute for llama, GPT-2's Conv1D transposed), with 1-D
    tensors and position_embd in F32 as the converter keeps them;
  - the tokenizer keys equal those of the GGUF file the tokenizer came from
    (tokens, token types, merges, pre, special ids);
  - transformers' from_pretrained(DIR, gguf_file=...) on the f32 export
    gives the source model's logits (max |diff| <= 1e-5), and on the q8_0
    export logits within 0.05 of them.

llama.cpp itself is not installed here: nothing runs the files in it.
Prints "PASS name" or "FAIL name: detail" per check.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as QT
import transformers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BIN = os.environ.get("TK_BIN", os.path.join(ROOT, "bin"))
TK = os.path.join(BIN, "tk-convert") if os.path.isabs(BIN) else os.path.join(ROOT, BIN, "tk-convert")
FIX = os.path.join(ROOT, "tests", "fixtures", "convert")
TYPES = {"f32": QT.F32, "f16": QT.F16, "bf16": QT.BF16, "q8_0": QT.Q8_0, "q4_0": QT.Q4_0}
fails = 0


def check(ok, name, detail=""):
    global fails
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    fails += not ok


def make_model(arch, d):
    torch.manual_seed({"llama": 1, "qwen2": 2, "gpt2": 3}[arch])
    if arch == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=97, n_embd=64, n_layer=2, n_head=4,
                                      # transformers' GGUF loader maps context_length to n_ctx,
                                      # not n_positions: only the default 1024 loads there
                                      n_positions=1024,
                                      bos_token_id=96, eos_token_id=96)
        m = transformers.GPT2LMHeadModel(cfg)
    else:
        kw = dict(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  bos_token_id=1, eos_token_id=2, tie_word_embeddings=arch == "qwen2")
        if arch == "llama":
            m = transformers.LlamaForCausalLM(transformers.LlamaConfig(**kw))
        else:
            m = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**kw))
    m.eval()
    with torch.no_grad():  # non-trivial norms and biases
        for n, p in m.named_parameters():
            if p.ndim == 1:
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "norm" in n or "ln_" in n else 0.0))
    m.save_pretrained(d)
    src = os.path.join(FIX, ("gpt2" if arch == "gpt2" else "llama") + ".gguf")
    tdir = d + "-tok"
    subprocess.run([TK, "-q", src, "-o", tdir], check=True)
    shutil.copy(os.path.join(tdir, "tokenizer.json"), d)
    return m, src


def permute(w, n_head):
    # convert_hf_to_gguf.py LlamaModel.permute
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def expected(arch, m):
    """llama.cpp name -> fp32 numpy array in GGUF row-major layout."""
    sd = {k: v.detach().float().numpy() for k, v in m.state_dict().items()}
    c = m.config
    out = {}
    if arch == "gpt2":
        out["token_embd.weight"] = sd["transformer.wte.weight"]
        out["position_embd.weight"] = sd["transformer.wpe.weight"]
        out["output_norm.weight"] = sd["transformer.ln_f.weight"]
        out["output_norm.bias"] = sd["transformer.ln_f.bias"]
        names = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
                 "ln_2": "ffn_norm", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
        for l in range(c.n_layer):
            for h, g in names.items():
                for s in ("weight", "bias"):
                    v = sd[f"transformer.h.{l}.{h}.{s}"]
                    out[f"blk.{l}.{g}.{s}"] = v.T.copy() if v.ndim == 2 else v
        return out
    out["token_embd.weight"] = sd["model.embed_tokens.weight"]
    out["output_norm.weight"] = sd["model.norm.weight"]
    if not c.tie_word_embeddings:
        out["output.weight"] = sd["lm_head.weight"]
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
             "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for l in range(c.num_hidden_layers):
        for h, g in names.items():
            for s in ("weight", "bias"):
                k = f"model.layers.{l}.{h}.{s}"
                if k not in sd:
                    continue
                v = sd[k]
                if arch == "llama" and g in ("attn_q", "attn_k"):
                    v = permute(v, c.num_attention_heads if g == "attn_q" else c.num_key_value_heads)
                out[f"blk.{l}.{g}.{s}"] = v
    return out


def field(r, k):
    f = r.get_field(k)
    return None if f is None else f.contents()


def check_file(arch, m, path, t, exp, src):
    r = gguf.GGUFReader(path)
    c = m.config
    a = arch
    want = {"general.architecture": arch, f"{a}.block_count": c.num_hidden_layers,
            f"{a}.embedding_length": c.hidden_size, f"{a}.attention.head_count": c.num_attention_heads,
            f"{a}.context_length": c.n_positions if arch == "gpt2" else c.max_position_embeddings,
            "general.file_type": {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2}[t]}
    if arch == "gpt2":
        want[f"{a}.feed_forward_length"] = 4 * c.n_embd
        want[f"{a}.attention.layer_norm_epsilon"] = np.float32(c.layer_norm_epsilon)
    else:
        want[f"{a}.feed_forward_length"] = c.intermediate_size
        want[f"{a}.attention.head_count_kv"] = c.num_key_value_heads
        want[f"{a}.attention.layer_norm_rms_epsilon"] = np.float32(c.rms_norm_eps)
        want[f"{a}.rope.freq_base"] = np.float32(c.rope_parameters["rope_theta"]
                                                 if getattr(c, "rope_parameters", None) else c.rope_theta)
        want[f"{a}.rope.dimension_count"] = c.hidden_size // c.num_attention_heads
    bad = [f"{k}={field(r, k)!r} (want {v!r})" for k, v in want.items() if field(r, k) != v]
    check(not bad, f"{arch} {t}: metadata", "; ".join(bad))
    # tokenizer keys as in the GGUF file the tokenizer came from
    o = gguf.GGUFReader(src)
    keys = ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
            "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id"]
    bad = [k for k in keys if field(r, k) != field(o, k)]
    check(not bad, f"{arch} {t}: tokenizer keys equal {os.path.basename(src)}'s", ", ".join(bad))
    # tensors
    got = {x.name: x for x in r.tensors}
    check(sorted(got) == sorted(exp), f"{arch} {t}: tensor names",
          f"extra {sorted(set(got) - set(exp))} missing {sorted(set(exp) - set(got))}")
    bad = []
    for n, w in exp.items():
        x = got.get(n)
        if x is None:
            continue
        keep32 = w.ndim == 1 or n == "position_embd.weight"
        qt = QT.F32 if keep32 else TYPES[t]
        if x.tensor_type != qt:
            bad.append(f"{n}: type {x.tensor_type.name}, want {qt.name}")
            continue
        if list(x.shape) != list(reversed(w.shape)):
            bad.append(f"{n}: shape {list(x.shape)}, want {list(reversed(w.shape))}")
            continue
        ref = gguf.quants.quantize(w.astype(np.float32), qt)
        if ref.tobytes() != bytes(np.asarray(x.data).tobytes()):
            bad.append(f"{n}: bytes differ from gguf.quants.quantize")
            continue
        deq = gguf.quants.dequantize(x.data, qt).reshape(w.shape)
        if t == "f32" and not np.array_equal(deq, w):
            bad.append(f"{n}: dequantized values differ")
    check(not bad, f"{arch} {t}: tensors equal gguf.quants.quantize of the source weights",
          "; ".join(bad[:4]))


def logits_check(arch, m, d, path, t, tol):
    ids = torch.tensor([[5, 17, 33, 2, 60, 71, 8, 90, 41, 12]])
    with torch.no_grad():
        ref = m(ids).logits
        g = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=os.path.basename(path),
                                                              dtype=torch.float32)
        g.eval()
        got = g(ids).logits
    diff = (ref - got).abs().max().item()
    check(diff <= tol, f"{arch} {t}: transformers' GGUF loader gives the source logits "
          f"(max diff {diff:.3g} <= {tol})", f"max diff {diff:g}")


def main():
    if not os.path.exists(TK):
        print(f"FAIL {TK} not built")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("llama", "qwen2", "gpt2"):
            d = os.path.join(tmp, arch)
            m, src = make_model(arch, d)
            exp = expected(arch, m)
            for t in TYPES:
                path = os.path.join(d, f"{arch}-{t}.gguf")
                r = subprocess.run([TK, "-q", d, "-o", path, "--outtype", t], capture_output=True,
                                   text=True)
                check(r.returncode == 0, f"{arch} {t}: tk-convert exports", r.stderr.strip())
                if r.returncode:
                    continue
                check_file(arch, m, path, t, exp, src)
                if t == "f32":
                    logits_check(arch, m, d, path, t, 1e-5)
                if t == "q8_0":
                    logits_check(arch, m, d, path, t, 0.05)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""make parity: tk-convert's GGUF export and import against the gguf
package, transformers and llama.cpp, live.

For llama, mistral (sliding_window 16 of 64 positions), qwen2 and gpt2 it
builds a small random transformers model
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
    export logits within 0.05 of them;
  - the Mistral's f32 export carries llama.attention.sliding_window, and
    tk-convert imports it back as model_type mistral with the window: the
    same weights, and transformers' logits on 40 tokens (past the window)
    equal the source's.

Import: tests/fixtures/convert/{llama,qwen2}.gguf (gen-convert-fixtures.py)
through `tk-convert X.gguf -o DIR`, against transformers' own GGUF loader
(from_pretrained(..., gguf_file=...)) on the same file: the config values,
every weight (bit for bit), generation_config's bos/eos/pad ids, the
tokenizer's ids (tokenizers on tk's tokenizer.json vs transformers'
tokenizer converted from the GGUF vocabulary) and the logits of the model
transformers loads from tk's directory.  gpt2.gguf is left out: that
loader maps context_length to n_ctx and then fails on any n_positions
other than 1024.

llama.cpp itself (llama-cpp-python) loads the f32 and f16 exports of the
llama, qwen2 and gpt2 models and continues a prompt greedily: the ids equal
tk-generate's on the source directory (FAIL lines without llama_cpp: it is pinned).
So does the f32 export of a Gemma-2 and a Gemma-3 shaped as llama.cpp
computes them (gemma_check), which also import back as the source.

SentencePiece-style tokenizers (byte-fallback BPE, exported as llama.cpp's
"llama" vocabulary with scores from the merge ranks): for the committed
llama2-style and tinyllama-style tokenizer.json fixtures and for Llama's
own 32000-token vocabulary (tests/fixtures/gguf/ggml-vocab-llama-spm.gguf,
turned into a tokenizer.json by transformers' GGUF converter), a tiny llama
with that tokenizer is exported with tk-convert; llama.cpp (vocab only)
then tokenizes every text of tests/fixtures/tokenizers/hard-text.jsonl
(special tokens parsed, BOS as the file says) to the ids the tokenizers
library gives for the source tokenizer.json, and so does the tokenizer.json
tk-convert imports back from the export.

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
    torch.manual_seed({"llama": 1, "qwen2": 2, "gpt2": 3, "mistral": 4}[arch])
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
        elif arch == "mistral":  # a window shorter than the context
            m = transformers.MistralForCausalLM(transformers.MistralConfig(sliding_window=16, **kw))
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
                if arch in ("llama", "mistral") and g in ("attn_q", "attn_k"):
                    v = permute(v, c.num_attention_heads if g == "attn_q" else c.num_key_value_heads)
                out[f"blk.{l}.{g}.{s}"] = v
    return out


def field(r, k):
    f = r.get_field(k)
    return None if f is None else f.contents()


def check_file(arch, m, path, t, exp, src):
    r = gguf.GGUFReader(path)
    c = m.config
    a = "llama" if arch == "mistral" else arch
    want = {"general.architecture": a, f"{a}.block_count": c.num_hidden_layers,
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
    if arch == "mistral":  # the gguf package's key (GGUFWriter.add_sliding_window)
        want[gguf.Keys.Attention.SLIDING_WINDOW.format(arch=a)] = c.sliding_window
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
    bad = tensor_mismatches(got, exp, t)
    for n, w in exp.items():
        x = got.get(n)
        if t == "f32" and x is not None and not bad and not np.array_equal(
                gguf.quants.dequantize(x.data, QT.F32).reshape(w.shape), w):
            bad.append(f"{n}: dequantized values differ")
    check(not bad, f"{arch} {t}: tensors equal gguf.quants.quantize of the source weights",
          "; ".join(bad[:4]))


def tensor_mismatches(got, exp, t):
    """What differs between the GGUF tensors got (name -> ReaderTensor) and
    gguf.quants.quantize of the fp32 arrays exp (name -> array) in outtype
    t (1-D tensors and position_embd in F32, as the converter keeps them):
    type, shape or bytes, one line each."""
    bad = []
    for n, w in exp.items():
        x = got.get(n)
        if x is None:
            continue
        keep32 = w.ndim == 1 or n == "position_embd.weight"
        qt = QT.F32 if keep32 else TYPES[t]
        if x.tensor_type != qt:
            bad.append(f"{n}: type {x.tensor_type.name}, want {qt.name}")
        elif list(x.shape) != list(reversed(w.shape)):
            bad.append(f"{n}: shape {list(x.shape)}, want {list(reversed(w.shape))}")
        elif (gguf.quants.quantize(w.astype(np.float32), qt).tobytes()
              != bytes(np.asarray(x.data).tobytes())):
            bad.append(f"{n}: bytes differ from gguf.quants.quantize")
    return bad


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


TEXTS = ["the thin winter: in, an! ther", "  there then\nthin 123 ok?", "x"]


def import_check(name, tmp):
    import json
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    src = os.path.join(FIX, name + ".gguf")
    d = os.path.join(tmp, name + "-import")
    r = subprocess.run([TK, "-q", src, "-o", d], capture_output=True, text=True)
    check(r.returncode == 0, f"import {name}.gguf: tk-convert", r.stderr.strip())
    if r.returncode:
        return
    ref = transformers.AutoModelForCausalLM.from_pretrained(FIX, gguf_file=name + ".gguf",
                                                            dtype=torch.float32)
    ref.eval()
    rc = ref.config.to_dict()
    mine = json.load(open(os.path.join(d, "config.json")))
    keys = ["model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
            "rms_norm_eps", "tie_word_embeddings", "bos_token_id", "eos_token_id",
            "pad_token_id"]
    # eps and theta are f32 in the file: transformers keeps the f32's exact value, tk
    # the shortest decimal that reads back as it
    same = lambda a, b: a == b or (isinstance(a, float) and isinstance(b, float)
                                   and np.float32(a) == np.float32(b))
    bad = [f"{k}: {mine.get(k)!r} vs {rc.get(k)!r}" for k in keys if not same(mine.get(k), rc.get(k))]
    theta = (rc.get("rope_parameters") or {}).get("rope_theta", rc.get("rope_theta"))
    if not same((mine.get("rope_parameters") or {}).get("rope_theta", mine.get("rope_theta")), theta):
        bad.append("rope_theta")
    check(not bad, f"import {name}.gguf: config.json as transformers' GGUF loader's",
          "; ".join(bad))
    gc = json.load(open(os.path.join(d, "generation_config.json")))
    g = ref.generation_config
    bad = [f"{k}: {gc.get(k)!r} vs {getattr(g, k)!r}"
           for k in ("bos_token_id", "eos_token_id", "pad_token_id") if gc.get(k) != getattr(g, k)]
    check(not bad, f"import {name}.gguf: generation_config.json ids as transformers'",
          "; ".join(bad))
    sd = {k: v.detach().float().numpy() for k, v in ref.state_dict().items()}
    got = load_file(os.path.join(d, "model.safetensors"))
    if rc.get("tie_word_embeddings"):
        sd.pop("lm_head.weight", None)
    bad = [k for k in sorted(set(sd) | set(got))
           if k not in sd or k not in got or not np.array_equal(sd[k], got[k].astype(np.float32))]
    check(not bad, f"import {name}.gguf: {len(got)} weights equal transformers' bit for bit",
          ", ".join(bad[:6]))
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    htok = transformers.AutoTokenizer.from_pretrained(FIX, gguf_file=name + ".gguf")
    bad = []
    for t in TEXTS:
        a, b = tok.encode(t).ids, htok(t)["input_ids"]
        if a != b:
            bad.append(f"{t!r}: {a} vs {b}")
    check(not bad, f"import {name}.gguf: tokenizer ids as transformers' GGUF tokenizer",
          "; ".join(bad))
    tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
    check(tc.get("chat_template") == htok.chat_template,
          f"import {name}.gguf: chat_template as transformers' GGUF tokenizer's "
          f"({'none' if htok.chat_template is None else len(htok.chat_template)} chars)",
          f"{tc.get('chat_template')!r} vs {htok.chat_template!r}")
    ids = torch.tensor([[5, 17, 33, 2, 60, 71, 8, 90, 41, 12]])
    m = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    m.eval()
    with torch.no_grad():
        diff = (m(ids).logits - ref(ids).logits).abs().max().item()
    check(diff == 0, f"import {name}.gguf: logits equal transformers' GGUF model's "
          f"(max diff {diff:.3g})", f"max diff {diff:g}")


def llama_cpp_check(arch, d, path, t, n_ctx=64):
    """llama.cpp itself (llama-cpp-python) runs the export with a context of
    n_ctx: greedy ids equal tk-generate's on the source directory."""
    try:
        from llama_cpp import Llama
    except ImportError as e:  # a pinned requirement: its absence is a fault
        print(f"FAIL {arch} {t}: llama.cpp: llama_cpp cannot be imported ({e}); "
              "it is in tests/parity/requirements.txt (rm .venv/.ok; make parity)")
        return
    llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=1, verbose=False)
    ids = [5, 17, 33, 60, 71, 8]
    want = []
    for tok in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
        want.append(tok)
        if len(want) == 12:
            break
    del llm
    tkg = os.path.join(BIN if os.path.isabs(BIN) else os.path.join(ROOT, BIN), "tk-generate")
    r = subprocess.run([tkg, "-q", "--model", d, "--ids", "--max-new-tokens", "12",
                        "--prompt-ids", " ".join(map(str, ids))], capture_output=True, text=True)
    got = [int(x) for x in r.stdout.split()]
    check(got == want, f"{arch} {t}: llama.cpp's greedy continuation equals tk-generate's",
          f"llama.cpp {want} tk {got} {r.stderr.strip()}")


def gemma_check(tmp):
    """Gemma-2 and Gemma-3 shaped as llama.cpp computes them
    (query_pre_attn_scalar = head_dim, its layouts of sliding layers, a
    window of 8 shorter than the 18 tokens): tk-convert's f32 export runs in
    llama.cpp with tk-generate's greedy ids, and imports back as the source
    weights (the norms, stored as 1 + w, to an fp32 rounding)."""
    for arch, seed in (("gemma2", 5), ("gemma3", 6)):
        torch.manual_seed(seed)
        kw = dict(vocab_size=97, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
                  max_position_embeddings=64, sliding_window=8, bos_token_id=1, eos_token_id=2,
                  pad_token_id=0)
        if arch == "gemma2":
            cfg = transformers.Gemma2Config(num_hidden_layers=2, attn_logit_softcapping=5.0,
                                            final_logit_softcapping=3.0, **kw)
        else:
            cfg = transformers.Gemma3TextConfig(num_hidden_layers=6, **kw)
        m = transformers.AutoModelForCausalLM.from_config(cfg).eval()
        with torch.no_grad():
            for n, p in m.named_parameters():
                if p.ndim == 1:
                    p.copy_(torch.randn_like(p) * 0.1)
        d = os.path.join(tmp, arch)
        m.save_pretrained(d)
        tdir = d + "-tok"
        subprocess.run([TK, "-q", os.path.join(FIX, "llama.gguf"), "-o", tdir], check=True)
        shutil.copy(os.path.join(tdir, "tokenizer.json"), d)
        path = os.path.join(d, arch + "-f32.gguf")
        r = subprocess.run([TK, "-q", d, "-o", path, "--outtype", "f32"], capture_output=True,
                           text=True)
        check(r.returncode == 0, f"{arch} f32: tk-convert exports", r.stderr.strip())
        if r.returncode:
            continue
        llama_cpp_check(arch, d, path, "f32")
        back = os.path.join(tmp, arch + "-back")
        subprocess.run([TK, "-q", path, "-o", back], check=True)
        b = transformers.AutoModelForCausalLM.from_pretrained(back, dtype=torch.float32)
        worst = 0.0
        sd = b.state_dict()
        for k, v in m.state_dict().items():
            tol = 2.0 ** -23 * (1 + v.abs()) if "norm" in k else 0 * v
            worst = max(worst, float(((sd[k] - v).abs() - tol).max()))
        check(worst <= 0, f"{arch} f32: imported back as the source weights",
              f"worst excess {worst:g}")


def mistral_back(m, path, tmp):
    """tk-convert reads the window back: the import is the source Mistral."""
    import json
    from safetensors.numpy import load_file
    d = os.path.join(tmp, "mistral-back")
    r = subprocess.run([TK, "-q", path, "-o", d], capture_output=True, text=True)
    check(r.returncode == 0, "mistral f32: import of the export", r.stderr.strip())
    if r.returncode:
        return
    c = json.load(open(os.path.join(d, "config.json")))
    check(c.get("model_type") == "mistral" and c.get("sliding_window") == m.config.sliding_window,
          "mistral f32: imported as model_type mistral with its sliding_window",
          f"{c.get('model_type')} {c.get('sliding_window')}")
    b = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    sd = {k: v.detach().float().numpy() for k, v in m.state_dict().items()}
    got = load_file(os.path.join(d, "model.safetensors"))
    check(sorted(sd) == sorted(got) and all(np.array_equal(sd[k], got[k]) for k in sd),
          "mistral f32: imported weights equal the source's", "")
    ids = torch.randint(0, 97, (1, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # 40 tokens: the window of 16 matters
        diff = (m(ids).logits - b(ids).logits).abs().max().item()
    check(diff == 0, f"mistral f32: transformers runs the import with the source's windowed "
          f"logits (max diff {diff:.3g})", f"max diff {diff:g}")


def spm_check(tmp):
    """SentencePiece-style vocabularies: llama.cpp tokenizes tk's export as
    the source tokenizer.json does."""
    import json
    from tokenizers import Tokenizer
    texts = [json.loads(l) for l in open(os.path.join(ROOT, "tests", "fixtures", "tokenizers",
                                                      "hard-text.jsonl"))]
    texts = [t["text"] if isinstance(t, dict) else t for t in texts]
    try:
        from llama_cpp import Llama
    except ImportError as e:  # a pinned requirement: its absence is a fault
        Llama = None
        print(f"FAIL spm: llama.cpp: llama_cpp cannot be imported ({e}); "
              "it is in tests/parity/requirements.txt (rm .venv/.ok; make parity)")
    srcs = {}
    for name in ("llama2-style", "tinyllama-style"):
        srcs[name] = os.path.join(ROOT, "tests", "fixtures", "tokenizers", name + ".json")
    # Llama's own vocabulary, through transformers' GGUF tokenizer converter
    tok = transformers.AutoTokenizer.from_pretrained(
        os.path.join(ROOT, "tests", "fixtures", "gguf"), gguf_file="ggml-vocab-llama-spm.gguf")
    real = os.path.join(tmp, "llama-spm-tok")
    tok.save_pretrained(real)
    srcs["llama-spm"] = os.path.join(real, "tokenizer.json")
    for name, tj in srcs.items():
        ref = Tokenizer.from_file(tj)
        V = ref.get_vocab_size(with_added_tokens=True)
        d = os.path.join(tmp, "spm-" + name)
        torch.manual_seed(5)
        cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=1, num_attention_heads=2,
                                       max_position_embeddings=64, bos_token_id=1, eos_token_id=2)
        transformers.LlamaForCausalLM(cfg).save_pretrained(d)
        shutil.copy(tj, os.path.join(d, "tokenizer.json"))
        path = os.path.join(d, "x.gguf")
        r = subprocess.run([TK, "-q", d, "-o", path], capture_output=True, text=True)
        check(r.returncode == 0, f"spm {name}: tk-convert exports a SentencePiece-style vocabulary",
              r.stderr.strip())
        if r.returncode:
            continue
        want = [ref.encode(t).ids for t in texts]
        # A Metaspace pre-tokenizer with prepend_scheme "first" (transformers'
        # newer conversions) prepends U+2581 only at the very start, and not
        # to a text that already starts with a space; SentencePiece, and so
        # llama.cpp's add_space_prefix and the Prepend normalizer of tk's
        # import, prepend it always, also after a special token.  Texts of
        # those two kinds may differ there, and only those.
        pt = json.load(open(tj)).get("pre_tokenizer") or {}
        first = pt.get("type") == "Metaspace" and pt.get("prepend_scheme") == "first"
        specials = [a["content"] for a in json.load(open(tj)).get("added_tokens", [])
                    if a.get("special")]
        def explained(t):
            return first and (t[:1] in (" ", "\u2581") or any(sp in t for sp in specials))
        back = os.path.join(d, "back")
        r = subprocess.run([TK, "-q", path, "-o", back], capture_output=True, text=True)
        got = Tokenizer.from_file(os.path.join(back, "tokenizer.json")) if not r.returncode else None
        diff = [t for t, w in zip(texts, want) if not got or got.encode(t).ids != w]
        bad = [t for t in diff if not explained(t)]
        check(not bad, f"spm {name}: tk-convert imports the export back to the same ids "
              f"({len(texts)} texts, {len(diff) - len(bad)} differing only as SentencePiece's "
              f"always-prepended space does)",
              f"{len(bad)} differ, first {bad[:1]!r} {r.stderr.strip()}")
        if Llama is None:
            continue
        llm = Llama(model_path=path, vocab_only=True, verbose=False)
        bad, nexp = [], 0
        for t, w in zip(texts, want):
            lc = llm.tokenize(t.encode(), add_bos=True, special=True)
            if lc != w and explained(t):
                nexp += 1
            elif lc != w:
                bad.append((t, w[:12], lc[:12]))
        if name == "llama-spm":  # the export's scores against Llama's own
            orig = Llama(model_path=os.path.join(ROOT, "tests", "fixtures", "gguf",
                                                 "ggml-vocab-llama-spm.gguf"),
                         vocab_only=True, verbose=False)
            same = [t for t in texts if orig.tokenize(t.encode(), add_bos=True, special=True) ==
                    llm.tokenize(t.encode(), add_bos=True, special=True)]
            del orig
            check(len(same) == len(texts), f"spm {name}: llama.cpp tokenizes every text with "
                  f"the export's scores as with Llama's own file ({len(texts)} texts)",
                  f"{len(texts) - len(same)} differ")
        del llm
        check(not bad, f"spm {name}: llama.cpp tokenizes the export as tokenizers does the "
              f"source ({len(texts)} texts, {nexp} differing only as SentencePiece's "
              f"always-prepended space does)", f"{len(bad)} differ, first {bad[:1]!r}")


def main():
    if not os.path.exists(TK):
        print(f"FAIL {TK} not built")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("llama", "qwen2"):
            import_check(name, tmp)
        spm_check(tmp)
        gemma_check(tmp)
        for arch in ("llama", "mistral", "qwen2", "gpt2"):
            # not "mistral": transformers' GGUF loader takes a llama file whose
            # general.name holds "mistral" for model_type mistral, which gguf 0.19's
            # tensor map does not know
            d = os.path.join(tmp, "swa" if arch == "mistral" else arch)
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
                if arch == "mistral" and t == "f32":
                    mistral_back(m, path, tmp)
                # (not the Mistral: tk-generate refuses a window shorter than the context)
                if t in ("f32", "f16") and arch != "mistral":
                    llama_cpp_check(arch, d, path, t)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

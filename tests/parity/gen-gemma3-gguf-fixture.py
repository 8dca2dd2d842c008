#!/usr/bin/env python3
"""Generates tests/fixtures/convert/gemma3.gguf and gemma3.config.json: a tiny
Gemma 3 GGUF with the metadata of the real Gemma 3 270M Q4_K_M file
(llama.cpp's GGUF-my-repo; tests/parity/check-gemma3-270m.py), for
tests/cli/tk-convert/gemma3.sh.

The keys are those of the real file, with its values where they are not
sizes: general.*, gemma3.* (no key for the local rope base, the sliding
pattern or query_pre_attn_scalar: llama.cpp hard-codes them), rms epsilon
1e-6 as float32, rope base 1e6, sliding window 512, and the tokenizer.ggml.*
keys of a SentencePiece ("llama") vocabulary with the same special ids
(pad 0, eos 1, bos 2, unk 3).  Sizes are tiny: 6 layers (5 local : 1 global,
as the pattern makes them), hidden 32, 2 heads of 16, 1 KV head, ffn 64,
vocabulary 300 (4 specials, 256 byte tokens, 40 pieces).  token_embd is Q8_0
(as in the real file), the rest F32; every norm is stored + 1, as
convert_hf_to_gguf.py's Gemma3Model writes them, with values w + 1 where
w = (i % 7 - 3) / 8 is exact in fp32, so that the import must give back w.

gemma3.config.json is transformers' config of the file
(AutoConfig.from_pretrained(dir, gguf_file=...).to_dict(), without the
keys naming the file and the version), the reference the test compares
tk-convert's config.json with; gemma3.ids holds, one line per text of
TEXTS, the ids of transformers' tokenizer of the file
(AutoTokenizer.from_pretrained(dir, gguf_file=...), BOS included).

Run from anywhere (deterministic; numpy, gguf, transformers):
    .venv/bin/python tests/parity/gen-gemma3-gguf-fixture.py [OUTDIR]
"""
import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "convert")
L, H, NH, HD, FF = 6, 32, 2, 16, 64
TEXTS = ["the thin winter", "an inn: ther!", "  he and  she\tsaid", "héllo wörld ☃",
         "<bos>the<eos>"]
NORMS = ("attn_norm", "attn_q_norm", "attn_k_norm", "post_attention_norm", "ffn_norm",
         "post_ffw_norm")


def vocab():
    toks = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
    pieces = ["▁", "▁the", "▁a", "t", "h", "e", "▁th", "in", "er", "▁w", "o", "n", "▁in", "r",
              "s", "▁thin", "▁winter", "i", "a", "w", "▁an", "▁inn", ":", "!", "▁he", "he", "l",
              "d", "▁and", "an", "nd", "▁s", "re", "on", "at", "en", "ed", "▁o", "is", "it"]
    toks += pieces
    scores = [0.0] * 260 + [-float(i) for i in range(len(pieces))]
    types = [3, 3, 3, 2] + [6] * 256 + [1] * len(pieces)
    return toks, scores, types


def norm(n):
    w = np.array([(i % 7 - 3) / 8 for i in range(n)], dtype=np.float32)
    return w + 1


def main():
    rng = np.random.default_rng(270)
    path = os.path.join(OUT, "gemma3.gguf")
    w = GGUFWriter(path, "gemma3")
    w.add_type("model")
    w.add_name("Gemma 3 270m")
    w.add_basename("gemma-3")
    w.add_size_label("270M")
    w.add_license("gemma")
    w.add_tags(["gemma3", "gemma", "google", "text-generation"])
    w.add_context_length(32768)
    w.add_embedding_length(H)
    w.add_block_count(L)
    w.add_feed_forward_length(FF)
    w.add_head_count(NH)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_key_length(HD)
    w.add_value_length(HD)
    w.add_rope_freq_base(1e6)
    w.add_sliding_window(512)
    w.add_head_count_kv(1)
    toks, scores, types = vocab()
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_sep_token(False)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    w.add_quantization_version(2)
    w.add_file_type(15)

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)

    emb = mat(len(toks), H)
    w.add_tensor("token_embd.weight", quantize(emb, GGMLQuantizationType.Q8_0),
                 raw_shape=quantize(emb, GGMLQuantizationType.Q8_0).shape,
                 raw_dtype=GGMLQuantizationType.Q8_0)
    for i in range(L):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_q.weight", mat(NH * HD, H))
        w.add_tensor(b + "attn_k.weight", mat(HD, H))
        w.add_tensor(b + "attn_v.weight", mat(HD, H))
        w.add_tensor(b + "attn_output.weight", mat(H, NH * HD))
        w.add_tensor(b + "ffn_gate.weight", mat(FF, H))
        w.add_tensor(b + "ffn_up.weight", mat(FF, H))
        w.add_tensor(b + "ffn_down.weight", mat(H, FF))
        for n in NORMS:
            w.add_tensor(b + n + ".weight", norm(HD if n in ("attn_q_norm", "attn_k_norm")
                                                 else H))
    w.add_tensor("output_norm.weight", norm(H))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers import AutoConfig
    c = AutoConfig.from_pretrained(OUT, gguf_file="gemma3.gguf").to_dict()
    for k in ("_name_or_path", "_model_name_or_path", "transformers_version"):
        c.pop(k, None)
    with open(os.path.join(OUT, "gemma3.config.json"), "w") as f:
        json.dump(c, f, indent=1, sort_keys=True)
        f.write("\n")
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(OUT, gguf_file="gemma3.gguf")
    with open(os.path.join(OUT, "gemma3.ids"), "w") as f:
        for s in TEXTS:
            f.write(" ".join(map(str, t(s).input_ids)) + "\n")


if __name__ == "__main__":
    main()

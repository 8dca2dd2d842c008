#!/usr/bin/env python3
"""Generates tests/fixtures/gguf/quants.gguf and quants.f32 with the gguf
Python package (the reference for dequantization).

Run from anywhere (deterministic; needs gguf and numpy):
    /tmp/refvenv/bin/python tests/parity/gen-gguf-fixtures.py [OUTDIR [SEED]]

(with OUTDIR, only quants.* are written there; make parity uses other seeds)

quants.gguf  one tensor per type tk dequantizes (F32 F16 BF16 Q8_0 Q4_0 Q4_1
             Q5_0 Q5_1 Q4_K Q5_K Q6_K), 3 rows of 512 values, written by
             gguf.GGUFWriter.  F16/BF16/Q8_0/Q4_*/Q5_* quantize random
             normal data with gguf.quants.quantize; the gguf package cannot
             quantize K-quants, so their blocks are random bytes with finite
             fp16 scales.
quants.f32   for each tensor in file order, gguf.quants.dequantize of its
             bytes as little-endian float32: what tk must reproduce bit for
             bit.

It also writes the seeds of tests/fuzz/corpus/gguf/: a small byte-level
vocabulary (llama-bpe pre-tokenizer, merges), a small SentencePiece one
(scores, token types, byte tokens), a few small tensors, and the same as
GGUF v2.
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def k_blocks(rng, qtype, nblocks):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(nblocks, size), dtype=np.uint8)
    scale = lambda n: rng.uniform(-0.05, 0.05, size=(nblocks, n)).astype(np.float16).view(np.uint8)
    if qtype in (T.Q4_K, T.Q5_K):  # d, dmin first
        raw[:, 0:4] = scale(2).reshape(nblocks, 4)
    elif qtype == T.Q6_K:  # d last
        raw[:, size - 2:] = scale(1).reshape(nblocks, 2)
    return raw


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures", "gguf")
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 20240406
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, cols = 3, 512
    w = gguf.GGUFWriter(os.path.join(out, "quants.gguf"), "tk-test")
    expect = []
    for qtype in (T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1,
                  T.Q4_K, T.Q5_K, T.Q6_K):
        data = rng.standard_normal((rows, cols)).astype(np.float32)
        data[0, :8] = [0, -0.0, 1e-8, -1e-8, 65504, -3.5, 2.0 ** -20, 7.25]
        if qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            raw = k_blocks(rng, qtype, rows * cols // block).reshape(rows, -1)
        elif qtype == T.F32:
            raw = data
        else:
            raw = quantize(data, qtype)
        w.add_tensor(f"t.{qtype.name.lower()}", raw, raw_dtype=qtype)
        deq = dequantize(raw, qtype).astype(np.float32)
        assert deq.shape == (rows, cols), (qtype, deq.shape)
        expect.append(deq.astype("<f4").tobytes())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(out, "quants.f32"), "wb") as f:
        f.write(b"".join(expect))


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def seeds():
    out = os.path.join(ROOT, "tests", "fuzz", "corpus", "gguf")
    os.makedirs(out, exist_ok=True)
    alpha = byte_chars()
    sp = alpha[ord(" ")]
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), (sp, "w"), ("o", "r"),
              (sp + "w", "or"), ("l", "d"), (sp + "wor", "ld")]
    toks = alpha + ["".join(m) for m in merges] + ["<|begin_of_text|>", "<|end_of_text|>"]
    w = gguf.GGUFWriter(os.path.join(out, "vocab-bpe.gguf"), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(toks)
    w.add_token_types([1] * (len(toks) - 2) + [3, 3])
    w.add_token_merges([a + " " + b for a, b in merges])
    w.add_bos_token_id(len(toks) - 2)
    w.add_eos_token_id(len(toks) - 1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()

    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + \
        ["\u2581", "a", "b", "c", "ab", "bc", "\u2581ab", "\u2581c", "\u2581abc"]
    scores = [0.0] * 259 + [-1.0, -2.0, -2.5, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0]
    types = [2, 3, 3] + [6] * 256 + [1] * 9
    w = gguf.GGUFWriter(os.path.join(out, "vocab-spm.gguf"), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()

    rng = np.random.default_rng(7)
    path = os.path.join(out, "tensors.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_tensor("f32", rng.standard_normal((2, 4)).astype(np.float32))
    w.add_tensor("f16", rng.standard_normal((4,)).astype(np.float16))
    w.add_tensor("q8_0", quantize(rng.standard_normal((1, 32)).astype(np.float32), T.Q8_0),
                 raw_dtype=T.Q8_0)
    w.add_tensor("q4_k", k_blocks(rng, T.Q4_K, 1), raw_dtype=T.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(path, "rb") as f:
        b = bytearray(f.read())
    b[4] = 2  # v2 has the same layout
    with open(os.path.join(out, "tensors-v2.gguf"), "wb") as f:
        f.write(b)


if __name__ == "__main__":
    main()
    if len(sys.argv) == 1:
        seeds()

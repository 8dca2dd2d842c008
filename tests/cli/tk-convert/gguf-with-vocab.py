#!/usr/bin/env python3
"""gguf-with-vocab.py MODEL.gguf VOCAB.gguf OUT.gguf - for convert.sh: OUT is
MODEL (a GGUF v3 gpt2 model, F16/F32 tensors) with the tokenizer.* keys of
VOCAB (llama.cpp's vocabulary-only ggml-vocab-gpt-2.gguf: 50257 tokens), its
token_embd and output weights grown to 50257 rows (the new rows zero).
Standard library only; written from the GGUF spec, not with tk's code."""
import struct, sys
def parse(path):
    d = open(path, "rb").read()
    nt, nkv = struct.unpack_from("<QQ", d, 8)
    p = 24
    def skip_str(p):
        return p + 8 + struct.unpack_from("<Q", d, p)[0]
    size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    kv = {}
    for _ in range(nkv):
        q = skip_str(p)
        key = d[p + 8:q].decode()
        t = struct.unpack_from("<I", d, q)[0]
        r = q + 4
        if t == 8:
            r = skip_str(r)
        elif t == 9:
            at, n = struct.unpack_from("<IQ", d, r)
            r += 12
            for _ in range(n):
                r = skip_str(r) if at == 8 else r + size[at]
        else:
            r += size[t]
        kv[key] = d[p:r]
        p = r
    ts = []
    for _ in range(nt):
        q = skip_str(p)
        name = d[p + 8:q].decode()
        nd = struct.unpack_from("<I", d, q)[0]
        dims = list(struct.unpack_from("<%dQ" % nd, d, q + 4))
        t, off = struct.unpack_from("<IQ", d, q + 4 + 8 * nd)
        ts.append([name, dims, t, off])
        p = q + 16 + 8 * nd
    base = (p + 31) // 32 * 32
    return d, kv, ts, base
model, vocab, out = sys.argv[1:4]
d, kv, ts, base = parse(model)
_, vkv, _, _ = parse(vocab)
V = 50257
for k in kv:
    if k.startswith("tokenizer."):
        kv[k] = vkv[k]
infos, data = b"", b""
for name, dims, t, off in ts:
    esz = 2 if t == 1 else 4
    n = 1
    for x in dims:
        n *= x
    blob = d[base + off:base + off + n * esz]
    if name in ("token_embd.weight", "output.weight"):
        blob += bytes((V - dims[1]) * dims[0] * esz)  # rows past the fixture's 97: zero
        dims = [dims[0], V]
    data += bytes(-len(data) % 32)
    nm = name.encode()
    infos += struct.pack("<Q", len(nm)) + nm + struct.pack("<I", len(dims))
    infos += struct.pack("<%dQ" % len(dims), *dims) + struct.pack("<IQ", t, len(data))
    data += blob
head = b"GGUF" + struct.pack("<IQQ", 3, len(ts), len(kv)) + b"".join(kv.values()) + infos
open(out, "wb").write(head + bytes(-len(head) % 32) + data)

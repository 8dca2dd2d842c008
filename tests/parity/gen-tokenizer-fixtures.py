#!/usr/bin/env python3
"""Generates tests/fixtures/tokenizers/: small BPE tokenizers trained with
Hugging Face `tokenizers` on Debian's fortunes, in the styles of the models
tk supports, and what `tokenizers` makes of tests/fixtures/tokenizers/
hard-text.jsonl with each of them (and with the real GPT-2 tokenizer).

Run from anywhere (deterministic; needs `tokenizers`, the fortunes package):
    /tmp/refvenv/bin/python tests/parity/gen-tokenizer-fixtures.py

Writes, for each tokenizer NAME:
    NAME.json     the tokenizer, as tokenizer.save() wrote it (merges as
                  "a b" strings where noted, as pairs otherwise)
    NAME.expect   one line per line of hard-text.jsonl, four tab-separated
                  fields: ids with add_special_tokens=True, ids with False
                  (space-separated), decode(ids, skip_special_tokens=False)
                  and decode(ids, skip_special_tokens=True) as JSON strings
and utf8-repair.txt: lines "HEX<TAB>HEX", bytes and what Python's
bytes.decode("utf-8", errors="replace") made of them.
"""
import json
import os
import random
import sys

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
FORTUNES = "/usr/share/games/fortunes"

GPT2_RX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
            r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def corpus(limit=4000):
    """A fixed subset of the fortunes: entries of the first files, sorted."""
    texts = []
    for name in sorted(os.listdir(FORTUNES)):
        path = os.path.join(FORTUNES, name)
        if "." in name or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for entry in f.read().split("\n%\n"):
                entry = entry.strip("\n")
                if entry:
                    texts.append(entry)
    return texts[:limit]


def train(tok, texts, vocab_size, special, **kw):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                  show_progress=False, **kw)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def gpt2_style(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return train(tok, texts, 1000, ["<|endoftext|>"],
                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def llama3_style(texts):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    special = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
               "<|start_header_id|>", "<|end_header_id|>"]
    train(tok, texts, 1200, special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tok


def qwen2_style(texts):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_RX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return train(tok, texts, 1000, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def spm_vocab(tok, specials):
    """Llama-2's layout: specials, the 256 byte tokens, then the rest."""
    model = json.loads(tok.to_str())["model"]
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return vocab, merges


def llama2_style(texts):
    norm = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.normalizer = norm
    train(base, texts, 1200, ["<unk>", "<s>", "</s>"], limit_alphabet=120)
    vocab, merges = spm_vocab(base, ["<unk>", "<s>", "</s>"])
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = norm
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    return tok


def tinyllama_style(texts):
    pre = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.pre_tokenizer = pre
    train(base, texts, 1200, ["<unk>", "<s>", "</s>"], limit_alphabet=100)
    vocab, merges = spm_vocab(base, ["<unk>", "<s>", "</s>"])
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="\u2581", prepend_scheme="first"),
                                     decoders.ByteFallback(), decoders.Fuse()])
    return tok


def spm_split_style(texts):
    """Metaspace that splits and always prepends, after NFKC + Lowercase."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always",
                                                 split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    train(tok, texts, 900, ["<unk>", "<pad>", "<eos>"], limit_alphabet=60)
    tok.post_processor = processors.RobertaProcessing(("<eos>", 2), ("<pad>", 1))
    return tok


def added_style(texts):
    """Byte-level with a normalizer and added tokens of every flavour."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    train(tok, texts, 800, ["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_special_tokens([
        AddedToken("[MASK]", lstrip=True, rstrip=True, normalized=False, special=True),
        AddedToken("</tool>", lstrip=True, normalized=False, special=True),
        AddedToken("<|user|>", normalized=False, special=True),
        AddedToken("<|assistant|>", normalized=False, special=True),
    ])
    tok.add_tokens([
        AddedToken("<tool>", rstrip=True, normalized=False),
        AddedToken("<sep>", single_word=True, normalized=True),
        AddedToken("World", normalized=True),
        AddedToken("worldwide", single_word=True, normalized=False),
        AddedToken("<s>", lstrip=True, rstrip=True, normalized=True),
    ])
    tok.post_processor = processors.BertProcessing(("<|endoftext|>", 0), ("<|user|>", tok.token_to_id("<|user|>")))
    return tok


def misc_style(texts):
    """Character-level BPE with unk and the Whitespace family of
    pre-tokenizers; no decoder."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFD(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip(),
    ])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split("-", behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"[aeiou]{2,}"), behavior="merged_with_next"),
        pre_tokenizers.Punctuation(behavior="contiguous"),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.Split("q", behavior="removed"),
        pre_tokenizers.Split(Regex(r"[A-Z]+"), behavior="merged_with_previous", invert=True),
        pre_tokenizers.Whitespace(),
    ])
    train(tok, texts, 900, ["[UNK]", "[CLS]", "[SEP]"], limit_alphabet=70)
    tok.post_processor = processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1))
    return tok


def affix_style(texts):
    """continuing_subword_prefix and end_of_word_suffix.  The trainer is not
    deterministic with either (tokenizers 0.23.3), so the merges are a fixed
    list of English letter pairs instead of trained ones."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"[UNK]": 0}

    def add(t):
        if t not in vocab:
            vocab[t] = len(vocab)
    for c in letters:
        for t in (c, "##" + c, c + "</w>", "##" + c + "</w>"):
            add(t)
    merges = []

    def merge(a, b):
        for pa, pb in ((a, "##" + b), (a, "##" + b + "</w>"), ("##" + a, "##" + b),
                       ("##" + a, "##" + b + "</w>")):
            merges.append((pa, pb))
            add(pa + pb[2:])
    for bigram in ["th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es",
                   "or", "te", "of", "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng",
                   "se", "ha", "as", "ou", "io", "le", "ve", "co", "me", "de", "hi", "ri"]:
        merge(bigram[0], bigram[1])
    for a, b in [("th", "e"), ("in", "g"), ("an", "d"), ("er", "s"), ("ti", "on")]:
        merge(a, b)
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="[UNK]", fuse_unk=True,
                               continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["[UNK]"])
    return tok


STYLES = [  # name, builder, merges as strings?
    ("gpt2-style", gpt2_style, True),
    ("llama3-style", llama3_style, False),
    ("qwen2-style", qwen2_style, False),
    ("llama2-style", llama2_style, True),
    ("tinyllama-style", tinyllama_style, False),
    ("spm-split", spm_split_style, True),
    ("added-tokens", added_style, False),
    ("misc", misc_style, False),
    ("affix", affix_style, True),
]


def hard_text():
    with open(os.path.join(OUT, "hard-text.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def expectations(tok, texts):
    lines = []
    for s in texts:
        a = tok.encode(s, add_special_tokens=True).ids
        b = tok.encode(s, add_special_tokens=False).ids
        lines.append("\t".join([" ".join(map(str, a)), " ".join(map(str, b)),
                                json.dumps(tok.decode(a, skip_special_tokens=False)),
                                json.dumps(tok.decode(a, skip_special_tokens=True))]))
    return "\n".join(lines) + "\n"


def save(tok, name, as_strings):
    path = os.path.join(OUT, name + ".json")
    tok.save(path, pretty=False)
    if as_strings:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        d["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                                for m in d["model"]["merges"]]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(d, f, ensure_ascii=False, separators=(",", ":"))
    return Tokenizer.from_file(path)


def utf8_cases():
    fixed = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xc2", b"\xc2\x41", b"\xe0\x80\x80",
             b"\xe0\x9f\xbf", b"\xe0\xa0", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xef\xbf",
             b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80", b"\xf4\x90\x80\x80",
             b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfe\xff", b"\xff",
             b"a\xe2\x82b", b"\xe2\x82\xac\xe2\x82", b"ok \xf0\x9f\x98 done", b"\xf0\x9f\x98\x80",
             b"caf\xc3\xa9", b"\xc3\xa9\xc3", b"x\x00y", b""]
    rng = random.Random(20240520)
    alphabet = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
                0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff]
    for _ in range(300):
        fixed.append(bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 8))))
    return "".join("%s\t%s\n" % (b.hex(), b.decode("utf-8", errors="replace").encode().hex())
                   for b in fixed)


def main():
    texts = corpus()
    hard = hard_text()
    os.makedirs(OUT, exist_ok=True)
    for name, build, as_strings in STYLES:
        tok = save(build(texts), name, as_strings)
        with open(os.path.join(OUT, name + ".expect"), "w", encoding="utf-8") as f:
            f.write(expectations(tok, hard))
    gpt2 = Tokenizer.from_file(os.path.join(ROOT, "tests", "fixtures", "gpt2", "tokenizer.json"))
    with open(os.path.join(OUT, "gpt2.expect"), "w", encoding="utf-8") as f:
        f.write(expectations(gpt2, hard))
    with open(os.path.join(OUT, "utf8-repair.txt"), "w") as f:
        f.write(utf8_cases())
    print("tokenizers %s: wrote %d tokenizers to %s" % (tokenizers.__version__, len(STYLES), OUT),
          file=sys.stderr)


if __name__ == "__main__":
    main()

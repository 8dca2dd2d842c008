#!/usr/bin/env python3
"""Expected outputs of the tk-tokenize CLI tests, from the Hugging Face reference.

Reads the inputs in tests/fixtures/input/ with Python's own csv and json
modules, encodes them with the `tokenizers` library and the GPT-2 fixture
tokenizer.json, and writes tests/cli/tk-tokenize/<case>.stdout for the cases
below.  What tk-tokenize does is spelled out here in Python:

  - each document: tokenizer.encode(text).ids (add_special_tokens=True),
    then EOS (<|endoftext|>) appended unless the ids already end with it;
  - prompt/response: the prompt encoded alone gives the number of leading
    tokens with mask 0 (TRL's prompt-completion convention);
  - --ids: ids space-separated, one line per document; --show-mask adds a
    line of 0/1 after each;
  - --stats: documents, tokens, bytes (UTF-8 text), bytes_per_token, masked;
  - --decode --prompts: the prompt of each document (of a block: each one
    that starts after the block's first token and whose prompt ends inside
    it), written here with "|" for the NUL of -z.

Run:  /path/to/venv/bin/python tests/parity/gen-tokenize-cli-fixtures.py
(needs tokenizers==0.23.3 from tests/parity/requirements.txt).
"""
import csv
import json
import os
import sys

from tokenizers import Tokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(ROOT, "tests", "cli", "tk-tokenize")
tok = Tokenizer.from_file(os.path.join(FIX, "gpt2", "tokenizer.json"))
EOS = tok.token_to_id("<|endoftext|>")


def inp(name):
    return os.path.join(FIX, "input", name)


def read_csv(name, delimiter=","):
    # utf-8-sig drops the byte order mark, newline="" keeps \r\n inside quotes
    with open(inp(name), encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def read_json_array(name):
    # what datasets.load_dataset("json") makes of a file holding one array of
    # objects (Alpaca's data.json); json.load when datasets is not installed
    try:
        import datasets
        ds = datasets.load_dataset("json", data_files=inp(name), split="train")
        rows = [dict(r) for r in ds]
    except ImportError:
        with open(inp(name), encoding="utf-8") as f:
            rows = json.load(f)
    return [{k: json_text(v) for k, v in r.items()} for r in rows]


def json_text(v):
    return v if isinstance(v, str) else json.dumps(v)


def read_jsonl(name):
    with open(inp(name), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [{k: json_text(v) for k, v in r.items()} for r in rows]


def read_text(name, errors="strict"):
    with open(inp(name), "rb") as f:
        return f.read().decode("utf-8", errors=errors)


def split_lines(text):
    out = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if line:
            out.append(line)
    return out


def encode(text, prompt=None, add_eos=True):
    ids = tok.encode(text).ids
    if add_eos and (not ids or ids[-1] != EOS):
        ids.append(EOS)
    n_prompt = 0
    if prompt is not None:
        n_prompt = min(len(tok.encode(prompt).ids), len(ids))
    return ids, n_prompt


def ids_lines(docs, show_mask=False, add_eos=True):
    out = []
    for text, prompt in docs:
        ids, n_prompt = encode(text, prompt, add_eos)
        out.append(" ".join(map(str, ids)))
        if show_mask:
            out.append(" ".join(["0"] * n_prompt + ["1"] * (len(ids) - n_prompt)))
    return "".join(line + "\n" for line in out)


def stats(docs):
    n = toks = nbytes = masked = 0
    for text, prompt in docs:
        ids, n_prompt = encode(text, prompt)
        n += 1
        toks += len(ids)
        nbytes += len(text.encode("utf-8"))
        masked += n_prompt
    return ("documents: %d\ntokens: %d\nbytes: %d\nbytes_per_token: %.4f\n"
            "masked_tokens: %d\n" % (n, toks, nbytes, nbytes / toks, masked))


def decoded(docs, skip_special):
    out = ""
    for text, prompt in docs:
        ids, _ = encode(text, prompt)
        out += tok.decode(ids, skip_special_tokens=skip_special) + "\n"
    return out


def block_prompts(docs, seq_len):
    """The prompts --decode --prompts prints for blocks that tk-pack (no
    --shuffle, no eval split) cuts from docs: group_texts' stream cut every
    seq_len tokens, the remainder dropped; a document's prompt is printed
    when the document starts inside a block after its first token and the
    prompt ends before the block does."""
    stream_len, out = 0, []
    starts = []
    for text, prompt in docs:
        ids, n_prompt = encode(text, prompt)
        starts.append((stream_len, n_prompt, prompt))
        stream_len += len(ids)
    n_blocks = stream_len // seq_len
    for o, n_prompt, prompt in starts:
        b, pos = divmod(o, seq_len)
        if b < n_blocks and pos > 0 and n_prompt and o + n_prompt < (b + 1) * seq_len:
            out.append(prompt)
    return out


def plain(texts):
    return [(t, None) for t in texts]


quotes_csv = read_csv("quotes.csv")
quotes_jsonl = read_jsonl("quotes.jsonl")
qa_csv = read_csv("qa.csv")
qa_jsonl = read_jsonl("qa.jsonl")
split_jsonl = read_jsonl("split.jsonl")
lines = plain(split_lines(read_text("lines.txt")))
TMPL = "Quote: {quote}\nAuthor: {author}"
alpaca = read_json_array("alpaca.json")
semicolon = read_csv("semicolon.csv", delimiter=";")
qa_tsv = read_csv("qa.tsv", delimiter="\t")
# --prompt-template 'Instruction: {instruction}\nInput: {input}\nResponse:\n'
PROMPT = "Instruction: {instruction}\nInput: {input}\nResponse:\n"

cases = {
    "csv-ids": ids_lines(plain(r["quote"] for r in quotes_csv)),
    "csv-author-ids": ids_lines(plain(r["author"] for r in quotes_csv)),
    "csv-template-ids": ids_lines(plain(TMPL.format(**r) for r in quotes_csv)),
    "jsonl-ids": ids_lines(plain(r["quote"] for r in quotes_jsonl)),
    "jsonl-template-ids": ids_lines(plain("{quote} ({author}, {year})".format(**r)
                                          for r in quotes_jsonl)),
    "text-ids": ids_lines(plain([read_text("doc.txt")])),
    "text-split-lines-ids": ids_lines(lines),
    "stdin-ids": ids_lines(lines),
    "no-add-eos-ids": ids_lines(lines, add_eos=False),
    "invalid-utf8-replace": ids_lines(plain(split_lines(read_text("badutf8.txt", "replace")))),
    "prompt-mask": ids_lines([(r["question"] + r["answer"], r["question"]) for r in qa_csv],
                             show_mask=True),
    "prompt-mask-shard": ids_lines([(r["question"] + r["answer"], r["question"])
                                    for r in qa_csv], show_mask=True),
    "jsonl-prompt-completion": ids_lines([(r["prompt"] + r["completion"], r["prompt"])
                                          for r in qa_jsonl], show_mask=True),
    "prompt-mismatch": ids_lines([(r["prompt"] + r["completion"], r["prompt"])
                                  for r in split_jsonl], show_mask=True),
    "stats": stats(lines) + stats([(r["question"] + r["answer"], r["question"])
                                   for r in qa_csv]),
    "stats-shard": stats(lines),
    "decode": decoded(lines, skip_special=False),
    "multi-file-ids": ids_lines(plain(r["quote"] for r in quotes_csv + quotes_jsonl)),
    "json-array-ids": ids_lines(plain(r["output"] for r in alpaca)),
    "json-array-prompt-template": ids_lines([(PROMPT.format(**r) + r["output"], PROMPT.format(**r))
                                             for r in alpaca], show_mask=True),
    "csv-delimiter": ids_lines([(r["instruction"] + r["output"], r["instruction"])
                                for r in semicolon], show_mask=True),
    "decode-prompts": "".join(PROMPT.format(**r) + "|" for r in alpaca),
    "decode-prompts-blocks": "".join(p + "|" for p in block_prompts(
        [(PROMPT.format(**r) + r["output"], PROMPT.format(**r)) for r in alpaca], 32)),
    "tsv-template-ids": ids_lines(plain("{instruction} -> {output}".format(**r) for r in qa_tsv)),
}

os.makedirs(OUT, exist_ok=True)
for name, text in cases.items():
    with open(os.path.join(OUT, name + ".stdout"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
print("wrote %d expectation files to %s" % (len(cases), os.path.relpath(OUT, ROOT)),
      file=sys.stderr)

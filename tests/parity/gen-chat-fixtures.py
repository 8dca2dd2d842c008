#!/usr/bin/env python3
"""Multi-turn chat renderings for tests/fixtures/generate/chat-msgs.json.

For the three chat-template fixture models that gen-generate-fixtures.py
made (tests/fixtures/generate/{chatml,llama2,llama3}), renders a few
conversations with transformers' apply_chat_template(add_generation_prompt=
True, tokenize=False) and writes the messages, the rendered text and its
token ids (encoded without special tokens, as generation does), so that
tk's renderer (tk_chat_render_msgs) and tk-generate's JSONL "messages"
input can be checked without Python.

Run with the repository's reference venv:

    .venv/bin/python tests/parity/gen-chat-fixtures.py
"""
import json
import os

import transformers
from transformers import AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
GEN = os.path.join(ROOT, "tests", "fixtures", "generate")

CONVERSATIONS = [
    [{"role": "user", "content": "Hi there"}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Name a colour"},
     {"role": "assistant", "content": " Blue. "},
     {"role": "user", "content": "  And another?"}],
    [{"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": "4"},
     {"role": "user", "content": "Times three?\n"}],
]


def main():
    out = {"transformers": transformers.__version__, "cases": []}
    for name in ("chatml", "llama2", "llama3"):
        tok = AutoTokenizer.from_pretrained(os.path.join(GEN, name))
        for msgs in CONVERSATIONS:
            text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            out["cases"].append({"model": name, "messages": msgs, "rendered": text,
                                 "ids": ids})
    with open(os.path.join(GEN, "chat-msgs.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()

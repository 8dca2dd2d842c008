#!/usr/bin/env python3
"""TRL's packed conversations for tests/fixtures/pack-chat.

Builds TRL's SFTTrainer on the tiny ChatML fixture model
(tests/fixtures/generate/chatml) with packing=True and max_length=SEQ on a
few "messages" conversations, and writes the packed train_dataset it
prepared: input_ids and labels (-100 = not in the loss), with and without
assistant_only_loss, for both packing strategies:

- "wrapped": the conversations concatenated and cut every SEQ tokens, the
  stream tk-pack makes (tk drops the last partial block, TRL keeps it);
- "bfd" (TRL's default): best-fit-decreasing bins of whole conversations,
  with seq_lengths, from which TRL's padding-free collator restarts the
  position ids per conversation.  tk-pack has no such mode; the rows are
  kept to document the difference (man/tk-pack.1).

TRL adds no EOS to conversational data: each conversation ends as its
template ends it ("<|im_end|>\\n").  tests/cli/tk-pack/chat-trl.sh checks
that tk-tokenize | tk-pack gives the "wrapped" blocks exactly.

Run with the repository's reference venv (trl 1.16):

    /tmp/venv/bin/python tests/parity/gen-pack-chat-fixture.py
"""
import json
import os
import tempfile

import datasets
import trl
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.join(ROOT, "tests", "fixtures", "generate", "chatml")
OUT = os.path.join(ROOT, "tests", "fixtures", "pack-chat")
SEQ = 64

CONVERSATIONS = [
    [{"role": "user", "content": "Hi there"},
     {"role": "assistant", "content": "Hello! How can I help?"}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}],
    [{"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Another?"},
     {"role": "assistant", "content": "Green, like grass."}],
    [{"role": "user", "content": "Say yes"},
     {"role": "assistant", "content": "yes"}],
]


# The fixture's ChatML template with {% generation %} around each assistant
# turn's "\n" + content + "<|im_end|>\n" (as TRL's Qwen2.5 training
# template): the same text, so the mask tk-tokenize --assistant-only-loss
# finds with its ChatML training variant (gen-chat-fixtures.py).
CHATML_TRAIN = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] }}"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{{ '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endgeneration %}"
    "{% else %}{{ '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def packed(strategy, assistant_only):
    tok = AutoTokenizer.from_pretrained(MODEL)
    if assistant_only:
        tok.chat_template = CHATML_TRAIN
    model = AutoModelForCausalLM.from_pretrained(MODEL)
    ds = datasets.Dataset.from_list([{"messages": m} for m in CONVERSATIONS])
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(output_dir=tmp, packing=True, packing_strategy=strategy,
                         max_length=SEQ, assistant_only_loss=assistant_only,
                         report_to=[], use_cpu=True, bf16=False)
        tr = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        rows = []
        for r in tr.train_dataset:
            row = {"input_ids": list(r["input_ids"]), "labels": list(r["labels"])}
            if "seq_lengths" in r:
                row["seq_lengths"] = list(r["seq_lengths"])
            rows.append(row)
        return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "conversations.jsonl"), "w") as f:
        for m in CONVERSATIONS:
            f.write(json.dumps({"messages": m}) + "\n")
    out = {"trl": trl.__version__, "seq_len": SEQ}
    for strategy in ("wrapped", "bfd"):
        for ao in (False, True):
            out[f"{strategy}{'-assistant-only' if ao else ''}"] = packed(strategy, ao)
    with open(os.path.join(OUT, "trl-packed.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    # The "wrapped" rows as tk-tokenize --ids --show-mask prints blocks:
    # a line of ids, then a line of 0/1 (1 = in the loss, TRL's label != -100)
    for key in ("wrapped", "wrapped-assistant-only"):
        with open(os.path.join(OUT, key + ".txt"), "w") as f:
            for r in out[key]:
                f.write(" ".join(map(str, r["input_ids"])) + "\n")
                f.write(" ".join("0" if x == -100 else "1" for x in r["labels"]) + "\n")


if __name__ == "__main__":
    main()

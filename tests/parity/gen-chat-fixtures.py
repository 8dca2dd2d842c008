#!/usr/bin/env python3
"""Multi-turn chat renderings for tests/fixtures/generate/chat-msgs.json.

For the three chat-template fixture models that gen-generate-fixtures.py
made (tests/fixtures/generate/{chatml,llama2,llama3}), renders a few
conversations with transformers' apply_chat_template(add_generation_prompt=
True, tokenize=False) and writes the messages, the rendered text and its
token ids (encoded without special tokens, as generation does), so that
tk's renderer (tk_chat_render_msgs) and tk-generate's JSONL "messages"
input can be checked without Python.

For training ("train" in each case) the conversation is rendered as TRL's
SFTTrainer tokenizes a "messages" example: apply_chat_template(messages,
tokenize=True, return_dict=True, return_assistant_tokens_mask=True) with
a training variant of the template that renders the same text and marks
each assistant turn with {% generation %}, where TRL's own training
templates put the markers (ChatML as its Qwen2.5 template: "\n" + content +
"<|im_end|>\n" after the role; Llama 3 as its Llama 3 template: the trimmed
content and <|eot_id|>; Llama 2, for which TRL has none: " " + content +
" " + eos).  The ids and assistant_masks are what tk-tokenize must give.

For conversations that end with an assistant turn, "pair" holds TRL's
conversational prompt-completion form of the same example (prompt: the
messages before the last, completion: the last) with the ids and
completion_mask SFTTrainer makes of it: the prompt rendered with the
generation prompt, the whole without, the mask 0 up to where their ids
diverge.

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
    [{"role": "system", "content": "You answer in verse."},
     {"role": "user", "content": "Describe the sea"},
     {"role": "assistant", "content": "Grey waves roll\nunder a low sky."}],
]


CHATML_TRAIN = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] }}"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{{ '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endgeneration %}"
    "{% else %}{{ '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_TRAIN = (
    "{% for message in messages %}{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")
LLAMA2_TRAIN = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{% generation %}"
    "{{ ' ' + content.strip() + ' ' + eos_token }}{% endgeneration %}"
    "{% endif %}{% endfor %}")
TRAIN = {"chatml": CHATML_TRAIN, "llama2": LLAMA2_TRAIN, "llama3": LLAMA3_TRAIN}


def main():
    out = {"transformers": transformers.__version__, "cases": []}
    for name in ("chatml", "llama2", "llama3"):
        tok = AutoTokenizer.from_pretrained(os.path.join(GEN, name))
        for msgs in CONVERSATIONS:
            text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            plain = tok.apply_chat_template(msgs, tokenize=False)
            train = tok.apply_chat_template(msgs, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True,
                                            chat_template=TRAIN[name])
            assert tok.apply_chat_template(msgs, tokenize=False, chat_template=TRAIN[name]) == plain
            case = {"model": name, "messages": msgs, "rendered": text, "ids": ids,
                    "train": {"rendered": plain, "ids": train["input_ids"],
                              "assistant_masks": train["assistant_masks"]}}
            if msgs[-1]["role"] == "assistant":
                # TRL's conversational prompt-completion example: the prompt
                # rendered with the generation prompt, the whole without; the
                # completion starts where their ids diverge
                prompt, completion = msgs[:-1], msgs[-1:]
                p_ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                return_dict=True)["input_ids"]
                pc_ids = tok.apply_chat_template(prompt + completion, tokenize=True,
                                                 return_dict=True)["input_ids"]
                k = 0
                while k < min(len(p_ids), len(pc_ids)) and p_ids[k] == pc_ids[k]:
                    k += 1
                case["pair"] = {"prompt": prompt, "completion": completion, "ids": pc_ids,
                                "completion_mask": [0] * k + [1] * (len(pc_ids) - k)}
            out["cases"].append(case)
    with open(os.path.join(GEN, "chat-msgs.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Greedy continuations by transformers' generate() for tests/fixtures/generate.

1. Loads the fixture models (tests/fixtures/models/{gpt2,llama,qwen2}) in fp32
   with eager attention and writes tests/fixtures/generate/greedy.json: for
   each model and prompt (token ids; the fixture vocabulary has 97 tokens and
   no tokenizer) the ids generate(do_sample=False) returns after the prompt,
   with and without a repetition penalty.
2. Makes three tiny random models with a tokenizer and a chat template,
   tests/fixtures/generate/{chatml,llama2,llama3}/ (the tokenizers of
   tests/fixtures/tokenizers/{qwen2,llama2,llama3}-style.json, a Qwen2 or Llama
   model of that vocabulary, F16, and a tokenizer_config.json with a chat
   template of that family written here), and writes
   tests/fixtures/generate/text.json: for text prompts, plain and through
   apply_chat_template, the rendered chat text, the prompt ids, the ids and
   text generate() gives, and the per-token log-probabilities of
   compute_transition_scores(normalize_logits=True).

Run with the repository's reference venv:

    .venv/bin/python tests/parity/gen-generate-fixtures.py [families]

("families": only greedy-families.json, the models of FAMILY_MODELS.)
"""
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaConfig,
                          PreTrainedTokenizerFast, Qwen2Config)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "generate", "greedy.json")

PROMPTS = [[5], [10, 20, 30, 40], [1, 50, 7, 7, 88, 3, 61, 12, 90, 44, 17]]
LONG_PROMPT = [(7 * i + 3) % 97 for i in range(40)]
CASES = [{"max_new_tokens": 16, "repetition_penalty": 1.0},
         {"max_new_tokens": 16, "repetition_penalty": 1.3}]


# Chat templates of the three families tk recognises, written for these
# fixtures in the shape the model hubs use.
CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}"
          "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
          "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
          " + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
          "{% endif %}")
LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
          "{% set system_message = messages[0]['content'] %}{% else %}"
          "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
          "{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}"
          "{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}"
          "{% else %}{% set content = message['content'] %}{% endif %}"
          "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
          "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}"
          "{% endif %}{% endfor %}")
TEXT_MODELS = [
    # name, tokenizer fixture, architecture, bos, eos, template
    ("chatml", "qwen2-style", "qwen2", None, "<|im_end|>", CHATML),
    ("llama2", "llama2-style", "llama", "<s>", "</s>", LLAMA2),
    ("llama3", "llama3-style", "llama", "<|begin_of_text|>", "<|eot_id|>", LLAMA3),
]
TEXT_PROMPTS = ["Hello world", "The quick brown fox jumps over", "  spaced  out  "]
SYSTEM = "Be brief."


def make_text_model(name, tok_name, arch, bos, eos, template):
    d = os.path.join(ROOT, "tests", "fixtures", "generate", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    shutil.copy(os.path.join(ROOT, "tests", "fixtures", "tokenizers", tok_name + ".json"),
                os.path.join(d, "tokenizer.json"))
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"),
                                  bos_token=bos, eos_token=eos)
    tok.chat_template = template
    tok.save_pretrained(d)
    os.remove(os.path.join(d, "tokenizer.json"))
    shutil.copy(os.path.join(ROOT, "tests", "fixtures", "tokenizers", tok_name + ".json"),
                os.path.join(d, "tokenizer.json"))
    # transformers may write the template beside the config instead of in it
    jinja = os.path.join(d, "chat_template.jinja")
    cfg_path = os.path.join(d, "tokenizer_config.json")
    if os.path.exists(jinja):
        with open(cfg_path) as f:
            tc = json.load(f)
        with open(jinja) as f:
            tc["chat_template"] = f.read()
        with open(cfg_path, "w") as f:
            json.dump(tc, f, indent=1)
        os.remove(jinja)
    V = tok.backend_tokenizer.get_vocab_size()
    kw = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=V, max_position_embeddings=128,
              initializer_range=0.2, eos_token_id=tok.convert_tokens_to_ids(eos),
              bos_token_id=tok.convert_tokens_to_ids(bos) if bos else None)
    cfg = Qwen2Config(**kw, tie_word_embeddings=True) if arch == "qwen2" else \
        LlamaConfig(**kw, tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_config(cfg)
    model.half().save_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    return d, tok, model


def text_cases():
    torch.manual_seed(0)
    cases = []
    for name, tok_name, arch, bos, eos, template in TEXT_MODELS:
        d, _, model = make_text_model(name, tok_name, arch, bos, eos, template)
        tok = AutoTokenizer.from_pretrained(d)
        for text in TEXT_PROMPTS:
            for chat, system in ((False, None), (True, None), (True, SYSTEM)):
                if chat:
                    msgs = ([{"role": "system", "content": system}] if system else []) + \
                        [{"role": "user", "content": text}]
                    rendered = tok.apply_chat_template(msgs, add_generation_prompt=True,
                                                       tokenize=False)
                    ids = tok(rendered, add_special_tokens=False)["input_ids"]
                else:
                    rendered = None
                    ids = tok(text)["input_ids"]
                for rep in (1.0, 1.3):
                    t = torch.tensor([ids])
                    with torch.no_grad():
                        g = model.generate(t, attention_mask=torch.ones_like(t), do_sample=False,
                                           max_new_tokens=12, repetition_penalty=rep,
                                           output_scores=True, return_dict_in_generate=True)
                    lp = model.compute_transition_scores(g.sequences, g.scores,
                                                         normalize_logits=True)
                    out = g.sequences[0, len(ids):].tolist()
                    cases.append({"model": name, "prompt": text, "chat": chat, "system": system,
                                  "rendered": rendered, "prompt_ids": ids,
                                  "repetition_penalty": rep, "max_new_tokens": 12,
                                  "output": out, "logprobs": lp[0].tolist(),
                                  "text": tok.decode(out, skip_special_tokens=True)})
    return cases


# The newer fixture models (tests/fixtures/models): Qwen3, SmolLM3, Phi-3,
# the rotary scalings and Gemma-2/3 (whose sliding layers' windows of 5 and 4
# the cache must keep to), with 40 new tokens after an 11-token prompt, so that decoding
# with the KV cache goes past the original context of 32 (for dynamic NTK,
# past max_position_embeddings: its table changes at every step, and the
# cached keys keep the tables they were rotated with).
FAMILY_MODELS = ["qwen3", "smollm3", "rope-llama3", "rope-linear", "rope-yarn", "rope-longrope",
                 "rope-dynamic", "phi3", "phi3-partial", "phi3-longrope", "gemma2", "gemma3"]
FAMILY_OUT = os.path.join(os.path.dirname(OUT), "greedy-families.json")


def family_cases():
    out = {"transformers": transformers.__version__, "torch": torch.__version__, "cases": []}
    for name in FAMILY_MODELS:
        for prompt in (PROMPTS[0], PROMPTS[2]):
            model = AutoModelForCausalLM.from_pretrained(
                os.path.join(MODELS, name), dtype=torch.float32, attn_implementation="eager")
            model.eval()
            ids = torch.tensor([prompt])
            with torch.no_grad():
                g = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                   max_new_tokens=40)
            out["cases"].append({"model": name, "prompt": prompt, "max_new_tokens": 40,
                                 "output": g[0, len(prompt):].tolist()})
    # dynamic NTK from a prompt already past max_position_embeddings (32)
    model = AutoModelForCausalLM.from_pretrained(
        os.path.join(MODELS, "rope-dynamic"), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ids = torch.tensor([LONG_PROMPT])
    with torch.no_grad():
        g = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                           max_new_tokens=8)
    out["cases"].append({"model": "rope-dynamic", "prompt": LONG_PROMPT, "max_new_tokens": 8,
                         "output": g[0, len(LONG_PROMPT):].tolist()})
    with open(FAMILY_OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def main():
    torch.manual_seed(0)
    family_cases()
    if sys.argv[1:] == ["families"]:
        return
    out = {"transformers": transformers.__version__, "torch": torch.__version__, "cases": []}
    for name in ("gpt2", "llama", "qwen2"):
        model = AutoModelForCausalLM.from_pretrained(
            os.path.join(MODELS, name), dtype=torch.float32, attn_implementation="eager")
        model.eval()
        for prompt in PROMPTS:
            for c in CASES:
                ids = torch.tensor([prompt])
                with torch.no_grad():
                    g = model.generate(ids, attention_mask=torch.ones_like(ids),
                                       do_sample=False, **c)
                out["cases"].append({"model": name, "prompt": prompt, **c,
                                     "output": g[0, len(prompt):].tolist()})
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    text = {"transformers": transformers.__version__, "torch": torch.__version__,
            "cases": text_cases()}
    with open(os.path.join(os.path.dirname(OUT), "text.json"), "w") as f:
        json.dump(text, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()

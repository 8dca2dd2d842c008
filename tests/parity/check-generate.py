#!/usr/bin/env python3
"""make parity: tk-generate against transformers' generate, live, on models and
prompts no fixture has.

For each seed: a random tiny GPT-2, Llama and Qwen2 (shapes drawn from the
seed; fp32; no tokenizer), random token-id prompts of random lengths, greedy
generate() with and without a repetition penalty, and tk-generate --json on
the same prompt: the same ids, and log-probabilities equal to
compute_transition_scores(normalize_logits=True) within 1e-4.  Then one run of
--prompt-file with text prompts through the chatml fixture model at
--batch-size 3 against generate() on each prompt alone.

Prints "PASS name" or "FAIL name: detail" lines.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, GPT2Config, LlamaConfig,
                          Qwen2Config)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("TK_ROOT") or os.path.normpath(os.path.join(HERE, "..", ".."))
fails = 0


def report(ok, name, detail=""):
    global fails
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, detail)), flush=True)
    fails += 0 if ok else 1


def config(arch, rng):
    heads = rng.choice([2, 4])
    kv = heads if arch == "gpt2" else rng.choice([1, heads // 2 or 1, heads])
    hd = rng.choice([8, 16])
    V = rng.randint(60, 300)
    if arch == "gpt2":
        return GPT2Config(n_embd=heads * hd, n_layer=rng.randint(1, 3), n_head=heads,
                          vocab_size=V, n_positions=96, initializer_range=0.2,
                          bos_token_id=None, eos_token_id=None)
    kw = dict(hidden_size=heads * hd, intermediate_size=rng.choice([32, 64, 80]),
              num_hidden_layers=rng.randint(1, 3), num_attention_heads=heads,
              num_key_value_heads=kv, vocab_size=V, max_position_embeddings=96,
              initializer_range=0.2, bos_token_id=None, eos_token_id=None,
              rope_theta=rng.choice([10000.0, 500000.0]))
    if arch == "qwen2":
        return Qwen2Config(**kw, tie_word_embeddings=rng.random() < 0.5)
    return LlamaConfig(**kw, tie_word_embeddings=rng.random() < 0.5)


def tk_json(args):
    r = subprocess.run(["tk-generate", "--json"] + args, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr.strip())
    return [json.loads(line) for line in r.stdout.splitlines()]


def compare(name, tk, ids, lps):
    if tk["token_ids"] != ids:
        report(False, name, "ids %s, transformers %s" % (tk["token_ids"], ids))
        return
    err = max((abs(a - b) for a, b in zip(tk["logprobs"], lps)), default=0.0)
    report(err <= 1e-4, name, "log-probabilities differ by %g" % err)


def hf_greedy(model, ids, **kw):
    t = torch.tensor([ids])
    with torch.no_grad():
        g = model.generate(t, attention_mask=torch.ones_like(t), do_sample=False,
                           output_scores=True, return_dict_in_generate=True, **kw)
    lp = model.compute_transition_scores(g.sequences, g.scores, normalize_logits=True)
    return g.sequences[0, len(ids):].tolist(), lp[0].tolist()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(3):
            for arch in ("gpt2", "llama", "qwen2"):
                rng = random.Random(1000 * seed + len(arch))
                torch.manual_seed(seed)
                d = os.path.join(tmp, "%s-%d" % (arch, seed))
                cfg = config(arch, rng)
                AutoModelForCausalLM.from_config(cfg).save_pretrained(d)
                model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                             attn_implementation="eager")
                model.eval()
                for k in range(2):
                    prompt = [rng.randrange(cfg.vocab_size) for _ in range(rng.randint(1, 40))]
                    rep = (1.0, 1.2)[k]
                    ids, lps = hf_greedy(model, prompt, max_new_tokens=20, repetition_penalty=rep)
                    name = "%s seed %d prompt %d (%d tokens, penalty %g)" % (arch, seed, k,
                                                                          len(prompt), rep)
                    try:
                        tk = tk_json(["--model", d, "--prompt-ids", " ".join(map(str, prompt)),
                                      "--max-new-tokens", "20", "--repetition-penalty", str(rep)])
                        compare(name, tk[0], ids, lps)
                    except RuntimeError as e:
                        report(False, name, str(e))
        d = os.path.join(ROOT, "tests", "fixtures", "generate", "chatml")
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                     attn_implementation="eager")
        prompts = ["A fox", "Tea, with lemon and honey, please", "Numbers: 1 2 3 4 5"]
        pf = os.path.join(tmp, "p.txt")
        with open(pf, "w") as f:
            f.write("\n".join(prompts) + "\n")
        try:
            tk = tk_json(["--model", d, "--prompt-file", pf, "--batch-size", "3",
                          "--max-new-tokens", "15"])
            for p, t in zip(prompts, tk):
                ids, lps = hf_greedy(model, tok(p)["input_ids"], max_new_tokens=15)
                compare("chatml batch of 3: %r" % p, t, ids, lps)
                text = tok.decode(ids, skip_special_tokens=True)
                report(t["text"] == text, "chatml text %r" % p, "%r, want %r" % (t["text"], text))
        except RuntimeError as e:
            report(False, "chatml batch", str(e))
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()

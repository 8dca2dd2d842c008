#!/usr/bin/env python3
"""make parity: a saved token embedding tied to the lm head, against peft, live.

On a tiny tied Llama (transformers' save_pretrained after
torch.manual_seed(0)), with modules_to_save=["embed_tokens"]:

1. tk-train --ensure-weight-tying trains 3 steps; peft loads the adapter
   (PeftModel.from_pretrained): its logits must equal those of tk-merge's
   merge loaded in transformers (one embedding for the input and the head,
   as peft's ensure_weight_tying=True).  The same for GPT-2's wte (the
   fixture model of tests/fixtures/train).
2. peft makes an adapter with ensure_weight_tying=True (the embedding's
   copy moved off the base by noise): tk-merge's merge must give peft's
   logits.
3. The same with ensure_weight_tying=False (peft keeps the head on the
   original weights): tk-merge refuses it (exit 1), naming the setting.

Prints "PASS name" or "FAIL name: detail" lines.
"""
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoConfig, AutoModelForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model

ROOT = os.environ.get("TK_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BLOCKS = os.path.join(ROOT, "tests", "fixtures", "train", "blocks")
IDS = torch.tensor([[5, 17, 200, 33, 9, 150, 42, 7]])
TOL = 1e-5
failed = 0


def report(name, ok, detail=""):
    global failed
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, detail)))
    failed += not ok


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


def merged_logits(base, adapter, out):
    r = subprocess.run(["tk-merge", "-q", "--model", base, "--adapter", adapter, "-o", out],
                       capture_output=True, text=True)
    if r.returncode:
        return None, r
    return logits(AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)), r


def tk_trained(w, name, base, module):
    """tk-train --ensure-weight-tying saving module; peft's logits of the
    adapter against those of tk-merge's merge."""
    ad = os.path.join(w, name.replace(" ", "-"))
    subprocess.run(["tk-train", "-q", "--model", base, "--data", BLOCKS, "--max-steps", "3",
                    "--lora-r", "4", "--modules-to-save", module, "--ensure-weight-tying",
                    "--learning-rate", "0.01", "-o", ad], check=True, stdout=subprocess.DEVNULL)
    a = logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), ad))
    b, r = merged_logits(base, ad, ad + "-merged")
    d = (a - b).abs().max().item() if b is not None else None
    report(name, d is not None and d < TOL,
           "tk-merge: %s" % r.stderr.strip() if d is None else "max |diff| %g" % d)
    if d is not None:
        print("# %s: peft vs tk-merge max |diff| %g" % (name, d))


def main():
    with tempfile.TemporaryDirectory() as w:
        base = os.path.join(w, "base")
        torch.manual_seed(0)
        cfg = AutoConfig.for_model("llama", vocab_size=301, hidden_size=32,
                                   intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2,
                                   tie_word_embeddings=True)
        AutoModelForCausalLM.from_config(cfg).save_pretrained(base)

        tk_trained(w, "tk-train adapter in peft", base, "embed_tokens")
        # GPT-2 (the fixture model of tests/fixtures/train), wte saved
        tk_trained(w, "tk-train GPT-2 adapter in peft",
                   os.path.join(ROOT, "tests", "fixtures", "train", "model"), "wte")

        for ewt in (True, False):
            torch.manual_seed(1)
            p = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                               LoraConfig(r=4, target_modules=["q_proj"],
                                          modules_to_save=["embed_tokens"],
                                          ensure_weight_tying=ewt, init_lora_weights=False))
            e = p.base_model.model.model.embed_tokens.modules_to_save["default"].weight
            with torch.no_grad():
                e.add_(0.1 * torch.randn_like(e))
            pd = os.path.join(w, "peft-%d" % ewt)
            p.save_pretrained(pd)
            a = logits(p)
            b, r = merged_logits(base, pd, pd + "-merged")
            if ewt:
                d = (a - b).abs().max().item() if b is not None else None
                report("peft adapter, ensure_weight_tying true", d is not None and d < TOL,
                       "tk-merge: %s" % r.stderr.strip() if d is None else "max |diff| %g" % d)
            else:
                report("peft adapter, ensure_weight_tying false: refused",
                       r.returncode == 1 and "ensure_weight_tying" in r.stderr,
                       "exit %d: %s" % (r.returncode, r.stderr.strip()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""make parity: DoRA adapters that tk-train writes, loaded by peft, live.

tk-train --use-dora trains a few steps on the blocks of tests/fixtures/train
with its tiny GPT-2 (fp32), and with NF4 (tk-quantize, which transformers +
bitsandbytes load) of a random GPT-2 of its vocabulary 64 wide (the
fixture's 36 wide rows would not do: bitsandbytes 0.50.2's CPU
dequantization cuts 4-bit blocks per row, unlike the format; see
gen-qlora-fixtures.py); then

1. peft loads each adapter (PeftModel.from_pretrained, no warning about
   missing or unexpected keys) and trainer.evaluate() on the eval blocks,
   with bitsandbytes held to its fp32 path (fp32_reference), must give
   tk-train --eval-only --adapter's eval_loss (1e-5 relative: fp32 sums
   over a few thousand terms, different orders);
2. peft's lora_magnitude_vector weights are the bytes tk saved.

Prints "PASS name" or "FAIL name: detail" lines and "# " lines with the
differences.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import torch
from safetensors.torch import load_file
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, TrainingArguments,
                          default_data_collator)

from peft import PeftModel

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("gen_lora_train",
                                               os.path.join(HERE, "gen-lora-train-fixture.py"))
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)
BIN = gen.BIN
TOL = 1e-5


def report(ok, name, detail=""):
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, detail)))


def tk(*args):
    return subprocess.run([os.path.join(BIN, args[0])] + list(args[1:]), check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout


def fp32_reference(model):
    """Keeps bitsandbytes' 4-bit layers of model on their fp32 path in eval.

    bitsandbytes 0.50's Linear4bit, in eval on a CPU with AVX512_BF16 (Zen 4
    and 5, Cooper Lake, Sapphire Rapids), repacks its weight and runs
    gemv_4bit_inference_cpu_nf4_bf16, which rounds the activations and the
    absmax to bf16 (backends/cpu/ops.py): on an AMD EPYC Zen 5 (family 26)
    that moved this check's nf4 eval_loss by 1.3e-3 relative to tk's fp32
    (9e-8 on the fp32 path), while on a CPU without AVX512_BF16 the same
    code takes the fp32 path.  Its own flag turns the bf16 path off, so the
    reference does what tk does (fp32 compute, bnb_4bit_compute_dtype
    float32) on every CPU."""
    for m in model.modules():
        if hasattr(m, "support_avx512bf16_for_cpu"):
            m.support_avx512bf16_for_cpu = False


def main():
    torch.set_num_threads(1)
    model_dir = os.path.join(gen.TRAIN, "model")
    blocks = os.path.join(gen.TRAIN, "blocks")
    evals = gen.Blocks(gen.read_blocks(os.path.join(blocks, "eval-00000.tks")))
    with tempfile.TemporaryDirectory(prefix="tk-dora-parity.") as tmp:
        wide = os.path.join(tmp, "wide")
        cfg = GPT2Config.from_pretrained(model_dir)
        cfg.n_embd, cfg.n_head = 64, 4
        torch.manual_seed(3)
        GPT2LMHeadModel(cfg).save_pretrained(wide)
        for f in os.listdir(model_dir):
            if f.startswith("tokenizer") or f == "generation_config.json":
                shutil.copy(os.path.join(model_dir, f), wide)
        nf4 = os.path.join(tmp, "nf4")
        tk("tk-quantize", "-q", wide, "-o", nf4, "--bnb-4bit-quant-type", "nf4",
           "--bnb-4bit-use-double-quant")
        for name, base in (("fp32", model_dir), ("nf4", nf4)):
            out = os.path.join(tmp, "out-" + name)
            tk("tk-train", "-q", "--model", base, "--data", blocks, "--max-steps", "3",
               "--learning-rate", "2e-2", "--lora-r", "4", "--use-dora",
               "--lora-target-modules", "c_attn,c_proj,c_fc", "--save-strategy", "no",
               "--threads", "1", "--no-shuffle", "-o", out)
            got = tk("tk-train", "--eval-only", "-q", "--model", base, "--adapter", out,
                     "--data", blocks, "--per-device-eval-batch-size", "3", "--threads", "1")
            tk_loss = json.loads(got.strip().splitlines()[-1])["eval_loss"]
            kw = dict(device_map="cpu") if name == "nf4" else {}
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pm = PeftModel.from_pretrained(
                    AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, **kw), out)
            keys = [str(w.message) for w in caught if "key" in str(w.message).lower()]
            fp32_reference(pm)
            report(not keys, "peft loads tk's %s DoRA adapter" % name, "; ".join(keys))
            saved = load_file(os.path.join(out, "adapter_model.safetensors"))
            sd = pm.state_dict()
            n_mag = 0
            same = True
            for k, v in saved.items():
                if k.endswith("lora_magnitude_vector"):
                    n_mag += 1
                    mk = k.replace("lora_magnitude_vector",
                                   "lora_magnitude_vector.default.weight")
                    same &= mk in sd and torch.equal(sd[mk].float(), v)
            report(same and n_mag == 8, "%s magnitudes as saved" % name,
                   "%d magnitudes, same %s" % (n_mag, same))
            args = TrainingArguments(output_dir=os.path.join(tmp, "ev"), use_cpu=True,
                                     per_device_eval_batch_size=3, report_to=[])
            tr = gen.InOrder(model=pm, args=args, eval_dataset=evals,
                             data_collator=default_data_collator)
            peft_loss = tr.evaluate()["eval_loss"]
            err = abs(tk_loss - peft_loss) / abs(peft_loss)
            print("# %s: eval_loss tk %.9g, peft %.9g, rel diff %.2g" % (name, tk_loss,
                                                                         peft_loss, err))
            report(err < TOL, "%s eval_loss as peft's" % name, "rel diff %.3g" % err)


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable] + sys.argv,
                  dict(os.environ, PYTHONHASHSEED="0"))
    main()

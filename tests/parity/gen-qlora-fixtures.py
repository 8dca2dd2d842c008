#!/usr/bin/env python3
"""Generates tests/fixtures/qlora/: QLoRA references from peft on a
bitsandbytes 4-bit model, on the CPU.

    .venv/bin/python tests/parity/gen-qlora-fixtures.py [OUTDIR [NAME...]]
(NAMEs: only those cases, the others left as they are)

For each case NAME:
    NAME/          a tiny random base (transformers, seeded) quantized by
                   transformers + bitsandbytes (from_pretrained with
                   BitsAndBytesConfig, device_map cpu, save_pretrained):
                   the 4-bit checkpoint tk loads
    NAME-adapter/  a LoRA adapter peft made for it (init_lora_weights=False,
                   seeded, so B is not zero) and saved
    NAME.ref.safetensors
        input_ids, labels  I32 [2, 8] (labels == input_ids)
        loss      F32 [1]   PeftModel(4-bit base, adapter)(ids, labels).loss
        logits    F32 [2, 8, V]
        grad.KEY  F32       the gradient of every lora_A / lora_B after
                            loss.backward(), KEY as in adapter_model.safetensors
Compute dtype float32, training mode with the dropout layers off, eager
attention.

Every linear layer's input width is a multiple of 64 (the 4-bit block
size): bitsandbytes 0.50.2's CPU dequantization kernel
(cdequantize_blockwise_cpu_*) cuts blocks per row, while the format (its
quantize_4bit, its generic dequantization, the CUDA kernels and tk) counts
blocks over the flattened matrix; the two agree only when rows hold whole
blocks.  With 48-wide rows they differ by up to 0.2 (checked: tk equals
bitsandbytes' _dequantize_4bit_compute exactly there).
"""
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, BitsAndBytesConfig, GPT2Config,
                          LlamaConfig, Phi3Config)

from peft import LoraConfig, PeftModel, get_peft_model

CASES = [
    ("llama-nf4-dq",
     LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                 tie_word_embeddings=False),
     dict(bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True),
     dict(r=4, lora_alpha=8, lora_dropout=0.05, target_modules="all-linear")),
    ("gpt2-fp4",
     GPT2Config(vocab_size=97, n_embd=64, n_head=4, n_layer=2, n_positions=32,
                resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
     dict(bnb_4bit_quant_type="fp4"),
     dict(r=8, lora_alpha=16, target_modules=["c_attn", "c_fc"], use_rslora=True)),
    # Phi-3: the fused qkv_proj and gate_up_proj quantized whole, one LoRA
    # pair each; partial rotary 0.75
    ("phi3-nf4",
     Phi3Config(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                partial_rotary_factor=0.75, tie_word_embeddings=False, bos_token_id=1,
                eos_token_id=2, pad_token_id=0),
     dict(bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True),
     dict(r=4, lora_alpha=8, target_modules=["qkv_proj", "o_proj", "gate_up_proj",
                                             "down_proj"])),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "fixtures", "qlora")
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, ".base")
    for i, (name, mcfg, q, lcfg) in enumerate(CASES):
        if sys.argv[2:] and name not in sys.argv[2:]:
            continue
        torch.manual_seed(100 + i)
        base = AutoModelForCausalLM.from_config(mcfg)
        shutil.rmtree(tmp, ignore_errors=True)
        base.save_pretrained(tmp)
        cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32, **q)
        model = AutoModelForCausalLM.from_pretrained(
            tmp, quantization_config=cfg, device_map="cpu", dtype=torch.float32,
            attn_implementation="eager")
        shutil.rmtree(tmp)
        d = os.path.join(out, name)
        shutil.rmtree(d, ignore_errors=True)
        model.save_pretrained(d)
        torch.manual_seed(200 + i)
        peft = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False,
                                                **lcfg))
        ad = os.path.join(out, name + "-adapter")
        shutil.rmtree(ad, ignore_errors=True)
        peft.save_pretrained(ad)
        os.remove(os.path.join(ad, "README.md"))
        # training mode (bitsandbytes' CPU inference-only weight repacking
        # stays off, as in QLoRA training), dropout layers off
        peft.train()
        for mod in peft.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.eval()
        g = torch.Generator().manual_seed(5)
        ids = torch.randint(0, mcfg.vocab_size, (2, 8), generator=g)
        res = peft(input_ids=ids, labels=ids)
        res.loss.backward()
        ref = {"input_ids": ids.to(torch.int32), "labels": ids.to(torch.int32),
               "loss": res.loss.detach().reshape(1), "logits": res.logits.detach().contiguous()}
        for key, p in peft.named_parameters():
            if p.requires_grad:
                ref["grad." + key.replace(".default", "")] = p.grad.detach().contiguous()
        save_file(ref, os.path.join(out, name + ".ref.safetensors"))
        print(name, "loss", float(res.loss), len(ref) - 4, "gradients")


if __name__ == "__main__":
    main()

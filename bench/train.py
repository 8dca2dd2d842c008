#!/usr/bin/env python3
"""Training step speed: tk-train against PyTorch + transformers, same shape, same run.

A GPT-2-small-shaped model (12 layers, hidden 768, 12 heads, vocab 50257;
random weights, dropout 0 on both sides since tk has none) takes optimizer
steps on batches of 4 blocks of 256 tokens, fp32, with as many threads as the
machine has cores (BENCH_THREADS overrides).  tk's step time is the
difference between runs of 1 and 1+STEPS steps of the tk-train binary, so
start-up and initialisation cancel; PyTorch's is the mean of STEPS timed steps
after one warm-up step (model(ids, labels=ids).loss.backward(), AdamW step).
Also printed: achieved GFLOP/s (6 N per token plus attention) against the
OpenBLAS SGEMM rate measured by bench-ops in the same `make bench`, and the
peak RSS of each side.

Where the CPU has bf16 matmul hardware (AVX512_BF16 or AMX in
/proc/cpuinfo), a second pair: tk-train --bf16 against the same PyTorch step
under torch.autocast("cpu", torch.bfloat16), which is what
TrainingArguments(bf16=True) does on a CPU (BENCH_BF16=0 leaves it out,
BENCH_BF16=1 runs it on any CPU, where tk emulates bf16).
"""
import json, os, re, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK = os.path.join(ROOT, "tests", "fixtures", "gpt2")
OUT = os.path.join(ROOT, "bench", "out")
STEPS = int(os.environ.get("BENCH_STEPS", "3"))
THREADS = int(os.environ.get("BENCH_THREADS", str(os.cpu_count() or 1)))
B, T = 4, 256
CFG = {"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12,
       "n_positions": 1024, "bos_token_id": 50256, "eos_token_id": 50256,
       "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}

TORCH_SCRIPT = r'''
import json, sys, time, torch
from transformers import GPT2Config, GPT2LMHeadModel
cfg, threads, B, T, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
bf16 = sys.argv[6] == "bf16"
torch.set_num_threads(threads)
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(**{k: v for k, v in cfg.items() if k != "model_type"}))
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
ids = torch.randint(0, cfg["vocab_size"], (B, T))
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
dt = (time.perf_counter() - t0) / steps
print(json.dumps({"step_s": dt, "params": sum(p.numel() for p in model.parameters())}))
'''


def timed(args, **kw):
    """Runs a command under /usr/bin/time; returns (seconds, peak RSS MB, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, **kw)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(args[:3])}... failed: {p.stderr.decode()[-2000:]}")
    return dt, int(p.stderr.decode().strip().split("\n")[-1]) / 1024, p.stdout.decode()


def gemm_peak(kind="sgemm"):
    """The best rate bench-ops measured in this run for kind (sgemm, or
    bf16gemm: oneDNN's bf16 GEMM on operands already bf16), or None."""
    try:
        text = open(os.path.join(OUT, "ops.txt")).read()
    except OSError:
        return None
    rates = [float(m) for m in
             re.findall(rf"^{kind} .*threads={THREADS}: [\d.]+ ms, ([\d.]+) GFLOP/s", text, re.M)]
    return max(rates) if rates else None


def bf16_hardware():
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def pair(work, cfg_path, prec):
    """tk-train and PyTorch steps at prec (fp32 or bf16): the report dict."""
    runs = {}
    extra = ["--bf16"] if prec == "bf16" else []
    for n in (1, 1 + STEPS):
        out = os.path.join(work, f"out{n}")
        runs[n] = timed(["tk-train", "-q", "--init", cfg_path, "--tokenizer", TOK, "--data",
                         f"{work}/blocks", "--output-dir", out, "--max-steps", str(n),
                         "--per-device-train-batch-size", str(B), "--save-strategy", "no",
                         "--threads", str(THREADS), "--learning-rate", "1e-4", "--force"] + extra)
    tk_step = (runs[1 + STEPS][0] - runs[1][0]) / STEPS
    tk_rss = runs[1 + STEPS][1]
    _, torch_rss, out = timed([sys.executable, "-c", TORCH_SCRIPT, json.dumps(CFG),
                               str(THREADS), str(B), str(T), str(STEPS), prec])
    r = json.loads(out)
    torch_step, n_params = r["step_s"], r["params"]
    tokens = B * T
    flops = 6 * n_params * tokens + 12 * CFG["n_layer"] * T * CFG["n_embd"] * tokens
    rep = {"precision": prec, "threads": THREADS, "batch": B, "seq_len": T, "params": n_params,
           "tk_step_s": tk_step, "torch_step_s": torch_step,
           "tk_tokens_per_s": tokens / tk_step, "torch_tokens_per_s": tokens / torch_step,
           "tk_gflops": flops / tk_step / 1e9, "torch_gflops": flops / torch_step / 1e9,
           "tk_rss_mb": tk_rss, "torch_rss_mb": torch_rss}
    peer = "PyTorch + HF" if prec == "fp32" else "PyTorch autocast"
    print(f"GPT-2-small shape ({n_params / 1e6:.1f} M params), batch {B} x {T}, {prec}, "
          f"{THREADS} threads")
    print(f"  tk-train{' --bf16' if extra else '       '}     {tk_step:6.2f} s/step  "
          f"{tokens / tk_step:7.1f} tokens/s  {rep['tk_gflops']:6.1f} GFLOP/s  "
          f"peak RSS {tk_rss:6.0f} MB")
    print(f"  {peer:<18}  {torch_step:6.2f} s/step  {tokens / torch_step:7.1f} tokens/s  "
          f"{rep['torch_gflops']:6.1f} GFLOP/s  peak RSS {torch_rss:6.0f} MB")
    print(f"  tk / {peer} tokens/s = {torch_step / tk_step:.2f}x")
    return rep


def main():
    work = tempfile.mkdtemp(prefix="tk-bench-train-")
    csv = os.path.join(work, "quotes.csv")
    with open(csv, "w") as f:
        subprocess.run([os.path.join(ROOT, "pipelines", "fortunes-to-csv")], stdout=f, check=True)
    subprocess.run(f"tk-tokenize -q -t {TOK} --column quote {csv} | "
                   f"tk-pack -q --seq-len {T} -o {work}/blocks", shell=True, check=True)
    cfg_path = os.path.join(work, "config.json")
    json.dump(CFG, open(cfg_path, "w"))
    rep = pair(work, cfg_path, "fp32")
    peak = gemm_peak()
    rep["sgemm_peak_gflops"] = peak
    if peak:
        print(f"  OpenBLAS SGEMM rate {peak:.1f} GFLOP/s: tk at {100 * rep['tk_gflops'] / peak:.0f}%, "
              f"PyTorch at {100 * rep['torch_gflops'] / peak:.0f}%")
    want = os.environ.get("BENCH_BF16", "")
    if want == "1" or (want != "0" and bf16_hardware()):
        rep["bf16"] = b = pair(work, cfg_path, "bf16")
        b["bf16gemm_peak_gflops"] = peak = gemm_peak("bf16gemm")
        if peak:
            print(f"  bf16 GEMM rate (oneDNN) {peak:.1f} GFLOP/s: tk at "
                  f"{100 * b['tk_gflops'] / peak:.0f}%, PyTorch at {100 * b['torch_gflops'] / peak:.0f}%")
    json.dump(rep, open(os.path.join(OUT, "train.json"), "w"), indent=1)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()

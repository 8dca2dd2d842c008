#!/usr/bin/env python3
"""LoRA training step speed: tk-train --lora-r against PyTorch + transformers + peft, same run.

Two shapes with random weights (transformers creates them after
torch.manual_seed(0) and saves them; both sides load that directory):

- GPT-2-small (12 layers, hidden 768, vocab 50257), LoRA on all linear
  layers (c_attn, attn.c_proj, c_fc, mlp.c_proj);
- SmolLM2-135M (Llama: 30 layers, hidden 576, 9 heads / 3 KV heads, MLP
  1536, vocab 49152, tied embeddings), LoRA on q_proj, k_proj, v_proj,
  o_proj.

r 16, alpha 32, dropout 0, fp32, batch 4 x 256 tokens (BENCH_BATCH,
BENCH_SEQ), every token in the loss, AdamW on the adapters, gradient
clipping, as many threads as the machine has cores (BENCH_THREADS) on both
sides.  tk's step time is the difference between tk-train runs of 1 and
1+STEPS steps, so loading and start-up cancel; peft's is the mean of STEPS
timed steps after one warm-up step (loss.backward(), clip_grad_norm_,
AdamW step).  The two sides run in turns, BENCH_ROUNDS times (3), and the
result is the round with the median ratio: a ratio of two runs minutes
apart moves with the machine's drift.  Peak RSS of each whole process
(/usr/bin/time).  The GPT-2
blocks come from the GPT-2 tokenizer; the SmolLM2-shaped model gets a
byte-level BPE trained on the same text (ids below its vocabulary) since
its own tokenizer is not in the repository; peft trains on random ids of
the same shape (the cost does not depend on the ids).

BENCH_MODELS=gpt2,smollm2 chooses the shapes.  Results also go to
bench/out/lora.json.
"""
import json, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK = os.path.join(ROOT, "tests", "fixtures", "gpt2")
OUT = os.path.join(ROOT, "bench", "out")
STEPS = int(os.environ.get("BENCH_STEPS", "2"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
THREADS = int(os.environ.get("BENCH_THREADS", str(os.cpu_count() or 1)))
B = int(os.environ.get("BENCH_BATCH", "4"))
T = int(os.environ.get("BENCH_SEQ", "256"))
R, ALPHA = 16, 32

SHAPES = {
    "gpt2": {"name": "GPT-2-small", "targets": ["c_attn", "c_proj", "c_fc"],
             "tk_targets": "all-linear",
             "config": {"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12,
                        "n_head": 12, "n_positions": 1024, "bos_token_id": 50256,
                        "eos_token_id": 50256, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
                        "attn_pdrop": 0.0}},
    "smollm2": {"name": "SmolLM2-135M", "targets": ["q_proj", "k_proj", "v_proj", "o_proj"],
                "tk_targets": "q_proj,k_proj,v_proj,o_proj",
                "config": {"model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
                           "intermediate_size": 1536, "num_hidden_layers": 30,
                           "num_attention_heads": 9, "num_key_value_heads": 3,
                           "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
                           "rope_theta": 100000.0, "tie_word_embeddings": True,
                           "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "silu"}},
}

MAKE_SCRIPT = r'''
import json, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM
cfg = json.loads(sys.argv[1])
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg))
model.save_pretrained(sys.argv[2])
'''

# A byte-level BPE of at most 49152 tokens trained on the quotes (run in a
# child: bench/tokenize.py would shadow the standard module here).
BPE_SCRIPT = r'''
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tr = trainers.BpeTrainer(vocab_size=49152, special_tokens=["<|endoftext|>"],
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tok.train([sys.argv[1]], tr)
PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                        bos_token="<|endoftext|>").save_pretrained(sys.argv[2])
'''

PEFT_SCRIPT = r'''
import json, sys, time, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
d, targets, threads, B, T, steps, r, alpha = sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:9])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=alpha,
                                         lora_dropout=0.0, target_modules=targets))
model.train()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
ids = torch.randint(0, model.config.vocab_size, (B, T))
def step():
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
dt = (time.perf_counter() - t0) / steps
print(json.dumps({"step_s": dt, "trainable": sum(p.numel() for p in params),
                  "params": sum(p.numel() for p in model.parameters()),
                  "attn": model.config._attn_implementation}))
'''


def timed(args, **kw):
    """Runs a command under /usr/bin/time; returns (seconds, peak RSS MB, stdout, stderr)."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, **kw)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(args[:3])}... failed: {p.stderr.decode()[-2000:]}")
    err = p.stderr.decode()
    return dt, int(err.strip().split("\n")[-1]) / 1024, p.stdout.decode(), err


def bench(key, work, csv):
    s = SHAPES[key]
    model = os.path.join(work, key)
    subprocess.run([sys.executable, "-c", MAKE_SCRIPT, json.dumps(s["config"]), model], check=True)
    if key == "gpt2":
        tok = TOK
    else:
        subprocess.run([sys.executable, "-c", BPE_SCRIPT, csv, model], check=True)
        tok = model
    blocks = os.path.join(work, key + "-blocks")
    subprocess.run(f"tk-tokenize -q -t {tok} --column quote {csv} | "
                   f"tk-pack -q --seq-len {T} -o {blocks}", shell=True, check=True)
    def tk_round():
        runs = {}
        for n in (1, 1 + STEPS):
            runs[n] = timed(["tk-train", "--model", model, "--tokenizer", tok, "--data", blocks,
                             "--output-dir", os.path.join(work, f"{key}-out{n}"),
                             "--max-steps", str(n), "--per-device-train-batch-size", str(B),
                             "--save-strategy", "no", "--threads", str(THREADS),
                             "--learning-rate", "1e-4", "--no-shuffle", "--lora-r", str(R),
                             "--lora-alpha", str(ALPHA), "--lora-target-modules",
                             s["tk_targets"]])
            subprocess.run(["rm", "-rf", os.path.join(work, f"{key}-out{n}")])
        return runs

    # tk and peft in turns, ROUNDS times: this machine's speed drifts by
    # 10-20% within minutes, and a ratio of two runs a minute apart drifts
    # with it; the median of the rounds' ratios is the result
    tk_steps, peft_steps, ratios = [], [], []
    for _ in range(ROUNDS):
        runs = tk_round()
        tk_steps.append((runs[1 + STEPS][0] - runs[1][0]) / STEPS)
        _, peft_rss, out, _ = timed([sys.executable, "-c", PEFT_SCRIPT, model,
                                     json.dumps(s["targets"]), str(THREADS), str(B), str(T),
                                     str(STEPS), str(R), str(ALPHA)])
        p = json.loads(out)
        peft_steps.append(p["step_s"])
        ratios.append(p["step_s"] / tk_steps[-1])
    i = sorted(range(ROUNDS), key=lambda j: ratios[j])[(ROUNDS - 1) // 2]
    tk_step, tk_rss = tk_steps[i], runs[1 + STEPS][1]
    tk_line = next((l for l in runs[1][3].splitlines() if l.startswith("trainable params:")), "")
    tokens = B * T
    rep = {"shape": s["name"], "targets": s["tk_targets"], "threads": THREADS, "batch": B,
           "seq_len": T, "r": R, "alpha": ALPHA, "params": p["params"],
           "peft_trainable": p["trainable"], "tk_trainable_line": tk_line,
           "tk_step_s": tk_step, "peft_step_s": peft_steps[i],
           "tk_tokens_per_s": tokens / tk_step, "peft_tokens_per_s": tokens / peft_steps[i],
           "ratio": ratios[i], "rounds": [{"tk_step_s": a, "peft_step_s": b, "ratio": c}
                                           for a, b, c in zip(tk_steps, peft_steps, ratios)],
           "tk_rss_mb": tk_rss, "peft_rss_mb": peft_rss, "peft_attention": p["attn"]}
    print(f"{s['name']} shape, LoRA r {R} alpha {ALPHA} on {s['tk_targets']}, batch {B} x {T}, "
          f"fp32, {THREADS} threads")
    print(f"  tk:   {tk_line}")
    print(f"  peft: trainable params: {p['trainable']:,d}")
    for j in range(ROUNDS):
        print(f"  round {j + 1}: tk-train {tk_steps[j]:6.2f} s/step, PyTorch + peft "
              f"{peft_steps[j]:6.2f} s/step: {ratios[j]:.2f}x")
    print(f"  tk-train            {tk_step:6.2f} s/step  {tokens / tk_step:7.1f} tokens/s  "
          f"peak RSS {tk_rss:6.0f} MB")
    print(f"  PyTorch + peft      {peft_steps[i]:6.2f} s/step  {tokens / peft_steps[i]:7.1f} "
          f"tokens/s  peak RSS {peft_rss:6.0f} MB  ({p['attn']} attention)")
    print(f"  tk / peft tokens/s = {rep['ratio']:.2f}x, the median of {ROUNDS} rounds "
          f"(goal >= 1.5x)", flush=True)
    return rep


def main():
    work = tempfile.mkdtemp(prefix="tk-bench-lora-")
    try:
        csv = os.path.join(work, "quotes.csv")
        with open(csv, "w") as f:
            subprocess.run([os.path.join(ROOT, "pipelines", "fortunes-to-csv")], stdout=f,
                           check=True)
        reps = [bench(k, work, csv)
                for k in os.environ.get("BENCH_MODELS", "gpt2,smollm2").split(",")]
        os.makedirs(OUT, exist_ok=True)
        json.dump(reps, open(os.path.join(OUT, "lora.json"), "w"), indent=1)
    finally:
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()

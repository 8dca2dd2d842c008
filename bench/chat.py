#!/usr/bin/env python3
"""Chat-template rendering: tk's Jinja engine against transformers' apply_chat_template.

Same templates (tests/fixtures/chat-templates: Qwen3, Llama 3.1, Mistral Nemo,
SmolLM3, Gemma 2), same conversations (BENCH_CHATS, default 2000, of one to
eleven turns, every fourth the fixtures' tool call with tools, every third with
a system message; those a template refuses are left out for both), with the
generation prompt.  tk's figure is bench-chat's loop over tk_chat_apply (the templates
compiled once, as tk-tokenize does); transformers' the loop over
apply_chat_template(tokenize=False) on one tokenizer (the template compiled once
and cached, as transformers does).  Both exclude start-up.  Prints
conversations/s for each, the ratio, and whether the texts of the whole corpus
are equal (an FNV-1a 64 of all of them).
"""
import json, os, random, subprocess, sys, tempfile, time

# bench/tokenize.py would shadow the standard library's tokenize (torch imports it)
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CT = os.path.join(ROOT, "tests", "fixtures", "chat-templates")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "generate", "chatml", "tokenizer.json")
BENCH_CHAT = os.path.join(os.environ.get("TK_BUILD", os.path.join(ROOT, "build")), "bench-chat")
TEMPLATES = ["qwen3", "llama-3.1", "mistral-nemo", "smollm3", "gemma-2"]


def fnv(data, h=0xcbf29ce484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def corpus(n, seed=1):
    convs = json.load(open(os.path.join(CT, "conversations.json")))
    words = ("the a model token chat template of to is in and data train loss "
             "über 日本 naïve \"quoted\" it's").split()
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        turns = rnd.randrange(1, 7)
        msgs = []
        if i % 3 == 0:
            msgs.append({"role": "system", "content": " ".join(rnd.choices(words, k=8))})
        for _ in range(turns):
            msgs.append({"role": "user", "content": " ".join(rnd.choices(words, k=rnd.randrange(3, 40)))})
            msgs.append({"role": "assistant", "content": " ".join(rnd.choices(words, k=rnd.randrange(3, 80)))})
        msgs.pop()  # end on a user turn, for the generation prompt
        line = {"messages": msgs}
        if i % 4 == 1:
            line = {"messages": convs["tools"]["messages"] + msgs[-1:], "tools": convs["tools"]["tools"]}
        out.append(line)
    return out


def main():
    import transformers
    from transformers import PreTrainedTokenizerFast
    sys.path.insert(0, CT)
    import generate as gen  # the special tokens of each fixture
    lines = corpus(int(os.environ.get("BENCH_CHATS", "2000")))
    print(f"{len(lines)} conversations; transformers {transformers.__version__}")
    print(f"{'template':<12} {'convs':>6} {'tk conv/s':>10} {'hf conv/s':>10} {'ratio':>7}  texts")
    with tempfile.TemporaryDirectory() as tmp:
        for name in TEMPLATES:
            template = open(os.path.join(CT, "templates", name + ".jinja")).read()
            special = gen.SPECIAL.get(name, gen.SPM)
            tok = PreTrainedTokenizerFast(tokenizer_file=TOKENIZER, **special)
            tok.chat_template = template
            d = os.path.join(tmp, name)
            os.makedirs(d)
            with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
                json.dump({**tok.special_tokens_map, "chat_template": template}, f)
            ok = []
            for line in lines:  # what the template takes (Gemma 2 no system, ...)
                try:
                    tok.apply_chat_template(line["messages"], tools=line.get("tools"), tokenize=False,
                                            add_generation_prompt=True)
                    ok.append(line)
                except Exception:  # noqa: BLE001
                    pass
            path = os.path.join(d, "conv.jsonl")
            with open(path, "w") as f:
                for line in ok:
                    f.write(json.dumps(line) + "\n")
            n = len(ok)
            t0 = time.perf_counter()
            h = 0xcbf29ce484222325
            for line in ok:
                text = tok.apply_chat_template(line["messages"], tools=line.get("tools"), tokenize=False,
                                               add_generation_prompt=True)
                h = fnv(text.encode(), h)
            hf = n / (time.perf_counter() - t0)
            repeat = max(1, int(5 * hf * 20 / n))  # a few seconds of tk
            r = subprocess.run([BENCH_CHAT, d, path, str(repeat)], capture_output=True, text=True)
            if r.returncode:
                print(f"{name:<12} bench-chat failed: {r.stderr.strip()}")
                continue
            rate, digest = r.stdout.split()[0], r.stdout.split()[2]
            same = "equal" if int(digest, 16) == h else "DIFFER"
            print(f"{name:<12} {n:>6} {float(rate):>10.0f} {hf:>10.0f} {float(rate) / hf:>6.1f}x  {same}")


if __name__ == "__main__":
    main()

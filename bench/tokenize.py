#!/usr/bin/env python3
"""Tokenizer throughput: tk-tokenize against Hugging Face `tokenizers` and `tiktoken`.

Same text, same GPT-2 tokenizer, same run.  tk's times are whole runs of the
tk-tokenize binary (start-up, tokenizer loading, reading, writing the shard);
the Python figures time only the encode calls on text already in memory.  Corpora: Debian's fortunes (about
2 MB of English quotes) and a larger one made of the Debian changelogs on this
machine (BENCH_MB, default 32 MB).  Each corpus is a file of lines; every tool
encodes every line as one document.  Prints MB/s for each tool, the ratios, the
thread scaling of tk-tokenize, its peak RSS at 1x and 4x the input (streaming
means flat), and checks that tk's ids equal the reference's on the whole corpus.
"""
import glob, gzip, json, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK_DIR = os.path.join(ROOT, "tests", "fixtures", "gpt2")
OUT = os.path.join(ROOT, "bench", "out")
MB = 1 << 20


def fortunes_corpus(path):
    files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*")
                   if os.path.isfile(f) and not f.endswith((".dat", ".u8")))
    with open(path, "w", encoding="utf-8") as out:
        for f in files:
            for line in open(f, encoding="utf-8", errors="replace"):
                if line.strip() and line.strip() != "%":
                    out.write(line)


def changelog_corpus(path, limit):
    n = 0
    with open(path, "w", encoding="utf-8") as out:
        for f in sorted(glob.glob("/usr/share/doc/*/changelog*.gz")):
            try:
                text = gzip.open(f).read().decode("utf-8", errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if line.strip():
                    out.write(line + "\n")
                    n += len(line.encode()) + 1
            if n >= limit:
                return


def run_tk(args, stdout=subprocess.DEVNULL):
    """Runs a tk command; returns (seconds, peak RSS in KiB).

    The RSS comes from /usr/bin/time: a child's ru_maxrss from wait4 would
    count the pages of this (large) Python process that it had before exec."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + args, stdout=stdout,
                       stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    err = p.stderr.decode()
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed: {err}")
    return dt, int(err.strip().split("\n")[-1])


def best(f, reps=3):
    return min(f() for _ in range(reps))


def main():
    from tokenizers import Tokenizer
    import tiktoken
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tk-bench-")
    limit = int(os.environ.get("BENCH_MB", "32")) * MB
    corpora = [("fortunes", os.path.join(work, "fortunes.txt"), fortunes_corpus),
               ("changelogs", os.path.join(work, "changelogs.txt"),
                lambda p: changelog_corpus(p, limit))]
    hf = Tokenizer.from_file(os.path.join(TOK_DIR, "tokenizer.json"))
    vocab = json.load(open(os.path.join(TOK_DIR, "vocab.json"), encoding="utf-8"))
    # tiktoken wants raw bytes per token: undo GPT-2's byte-to-unicode map.
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    unmap = {chr(c): b for b, c in zip(bs, cs)}
    ranks = {bytes(unmap[ch] for ch in tok): i for tok, i in vocab.items()
             if tok != "<|endoftext|>"}
    tt = tiktoken.Encoding("gpt2-local",
                           pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
                           mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
    report = {}
    ncpu = os.cpu_count() or 1
    for name, path, make in corpora:
        make(path)
        size = os.path.getsize(path)
        lines = open(path, encoding="utf-8").read().split("\n")
        lines = [l for l in lines if l]
        r = {"bytes": size, "lines": len(lines)}
        shard = os.path.join(work, name + ".tks")
        tk = ["tk-tokenize", "-q", "-t", TOK_DIR, "--format", "text", "--split-lines",
              "--no-add-eos", "--force", path, "-o", shard]
        for j in sorted({1, ncpu}):
            r[f"tk_j{j}"] = size / MB / best(lambda: run_tk(tk + ["-j", str(j)])[0])
        os.environ["RAYON_NUM_THREADS"] = "1"

        def hf_run():
            t0 = time.perf_counter()
            hf.encode_batch(lines, add_special_tokens=False)
            return time.perf_counter() - t0

        def tt_run():
            t0 = time.perf_counter()
            tt.encode_ordinary_batch(lines, num_threads=1)
            return time.perf_counter() - t0

        whole = "\n".join(lines)

        def tt_whole():  # tiktoken's fastest single-thread mode: one call
            t0 = time.perf_counter()
            tt.encode_ordinary(whole)
            return time.perf_counter() - t0

        r["hf_1thread"] = size / MB / best(hf_run)
        r["tiktoken_lines"] = size / MB / best(tt_run)
        r["tiktoken_whole"] = size / MB / best(tt_whole)
        r["tiktoken_1thread"] = max(r["tiktoken_lines"], r["tiktoken_whole"])
        # Same ids as the reference, line for line.
        ids_path = os.path.join(work, name + ".ids")
        with open(ids_path, "w") as f:
            run_tk(["tk-tokenize", "-t", TOK_DIR, "--format", "text", "--split-lines",
                    "--no-add-eos", "--ids", path], stdout=f)
        ours = open(ids_path).read().split("\n")[:len(lines)]
        ref = [" ".join(map(str, e.ids)) for e in hf.encode_batch(lines, add_special_tokens=False)]
        diff = sum(1 for a, b in zip(ours, ref) if a != b) + abs(len(ours) - len(ref))
        r["lines_differing_from_hf"] = diff
        report[name] = r
        print(f"{name}: {size / MB:.1f} MB, {len(lines)} lines")
        print(f"  tk-tokenize -j1        {r['tk_j1']:8.2f} MB/s")
        if ncpu > 1:
            print(f"  tk-tokenize -j{ncpu}        {r[f'tk_j{ncpu}']:8.2f} MB/s"
                  f"  ({r[f'tk_j{ncpu}'] / r['tk_j1']:.2f}x of -j1)")
        print(f"  HF tokenizers (1 thr)  {r['hf_1thread']:8.2f} MB/s   tk/HF       = {r['tk_j1'] / r['hf_1thread']:.2f}x")
        print(f"  tiktoken, per line     {r['tiktoken_lines']:8.2f} MB/s")
        print(f"  tiktoken, whole text   {r['tiktoken_whole']:8.2f} MB/s   tk/tiktoken = {r['tk_j1'] / r['tiktoken_1thread']:.2f}x (best mode)")
        print(f"  lines whose ids differ from HF: {diff}")
    # Memory: peak RSS at 1x and 4x the larger corpus (streaming keeps it flat).
    big = corpora[-1][1]
    big4 = os.path.join(work, "x4.txt")
    with open(big4, "wb") as out:
        data = open(big, "rb").read()
        for _ in range(4):
            out.write(data)
    rss = {}
    for label, p in (("1x", big), ("4x", big4)):
        rss[label] = run_tk(["tk-tokenize", "-q", "-t", TOK_DIR, "--format", "text",
                             "--split-lines", "--force", p, "-o",
                             os.path.join(work, "rss.tks")])[1] / 1024
    report["rss_mb"] = rss
    print(f"peak RSS of tk-tokenize: {rss['1x']:.0f} MB at 1x, {rss['4x']:.0f} MB at 4x the input")
    json.dump(report, open(os.path.join(OUT, "tokenize.json"), "w"), indent=1)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()

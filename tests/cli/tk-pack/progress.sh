# tk-tokenize and tk-pack report documents done as every tool does
# (TK_PROGRESS; 0 here: at every chance), and end with one line of the
# total when any was shown; with TK_PROGRESS=off (tests/run's) or -q, none.
for i in $(seq 1 50); do echo "Quote number $i"; done > in.txt
norm() { sed -E 's/\([0-9.]+s, [0-9]+\/s\)/(T, R)/; s/[0-9.]+ MB in [0-9.]+ s \([0-9.]+ MB\/s\)/M MB in T s/'; }
TK_PROGRESS=0 tk-tokenize -t "$FIX/gpt2" --split-lines in.txt -o docs.tks 2>&1 | norm
TK_PROGRESS=0 tk-pack --seq-len 16 docs.tks -o blocks 2>&1 | norm
tk-pack --seq-len 16 docs.tks -o blocks2 2>&1 | grep -c reading
TK_PROGRESS=0 tk-pack -q --seq-len 16 docs.tks -o blocks3 2>&1 | wc -l

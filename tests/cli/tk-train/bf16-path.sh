# --bf16 on the CPU takes the bf16 path compute/bf16.h chooses from cpuid
# (hw: oneDNN's bf16 GEMM where the CPU has AVX512_BF16 or AMX; emulate:
# rounded operands, fp32 GEMM), or the one TK_BF16 forces.  The emulated
# path is said once on stderr; metrics.jsonl records the path; --version
# names it; an unknown TK_BF16 is refused before training.
unset TK_BF16
# TK_BF16=hw needs oneDNN's bf16 matmul: oneDNN 2.x has one from AVX-512 up
if ! TK_BF16=hw tk-pack --version | grep -q '^bf16 (--bf16, TK_BF16): hw: oneDNN [0-9.]* bf16 matmul'; then
	echo "oneDNN has no bf16 matmul on this CPU, so TK_BF16=hw cannot run" >&2
	exit 77
fi
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 2 --logging-steps 1 --threads 1"
TK_BF16=emulate tk-train $args --bf16 -o e >/dev/null 2>err
echo "emulate: exit $?"
grep -c 'note: --bf16 on this CPU: emulate: operands rounded to bf16, fp32 arithmetic (forced by TK_BF16' err
tail -1 e/metrics.jsonl | grep -o '"train_cpu_bf16_path":"[a-z]*"'
TK_BF16=hw tk-train $args --bf16 -o h >/dev/null 2>err
echo "hw: exit $?"
grep -c 'note: --bf16' err
tail -1 h/metrics.jsonl | grep -o '"train_cpu_bf16_path":"[a-z]*"'
# both paths: the same products, fp32 sums in another order; the losses
# of 2 steps agree to 1e-3 (measured: 5e-5 on this fixture)
paste <(grep -o '"loss":[0-9.e-]*' e/metrics.jsonl | cut -d: -f2) \
	<(grep -o '"loss":[0-9.e-]*' h/metrics.jsonl | cut -d: -f2) |
	awk '{ d = $1 - $2; if (d < 0) d = -d; n++; if (d > 1e-3) bad++ }
	     END { print n " losses, " bad + 0 " apart by more than 1e-3" }'
# fp32 runs record no bf16 path
tk-train $args -o f >/dev/null 2>&1
tail -1 f/metrics.jsonl | grep -c train_cpu_bf16_path
# the path tk-train takes unforced is the one --version names
want=$(tk-train --version | sed -n 's/^bf16 (--bf16, TK_BF16): \([a-z]*\): .*/\1/p')
tk-train $args --bf16 -q -o a >/dev/null
grep -q "\"train_cpu_bf16_path\":\"$want\"" a/metrics.jsonl && echo "default: the path --version names"
TK_BF16=fast tk-train $args --bf16 -o x
echo "unknown path: exit $?"
test -e x || echo "nothing written"

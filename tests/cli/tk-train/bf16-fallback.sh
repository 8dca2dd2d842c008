# Unforced, --bf16 takes the hw path only where oneDNN loads: a machine
# with AVX512_BF16 or AMX but no usable libdnnl2 trains emulated and says
# why (--version, the note on stderr, metrics.jsonl); TK_BF16=hw there is
# refused with the fix.  An empty libdnnl.so.2 ahead on the library path
# stands in for a missing or broken oneDNN.
unset TK_BF16
if ! tk-train --version | grep -q '^bf16 (--bf16, TK_BF16): hw:'; then
	echo "the unforced path is not hw on this machine: nothing to fall back from" >&2
	exit 77
fi
# a build that links oneDNN itself (make asan: the sanitizer needs it at
# start) loads it before main, so the stand-in would stop the loader
if ldd "$(command -v tk-train)" | grep -q 'libdnnl\.so'; then
	echo "this tk-train links oneDNN at build time (make asan): it cannot run without it" >&2
	exit 77
fi
mkdir nodnnl && : >nodnnl/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/nodnnl${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
tk-train --version | grep '^bf16' |
	sed -n 's/^\(bf16 (--bf16, TK_BF16): emulate: operands rounded to bf16, fp32 arithmetic (this CPU has\) [A-Z0-9_]*, but \(cannot load oneDNN (apt-get install libdnnl2)\): .*/\1 ..., but \2: .../p'
args="--model $FIX/train/model --data $FIX/train/blocks --max-steps 2 --logging-steps 1 --threads 1"
tk-train $args --bf16 -o e >/dev/null 2>err
echo "unforced: exit $?"
grep -c 'note: --bf16 on this CPU: emulate: .*, but cannot load oneDNN' err
tail -1 e/metrics.jsonl | grep -o '"train_cpu_bf16_path":"[a-z]*"'
TK_BF16=hw tk-train $args --bf16 -o h >/dev/null 2>err
echo "forced hw: exit $?"
grep -c '^tk-train: TK_BF16=hw: cannot load oneDNN (apt-get install libdnnl2): .*: use TK_BF16=emulate (or unset it)$' err
test -e h || echo "nothing written"

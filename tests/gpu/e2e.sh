#!/usr/bin/env bash
# End to end on the device under test against the CPU (make test-gpu runs
# it; tests/run-gpu).  UNVERIFIED on a GPU: written on a machine without
# one, it has only run with TK_GPU_DUT=cpu (tests/cli/all/gpu-e2e-dut-cpu.sh).
#
# The real tools on the tiny fixture models: full fine-tuning, LoRA and
# QLoRA for a few steps with --device DUT and with --device cpu --threads 1
# (the reference), comparing the loss logged at every step in metrics.jsonl
# and the final weights or adapters; greedy tk-generate on both, whose
# tokens must be identical (fp32).  Then throughput on the DUT: a tk-train
# step's tokens/s and tk-generate's tokens/s on a small GPT-2 made with
# --init.
#
# TK_GPU_DUT picks the device under test: cuda (default) or cuda:N, or cpu,
# which runs the "GPU side" on the CPU backend with 3 threads: the harness
# itself is tested that way by make test, with no GPU.  Without a CUDA
# device every case SKIPs; under TK_REQUIRE_GPU=1 (make test-gpu) that is a
# FAIL.  TK_GPU_E2E_TRAIN_ARGS adds options to the DUT's tk-train runs
# only (words, split on blanks): make test uses it to see a difference fail.
#
# Prints PASS/FAIL/SKIP lines and, for tests/run-gpu's table,
#   ROW<TAB>e2e case<TAB>shape<TAB>dtype<TAB>pass|FAIL<TAB>max abs<TAB>max rel<TAB>tolerance
#   PERF<TAB>what<TAB>shape<TAB>value<TAB>unit
# Exits 1 on a FAIL.
set -u
ROOT=${TK_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${TK_BIN:-bin}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
FIX=$ROOT/tests/fixtures
DUT=${TK_GPU_DUT:-cuda}
name=e2e
nfail=0
skip() { echo "SKIP $name: $*"; exit 0; }
die() { echo "FAIL $name: $*"; exit 1; }
for t in tk-train tk-generate tk-quantize tk-tokenize tk-pack; do
	[ -x "$BIN/$t" ] || die "$BIN/$t not built"
done
PATH=$BIN:$PATH
case $DUT in
cpu) dut=(--device cpu --threads 3) ;;
cuda | cuda:[0-9]*) dut=(--device "$DUT") ;;
*) die "TK_GPU_DUT=$DUT: use cuda, cuda:N or cpu" ;;
esac
ref=(--device cpu --threads 1)
tmp=$(mktemp -d) || die "mktemp"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || die "cd $tmp"

# Is the device there?  One greedy token tells (the tools' own check).
if ! tk-generate "${dut[@]}" --model "$FIX/train/model" --prompt-ids "1 2" --ids \
	--max-new-tokens 1 >/dev/null 2>probe.err; then
	why=$(head -1 probe.err)
	[ "${TK_REQUIRE_GPU:-}" = 1 ] && die "no $DUT device: $why"
	skip "no $DUT device: $why"
fi

# row CASE SHAPE DTYPE OK MAXABS MAXREL TOL: one table row and PASS/FAIL
row() {
	printf 'ROW\te2e %s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$([ "$4" = 1 ] && echo pass || echo FAIL)" \
		"$5" "$6" "$7"
	if [ "$4" = 1 ]; then
		echo "PASS $name $1: max abs $5, max rel $6 within $7"
	else
		echo "FAIL $name $1: max abs $5, max rel $6 beyond $7"
		nfail=$((nfail + 1))
	fi
}

# The "loss" of every logged step, one a line.
losses() {
	grep -o '"loss":[-+0-9.eE]*' "$1" | cut -d: -f2
}

# cmpnum A B ATOL RTOL: "MAXABS MAXREL OK N" over two files of numbers, a
# line each; the counts must agree and every |a - b| <= atol + rtol |b|.
cmpnum() {
	awk -v atol="$3" -v rtol="$4" '
		NR == FNR { a[FNR] = $1; na = FNR; next }
		{ nb = FNR; d = $1 - a[FNR]; if (d < 0) d = -d; w = $1 < 0 ? -$1 : $1
		  r = w > 0 ? d / w : (d > 0 ? 1e30 : 0)
		  if (d > ma) ma = d; if (r > mr) mr = r
		  if (!(d <= atol + rtol * w)) bad++ }
		END { ok = na > 0 && na == nb && !bad
		      printf "%.3g %.3g %d %d\n", ma, mr, ok, nb }' "$1" "$2"
}

# The F32 numbers of a safetensors file, one a line (the header is checked
# to be the same as the other file's by sameheader).
f32s() {
	local n
	n=$(od -An -tu8 -N8 "$1") || return 1
	od -An -v -tf4 -j $((8 + n)) "$1" | tr -s ' ' '\n' | sed '/^$/d'
}
sameheader() {
	local n m
	n=$(od -An -tu8 -N8 "$1") && m=$(od -An -tu8 -N8 "$2") || return 1
	[ "$n" -eq "$m" ] && cmp -s -n $((8 + n)) "$1" "$2"
}

# train CASE SHAPE DTYPE FILE LOSS_ATOL W_ATOL ARGS...: train on both
# sides, compare the losses and FILE (model.safetensors or adapter_model...).
# When the DUT notes that --bf16 became fp16 (a GPU without bf16), the
# reference trains with --fp16 too.
train() {
	local c=$1 shape=$2 dtype=$3 file=$4 latol=$5 watol=$6 s args i
	shift 6
	for side in dut ref; do
		args=("$@")
		if [ $side = dut ]; then
			# shellcheck disable=SC2206
			s=("${dut[@]}" ${TK_GPU_E2E_TRAIN_ARGS:-})
		else
			s=("${ref[@]}")
			if grep -q 'note: .*fp16' "$c.dut.err"; then
				for i in "${!args[@]}"; do
					[ "${args[$i]}" = --bf16 ] && args[i]=--fp16
				done
				dtype="fp16 (bf16 fell back)"
			fi
		fi
		# no -q: the notes go to $c.$side.err with the progress
		if ! tk-train "${s[@]}" "${args[@]}" -o "$c.$side" >"$c.$side.out" 2>"$c.$side.err"; then
			echo "FAIL $name $c: tk-train ${s[*]} failed: $(tail -2 "$c.$side.err")"
			nfail=$((nfail + 1))
			return 1
		fi
	done
	losses "$c.dut/metrics.jsonl" >"$c.dut.loss"
	losses "$c.ref/metrics.jsonl" >"$c.ref.loss"
	read -r ma mr ok n < <(cmpnum "$c.dut.loss" "$c.ref.loss" "$latol" 0)
	row "$c loss" "$shape, $n steps" "$dtype" "$ok" "$ma" "$mr" "abs $latol"
	if ! sameheader "$c.dut/$file" "$c.ref/$file"; then
		row "$c weights" "$file" "$dtype" 0 - - "abs $watol (headers differ)"
		return
	fi
	f32s "$c.dut/$file" >"$c.dut.w"
	f32s "$c.ref/$file" >"$c.ref.w"
	read -r ma mr ok n < <(cmpnum "$c.dut.w" "$c.ref.w" "$watol" 0)
	row "$c weights" "$file, $n values" "$dtype" "$ok" "$ma" "$mr" "abs $watol"
}

# Tolerances.  The DUT sums in other orders than the reference (cuBLAS
# tiles, the kernels' tree reductions; for cpu, 3 threads' partial sums),
# so fp32 results drift by rounding: about 1e-6 relative per op.  Losses
# (about 5) after 10 AdamW steps: 1e-3 absolute (2e-4 relative), chosen,
# not measured on a GPU: twice the 1e-4 of the largest gradient that
# test-cuda-model.c allows one step's gradients, for the drift of the
# weights over the steps before.
# Weights and adapters: 1e-3 absolute at learning rates 5e-3 to 2e-2 (one
# AdamW step moves a weight by at most about the learning rate, so a
# rounding difference in a gradient near zero can change a step by a
# fraction of it); the same reasoning as tests/gpu/mpi-nccl.sh, looser
# because the kernels differ, not just the reduction of the gradients.
# For scale (CPU, TK_GPU_E2E_TRAIN_ARGS): an AdamW epsilon 1e-5 larger
# moved the weights by 7.2e-6 (full), 2.9e-8 (LoRA), 1.2e-7 (QLoRA), and
# the losses by at most 4.8e-7.
full=(--model "$FIX/train/model" --data "$FIX/train/blocks" --config "$FIX/train/train-args.json"
	--no-shuffle --save-strategy no)
train full "GPT-2 36x2, batch 2x2, seq 24" fp32 model.safetensors 1e-3 1e-3 "${full[@]}"
train lora "GPT-2 36x2 c_attn r4, batch 2" fp32 adapter_model.safetensors 1e-3 1e-3 \
	--model "$FIX/train/model" --data "$FIX/train/blocks" --max-steps 8 \
	--per-device-train-batch-size 2 --learning-rate 5e-3 --logging-steps 1 --lora-r 4 \
	--no-shuffle --save-strategy no
if tk-quantize -q "$FIX/train/model" -o nf4 --bnb-4bit-quant-type nf4 \
	--bnb-4bit-use-double-quant 2>q.err; then
	train qlora "GPT-2 36x2 NF4 all-linear r4, batch 2" fp32 adapter_model.safetensors 1e-3 1e-3 \
		--model nf4 --data "$FIX/train/blocks" --max-steps 8 --per-device-train-batch-size 2 \
		--learning-rate 2e-2 --logging-steps 1 --lora-r 4 --lora-target-modules all-linear \
		--no-shuffle --save-strategy no
else
	echo "FAIL $name qlora: tk-quantize failed: $(tail -1 q.err)"
	nfail=$((nfail + 1))
fi

# Reduced precision (tk-train --bf16, --fp16, --tf32): the matmul operands
# rounded on both sides, so the DUT is compared with the CPU at the same
# precision.  Tolerances as for fp32 (chosen, not measured on a GPU): the
# operands round the same way, and only an operand whose fp32 value differs
# in its last bit can round to a neighbouring bf16 value.  For scale, on
# the CPU --bf16 against fp32 moved the losses by up to 3.3e-4 and the
# weights by 1.7e-3 (--fp16: 2.6e-4 for the weights); that the precision
# took effect is checked too: its DUT losses differ from the fp32 ones.
for p in bf16 fp16 tf32; do
	if ! tk-train --help | grep -q -- "--$p "; then
		echo "SKIP $name $p: this tk-train has no --$p"
		continue
	fi
	train "$p" "GPT-2 36x2, batch 2x2, seq 24" "$p" model.safetensors 1e-3 1e-3 \
		"${full[@]}" "--$p" || continue
	if [ -s full.dut.loss ] && cmp -s "$p.dut.loss" full.dut.loss; then
		echo "FAIL $name $p: the losses with --$p are the fp32 ones: did it take effect?"
		nfail=$((nfail + 1))
	fi
done

# Greedy generation, fp32: the same tokens, compared exactly (a near tie
# between two logits could flip the argmax; the fixture's prompts have none
# on the CPU backends).
printf 'Hello world\nThe quick brown fox jumps over\nA\nB b\n' >p.txt
gen_ok=1
for side in dut ref; do
	if [ $side = dut ]; then s=("${dut[@]}"); else s=("${ref[@]}"); fi
	tk-generate "${s[@]}" --model "$FIX/generate/chatml" --max-new-tokens 24 --prompt-file p.txt \
		--ids >"gen.$side" 2>"gen.$side.err" || {
		echo "FAIL $name greedy: tk-generate ${s[*]} failed: $(tail -2 "gen.$side.err")"
		nfail=$((nfail + 1))
		gen_ok=0
	}
done
if [ $gen_ok = 1 ]; then
	ntok=$(wc -w <gen.ref)
	diff=$(paste -d' ' <(tr -s ' \n' '\n' <gen.dut) <(tr -s ' \n' '\n' <gen.ref) |
		awk '$1 != $2 { n++ } END { print n + 0 }')
	if [ "$(wc -w <gen.dut)" -ne "$ntok" ]; then diff=$((diff > 0 ? diff : 1)); fi
	ok=0
	[ "$ntok" -gt 0 ] && cmp -s gen.dut gen.ref && ok=1
	row "greedy generate" "chatml model, 4 prompts x 24 tokens" fp32 "$ok" "$diff tokens" - \
		"identical"
fi

# Throughput on the DUT: a GPT-2 of hidden 256, 4 layers, 4 heads, 128
# positions made with --init (its weights do not matter), trained on the
# fixture text repeated, 128-token blocks, batch 8 (fp32, and --bf16 where
# tk-train has it); then tk-generate of 64
# tokens from it (its wall time includes loading the model).
perf_ok=1
sed -e 's/"n_embd": *[0-9]*/"n_embd": 256/' -e 's/"n_layer": *[0-9]*/"n_layer": 4/' \
	-e 's/"n_head": *[0-9]*/"n_head": 4/' -e 's/"n_positions": *[0-9]*/"n_positions": 128/' \
	"$FIX/train/model/config.json" >perf-config.json
for _ in $(seq 30); do cat "$FIX/train/text.txt"; done >perf.txt
tk-tokenize -q -t "$FIX/train/model" perf.txt -o perf.shard 2>perf.err &&
	tk-pack -q --seq-len 128 perf.shard >perf.tks 2>>perf.err || perf_ok=0
# perf_train OUT [--bf16...]: PERF line of a tk-train run on the DUT
perf_train() {
	local out=$1 tps
	shift
	tk-train -q "${dut[@]}" "$@" --init perf-config.json --tokenizer "$FIX/train/model" \
		--data perf.tks --max-steps 20 --per-device-train-batch-size 8 --learning-rate 1e-4 \
		--save-strategy no -o "$out" >"$out.out" 2>>perf.err || return 1
	tps=$(grep -o '"train_tokens_per_second": *[0-9.eE+-]*' "$out.out" | tr -d ' ' | cut -d: -f2)
	[ -n "$tps" ] || { echo "no train_tokens_per_second in $out.out" >>perf.err; return 1; }
	printf 'PERF\ttk-train (%s%s)\tGPT-2 256x4, batch 8x128, 20 steps\t%s\ttokens/s\n' "$DUT" \
		"${1:+ $1}" "$tps"
}
[ $perf_ok = 1 ] && perf_train perf || perf_ok=0
if [ $perf_ok = 1 ] && tk-train --help | grep -q -- '--bf16 '; then
	perf_train perf-bf16 --bf16 || perf_ok=0
fi
if [ $perf_ok = 1 ]; then
	t0=$(date +%s.%N)
	if tk-generate "${dut[@]}" --model perf --prompt-ids "1 2 3 4" --ids --max-new-tokens 64 \
		>perf.gen 2>>perf.err; then
		t1=$(date +%s.%N)
		# --ids prints the new tokens only
		n=$(wc -w <perf.gen)
		printf 'PERF\ttk-generate (%s)\tGPT-2 256x4, 1 prompt, greedy\t%s\ttokens/s (with start-up)\n' \
			"$DUT" "$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')"
	else
		perf_ok=0
	fi
fi
if [ $perf_ok = 1 ]; then
	echo "PASS $name throughput measured"
else
	echo "FAIL $name throughput: $(tail -2 perf.err)"
	nfail=$((nfail + 1))
fi
[ $nfail -eq 0 ]

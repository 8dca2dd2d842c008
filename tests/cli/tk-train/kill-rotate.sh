# --save-total-limit: a run killed (SIGKILL, strace's fault injection) at
# each of its first unlink calls - inside the removal of an old checkpoint
# - leaves no checkpoint-N directory that lacks a file: rotation renames
# the old checkpoint away (OUT/.deleting-checkpoint-N) before deleting it.
# The resumed run removes what is left of it and ends as an uninterrupted
# run does.
command -v strace >/dev/null || { echo "no strace" >&2; exit 77; }
strace -o /dev/null true 2>/dev/null || { echo "strace cannot trace here" >&2; exit 77; }
args="--model $FIX/train/model --data $FIX/train/blocks --save-steps 1 --save-total-limit 1
	--max-steps 3 --threads 1 -q"
tk-train $args -o straight >/dev/null || exit 99
for n in 1 2 3 4 5 6; do
	rm -rf out
	(strace -f -o /dev/null -e trace=unlink,unlinkat \
		-e inject=unlink,unlinkat:signal=KILL:when=$n tk-train $args -o out; :) >/dev/null 2>&1
	for c in out/checkpoint-*/; do
		for f in config.json model.safetensors optimizer.safetensors trainer_state.json \
			tokenizer.json tokenizer_config.json generation_config.json; do
			[ -e "$c$f" ] || echo "kill at unlink $n: $c has no $f"
		done
	done
	if ls out | grep -q checkpoint-; then
		tk-train $args -o out --resume-from-checkpoint latest >/dev/null || echo "$n: resume failed"
	else
		tk-train $args -o out --force >/dev/null || echo "$n: run failed"
	fi
	cmp -s straight/model.safetensors out/model.safetensors || echo "$n: another model"
	ls -A out | grep -e deleting -e tmp- -e lock
done
echo done

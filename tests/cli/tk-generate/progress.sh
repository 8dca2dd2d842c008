# Prompts done, as every tool's progress (TK_PROGRESS; 0 here: at every
# chance) when stdout is not a terminal: one line per batch, none with -q.
m=$FIX/generate/chatml
printf 'a\nb\nc\n' | TK_PROGRESS=0 tk-generate --model "$m" --max-new-tokens 2 --batch-size 2 \
	2>&1 >/dev/null | sed -E 's/\([0-9.]+s, [0-9]+\/s\)/(T, R)/'
TK_PROGRESS=0 tk-generate --model "$m" --max-new-tokens 2 a b 2>&1 >/dev/null |
	sed -E 's/\([0-9.]+s, [0-9]+\/s\)/(T, R)/'
printf 'a\nb\n' | TK_PROGRESS=0 tk-generate -q --model "$m" --max-new-tokens 2 2>&1 >/dev/null | wc -l

# Every ```sh block of README.md runs, in order, in one directory, against
# tiny stand-ins for the names the README uses: SmolLM2/ is the tiny qwen2
# model of tests/fixtures/generate/chatml (its tokenizer and ChatML chat
# template), data.csv a CSV of quotes (quote,author) from the fixtures,
# pipelines/ the checkout's.  Each block runs under bash -e -o pipefail: a
# failing command fails the case, naming the block's line in README.md.
# A block with a line "# (not run by the tests: WHY)" is not run.
# In every fenced block (sh, python, run or not) and every inline `tk-...`
# command of the text (the tables), each tk-* command's --options must be
# in that tool's --help: an option a tool lacks fails the case even where
# the command cannot run.
readme=${TK_README:-$TK_ROOT/README.md}
cp -r "$FIX/generate/chatml" SmolLM2
{
	echo quote,author
	sed 's/"/""/g; s/.*/"&",anon/' "$FIX/train/text.txt"
	tail -n +2 "$FIX/input/quotes.csv"
} >data.csv
ln -s "$TK_ROOT/pipelines" pipelines

# blocks/N.LANG: the block that starts on line N of README.md
mkdir .blocks
awk -v dir=.blocks '
	!inb && /^```[a-z]*[ \t]*$/ { inb = 1; lang = substr($0, 4); gsub(/[ \t]/, "", lang)
		if (lang == "") lang = "text"; f = dir "/" NR "." lang; printf "" > f; next }
	inb && /^```[ \t]*$/ { inb = 0; close(f); next }
	inb { print > f; next }
	# inline commands outside the blocks (the tables): checked, never run
	{ line = $0; while (match(line, /`!?tk-[a-z]+ [^`]*`/)) {
		print substr(line, RSTART + 1, RLENGTH - 2) > (dir "/" NR ".inline")
		line = substr(line, RSTART + RLENGTH) } }
' "$readme"

fail=0 ran=0 notrun=0 checked=0
# the options of each tk-* command in a block: continuation lines joined,
# comments dropped, split at | ; && and $(, a leading ! (notebook) removed
check_options() { # block-file
	local seg tool word
	# shellcheck disable=SC2016 # a literal $( to split at
	sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' "$1" | sed 's/\(^\|[ \t]\)#.*//; s/^[ \t]*!//' |
		sed 's/|\|&&\|;\|\$(/\n/g' | while read -r seg; do
		tool=
		for word in $seg; do
			if [ -z "$tool" ]; then
				[[ $word =~ ^tk-[a-z]+$ ]] && tool=$word
				continue
			fi
			[[ $word =~ ^--[a-z0-9][a-z0-9-]*(=.*)?$ ]] || continue
			word=${word%%=*}
			echo "$tool $word"
		done
	done
}
# shellcheck disable=SC2012 # the names are the awk's: LINE.LANG
for b in $(ls .blocks | sort -n); do
	line=${b%%.*} lang=${b#*.}
	while read -r tool opt; do
		checked=$((checked + 1))
		if ! command -v "$tool" >/dev/null; then
			echo "README.md:$line: $tool: no such tool" >&2
			fail=1
		elif ! "$tool" --help 2>/dev/null | grep -q -- "$opt\([^a-z0-9-]\|$\)"; then
			echo "README.md:$line: $tool has no option $opt" >&2
			fail=1
		fi
	done < <(check_options ".blocks/$b")
	[ "$lang" = sh ] || continue
	if grep -q '^# (not run by the tests' ".blocks/$b"; then
		notrun=$((notrun + 1))
		continue
	fi
	ran=$((ran + 1))
	bash -e -o pipefail ".blocks/$b" >".blocks/$b.out" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "README.md:$line: the block failed (exit $rc):" >&2
		tail -15 ".blocks/$b.out" | sed 's/^/    /' >&2
		fail=1
	fi
done
# the extraction itself must have found the walk-through
if [ "$ran" -lt 3 ] || [ "$checked" -lt 30 ]; then
	echo "only $ran sh blocks run and $checked options checked: is the extraction broken?" >&2
	fail=1
fi
echo "$ran blocks run, $notrun not run, $checked options checked" >&2
exit $fail

# Numbers are decimal, as Python's int() and argparse read them: a leading
# zero is not octal (010 is ten, 08 is eight), hex and the strtod extras
# (hex floats, inf, nan, spaces) are refused with exit 2.
for i in $(seq 1 40); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
tk-pack -s 010 -o a docs.tks 2>&1 | grep -o 'blocks of [0-9]* tokens'
tk-pack -s 08 -o b docs.tks 2>&1 | grep -o 'blocks of [0-9]* tokens'
tk-pack -s +012 -o c docs.tks 2>&1 | grep -o 'blocks of [0-9]* tokens'
for bad in "-s 0x10" "-s 1_0" "--seq-len= 16" "--eval-fraction=nan" "--eval-fraction=inf" \
	"--eval-fraction=0x1p-3" "--eval-fraction=-inf" "--eval-docs=1e1"; do
	tk-pack $bad -o x docs.tks >/dev/null 2>err
	echo "$bad: exit $? $(head -1 err)"
done

# TK_CPU_ISA caps the CPU backend's own loops: --version names the level in
# use and the ones this CPU runs; an unknown level, or one the CPU lacks, is
# refused (exit 2) before any work, never silently lowered.
tk-pack --version >v
sed -n 's/^loops: \([a-z0-9]*\) (TK_CPU_ISA: \(.*\))$/\2/p' v >levels
grep -q 'generic$' levels && echo "the list ends with generic"
TK_CPU_ISA=generic tk-pack --version | sed -n 's/^loops: \([a-z0-9]*\) .*/loops: \1/p'
TK_CPU_ISA=generic tk-generate --model "$FIX/train/model" --max-new-tokens 2 "Hello" >/dev/null
echo "generic: exit $?"
TK_CPU_ISA=avx3 tk-generate --model "$FIX/train/model" --max-new-tokens 2 "Hello"
echo "unknown level: exit $?"
# a level above the best here (none on an AVX-512 CPU)
best=$(cut -d' ' -f1 levels)
case $best in
generic) above=avx2 ;;
avx2) above=avx512 ;;
*) above= ;;
esac
if [ -n "$above" ]; then
	TK_CPU_ISA=$above tk-generate --model "$FIX/train/model" --max-new-tokens 2 "Hello" 2>err
	echo "lacking: exit $?"
	grep -q "^tk-generate: TK_CPU_ISA: this CPU cannot run $above (the best here is $best)$" err &&
		echo "lacking: refused"
else
	echo "lacking: exit 2"
	echo "lacking: refused"
fi
exit 0

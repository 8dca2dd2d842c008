# Every tool's --help agrees with its man page: the SYNOPSIS lines equal the
# usage lines, every long option in --help is documented under OPTIONS, and
# the page has the sections a man page must have.
status=0
# every tool of tools/, as tests/run put it first on PATH (TK_BIN)
tools=$(cd "$TK_ROOT/tools" && ls tk-*.c | sed 's/\.c$//')
for t in $tools; do
	command -v "$t" >/dev/null || { echo "$t: not built"; exit 1; }
done
for t in $tools; do
	page="$TK_ROOT/man/$t.1"
	if [ ! -f "$page" ]; then
		echo "$t: no man page man/$t.1"; status=1; continue
	fi
	help=$("$t" --help) || { echo "$t --help: exit $?"; status=1; continue; }
	usage=$(sed -n -e 's/^usage: //p' -e 's/^   or: //p' <<<"$help")
	synopsis=$(awk '/^\.SH SYNOPSIS/{on=1; next} /^\.SH/{on=0} on && !/^\./' "$page" |
		sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\(em/--/g' -e 's/\\e/\\/g')
	if [ "$usage" != "$synopsis" ]; then
		echo "$t: --help usage and man SYNOPSIS differ:"
		diff <(echo "$usage") <(echo "$synopsis") | sed 's/^/  /'
		status=1
	fi
	options=$(awk '/^\.SH OPTIONS/{on=1; next} /^\.SH/{on=0} on' "$page" | sed 's/\\-/-/g')
	for o in $(grep -oE -- '--[a-z0-9][a-z0-9-]*' <<<"$help" | sort -u); do
		grep -qE -- "(^|[^a-z0-9-])$o([^a-z0-9-]|$)" <<<"$options" ||
			{ echo "$t: $o is in --help but not in the man page's OPTIONS"; status=1; }
	done
	for s in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS"; do
		grep -q "^\.SH \"\\?$s" "$page" || { echo "$t: man page has no $s section"; status=1; }
	done
	warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
	[ -z "$warn" ] || { echo "$t: man page warnings:"; echo "$warn" | head -5; status=1; }
done
for p in "$TK_ROOT"/man/*.5; do
	[ -f "$p" ] || continue
	warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$p" 2>&1 >/dev/null)
	[ -z "$warn" ] || { echo "$(basename "$p"): man page warnings:"; echo "$warn" | head -5; status=1; }
done
exit $status

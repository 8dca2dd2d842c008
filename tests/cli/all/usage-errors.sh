# Every tool: --help goes to stdout with exit 0; an unknown option is one line
# plus a hint on stderr with exit 2 and nothing on stdout.
status=0
for t in $(cd "$TK_ROOT/tools" && ls tk-*.c | sed 's/\.c$//'); do
	command -v "$t" >/dev/null || { echo "$t: not built"; status=1; continue; }
	out=$("$t" --help 2>/dev/null); rc=$?
	[ $rc -eq 0 ] && [[ $out == usage:* ]] || { echo "$t --help: exit $rc"; status=1; }
	out=$("$t" --no-such-option 2>err); rc=$?
	[ $rc -eq 2 ] || { echo "$t --no-such-option: exit $rc, expected 2"; status=1; }
	[ -z "$out" ] || { echo "$t: bad usage wrote to stdout"; status=1; }
	first=$(head -1 err)
	[ "$first" = "$t: unknown option '--no-such-option'" ] ||
		{ echo "$t: unexpected message: $first"; status=1; }
	grep -q "^Try '$t --help'" err || { echo "$t: no hint to --help"; status=1; }
done
exit $status

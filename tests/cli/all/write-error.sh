# Every tool: output that cannot be written (--help to a full disk) is an
# error, exit 1 with "write error" and the reason, as GNU tools do; stdout
# closed before anything is written to it is no error.
status=0
dir=$(dirname "$(command -v tk-pack)")
for t in $(cd "$dir" && ls tk-*); do
	"$t" --help >/dev/full 2>err; rc=$?
	[ $rc -eq 1 ] || { echo "$t --help >/dev/full: exit $rc, expected 1"; status=1; }
	[ "$(cat err)" = "$t: write error: No space left on device" ] ||
		{ echo "$t: unexpected message: $(cat err)"; status=1; }
	"$t" --help >&- 2>err; rc=$?
	[ $rc -eq 1 ] && grep -q "^$t: write error: Bad file descriptor\$" err ||
		{ echo "$t --help >&-: exit $rc: $(cat err)"; status=1; }
	"$t" --no-such-option >&- 2>/dev/null; rc=$?
	[ $rc -eq 2 ] || { echo "$t --no-such-option >&-: exit $rc, expected 2"; status=1; }
done
exit $status

# Every tool: control characters in what the user typed (an option, a file
# name) are escaped in messages (\n, \t, \x1b...), never printed raw.
status=0
dir=$(dirname "$(command -v tk-pack)")
for t in $(cd "$dir" && ls tk-*); do
	"$t" "$(printf -- '--x\033]0;owned\007\nfake: line')" 2>err >/dev/null; rc=$?
	[ $rc -eq 2 ] || { echo "$t: exit $rc, expected 2"; status=1; }
	first=$(head -1 err)
	[ "$first" = "$t: unknown option '--x\\x1b]0;owned\\x07\\nfake: line'" ] ||
		{ echo "$t: unexpected message: $first"; status=1; }
	[ "$(wc -l <err)" -eq 2 ] || { echo "$t: message broken over lines"; status=1; }
done
exit $status

# The defaults --help prints, one line per option: "(default: V)" comes
# from the field that *_opts_init set (base/options.h), so this list is the
# defaults tk runs with; a change to one shows here.  Words such as
# "(default: the model's)" are the help text's own.
tools=$(cd "$TK_ROOT/tools" && ls tk-*.c | sed 's/\.c$//')
for t in $tools; do
	"$t" --help | awk -v t="$t" '
		function flush() {
			if (entry ~ /\(default: /) {
				d = entry; sub(/.*\(default: /, "", d); sub(/\).*/, "", d)
				n = entry; sub(/^ *(-[a-zA-Z0-9], )?/, "", n); sub(/ .*/, "", n)
				print t " " n ": " d
			}
			entry = ""
		}
		BEGIN { blank = sprintf("%30s", "") }
		/^  -|^      --/ { flush(); entry = $0; next }
		entry != "" && substr($0, 1, 30) == blank { entry = entry " " substr($0, 31); next }
		{ flush() }
		END { flush() }'
done
# the defaults, not what an option ahead of --help set
tk-pack --seq-len 7 --help | grep -e '--seq-len N'
tk-train --learning-rate 1 --optim adamw_8bit -h | grep -e '--learning-rate LR'

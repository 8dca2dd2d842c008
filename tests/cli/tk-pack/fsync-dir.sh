# After renaming its output into place, tk-pack fsyncs the directory that
# holds it, so the new name survives a crash (watched with strace).
command -v strace >/dev/null || { echo "strace not installed" >&2; exit 77; }
strace -o /dev/null true 2>/dev/null || { echo "strace cannot trace here" >&2; exit 77; }
for i in $(seq 1 40); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
mkdir sub
# (LeakSanitizer cannot run under ptrace: an ASan build leaves it off here)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -y -o trace -e trace=rename,renameat,renameat2,fsync,fdatasync \
	tk-pack -q -s 16 -o sub/out docs.tks || exit $?
# the last rename puts sub/out in place; an fsync of sub/ must follow it
awk -v sub_dir="$(cd sub && pwd)" '
	/rename/ && /sub\/out"/ { renamed = 1; synced = 0 }
	renamed && /fsync\(/ && index($0, "<" sub_dir ">") { synced = 1 }
	END { print (renamed ? "renamed" : "no rename"), (synced ? "synced" : "not synced") }' trace

# Crash injection (tests/crash/run): a LoRA run with checkpoints every 2
# steps, --save-total-limit 2 and side files, killed (SIGKILL, strace's
# syscall injection) at every rename, unlink, rmdir, mkdir and fsync it
# makes, then resumed as the pipelines resume; every case must end with
# the bytes of an uninterrupted run, no debris and every side file.  The
# counts are the uninterrupted run's calls.  make crash runs more.
command -v strace >/dev/null || { echo "no strace" >&2; exit 77; }
strace -f -qq -o /dev/null -e trace=rename true 2>/dev/null || { echo "strace cannot trace here" >&2; exit 77; }
# LeakSanitizer stops threads with ptrace, which a traced process cannot
# (make asan): leaks are checked by the untraced tests
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
TK_CRASH_SYSCALLS="rename unlink rmdir mkdir fsync" "$TK_ROOT/tests/crash/run" lora >out 2>&1
echo "exit $?"
grep '^FAIL' out | head -5
awk -F'|' 'NR > 1 { gsub(/ /, "", $2); gsub(/ /, "", $3); print $1 "|", ($2 > 0 && $2 == $3 ? "all held" : $3 " of " $2 " held") }' out

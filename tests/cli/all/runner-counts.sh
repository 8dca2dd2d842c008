# tests/run holds each unit test binary to the number of TT_RUN call
# sites in its source: a binary that stops early (here: 2 of test-tk's
# tests, exit 0) or prints nothing and exits 0 is a failure, not a pass.
mkdir -p b/tests
printf '#!/bin/sh\necho PASS a\necho PASS b\n' >b/tests/test-tk
printf '#!/bin/sh\nexit 0\n' >b/tests/test-options
chmod +x b/tests/test-*
bin=$(dirname "$(command -v tk-train)")
for t in test-tk test-options; do
	env -u TK_FAIL_FAST TK_BUILD=$PWD/b TK_BIN=$bin TK_KERNEL_MATRIX=0 "$TK_ROOT/tests/run" "$t" >out 2>&1
	echo "$t: exit $?"
	grep -E '^FAIL .*tests reported|passed, [0-9]+ failed' out | sed -E "s/runs [1-9][0-9]*$/runs N (its TT_RUN count)/"
done

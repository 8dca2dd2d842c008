tk-tokenize -t "$FIX/gpt2" --split-lines -o no/such/dir/out.tks "$FIX/input/lines.txt"
rc=$?; ls out* 2>/dev/null; exit $rc

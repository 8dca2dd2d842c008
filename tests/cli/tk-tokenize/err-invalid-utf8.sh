cp "$FIX/input/badutf8.txt" bad.txt
tk-tokenize -t "$FIX/gpt2" --split-lines -o out.tks bad.txt
rc=$?; ls out* 2>/dev/null; exit $rc

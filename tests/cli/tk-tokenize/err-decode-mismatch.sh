# a tokenizer with one merge less has another fingerprint
mkdir other
sed -e '/"Ġinform ants",/s/,$//' -e '/"Ġg azed"/d' "$FIX/gpt2/tokenizer.json" > other/tokenizer.json
tk-tokenize -q -t "$FIX/gpt2" --split-lines -o lines.tks "$FIX/input/lines.txt" || exit 99
tk-tokenize -t other --decode -o out.txt lines.tks
rc=$?; ls out* 2>/dev/null; exit $rc

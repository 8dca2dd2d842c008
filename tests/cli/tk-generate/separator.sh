# --separator STR ends each output with STR instead of a newline (\n, \t,
# \0 and \\ understood, for shells without $'...'), -0 with a NUL byte, as
# find -print0 does for xargs -0; --ids too.  Shown: NUL as "<NUL>".
m=$FIX/generate/chatml
tk-generate --model "$m" --max-new-tokens 4 -0 "Hello" "A b" | tr '\0' '@' | sed 's/@/<NUL>/g'
echo
tk-generate --model "$m" --max-new-tokens 4 --null "Hello" "A b" | tr '\0\n' '@~'
echo
tk-generate --model "$m" --max-new-tokens 4 --separator '\n--\n' "Hello" "A b"
tk-generate --model "$m" --max-new-tokens 4 --ids --separator ';\t' "Hello" "A b" | tr '\t' '^'; echo
# the outputs come back whole through xargs -0
tk-generate --model "$m" --max-new-tokens 4 -0 "Hello" "A b" | xargs -0 -n1 printf '[%s]\n'

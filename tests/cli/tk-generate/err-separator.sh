# --separator with an escape it does not know, with --json, and with -0:
# usage errors (2) that say what to write instead.
m=$FIX/generate/chatml
tk-generate --model "$m" --separator 'a\q' x; echo "exit $?"
tk-generate --model "$m" --separator 'a\' x; echo "exit $?"
tk-generate --model "$m" --json -0 x; echo "exit $?"
tk-generate --model "$m" --separator , -0 x; echo "exit $?"

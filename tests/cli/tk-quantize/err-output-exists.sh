# an existing output stays as it is without --force, is replaced with it
mkdir q && touch q/keep
tk-quantize "$FIX/models/llama" -o q; echo "rc=$?"
ls q
tk-quantize -q --force "$FIX/models/llama" -o q; echo "rc=$?"
ls q
# --force on the directory that holds the input: a usage error, as in
# tk-convert and tk-pack, and both stay
mkdir -p out && cp -r "$FIX/models/llama" out/in
tk-quantize -q --force out/in -o out; echo "rc=$?"
ls out

# an existing output stays as it is without --force, is replaced with it
mkdir q && touch q/keep
tk-quantize "$FIX/models/llama" -o q; echo "rc=$?"
ls q
tk-quantize -q --force "$FIX/models/llama" -o q; echo "rc=$?"
ls q

# an existing directory stays as it is without --force, is replaced with it
mkdir m && touch m/keep
tk-convert "$FIX/convert/llama.gguf" -o m; echo "rc=$?"
ls . m
tk-convert -q --force "$FIX/convert/llama.gguf" -o m; echo "rc=$?"
ls . m

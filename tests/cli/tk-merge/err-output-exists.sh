# an existing output is kept unless --force
mkdir m && touch m/keep
tk-merge -m "$FIX/models/llama" -a "$FIX/lora/llama-qv" -o m; echo "rc=$?"
ls m
tk-merge -q -f -m "$FIX/models/llama" -a "$FIX/lora/llama-qv" -o m; echo "rc=$?"
ls m

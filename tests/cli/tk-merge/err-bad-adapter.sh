# an adapter directory without adapter_config.json; a second adapter that
# fails after the first merged: no output either way
mkdir empty
tk-merge -m "$FIX/models/llama" -a empty -o m; echo "rc=$?"
tk-merge -m "$FIX/models/llama" -a "$FIX/lora/llama-qv" -a empty -o m; echo "rc=$?"
ls

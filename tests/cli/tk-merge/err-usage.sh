# missing options and a bad weight are usage errors (exit 2)
tk-merge -m "$FIX/models/llama" -o m; echo "rc=$?"
tk-merge -a "$FIX/lora/llama-qv" -o m; echo "rc=$?"
tk-merge -m "$FIX/models/llama" -a "$FIX/lora/llama-qv"; echo "rc=$?"
tk-merge -m "$FIX/models/llama" -a "$FIX/lora/llama-qv:1e9" -o m; echo "rc=$?"
tk-merge -m "$FIX/models/llama" -a "$FIX/lora/llama-qv" -o m --dtype float8; echo "rc=$?"
ls

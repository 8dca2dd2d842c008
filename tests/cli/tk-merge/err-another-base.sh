# an adapter trained on another base: the module, or the module and both shapes
tk-merge -m "$FIX/models/llama" -a "$FIX/lora/gpt2-default" -o m; echo "rc=$?"
tk-merge -m "$FIX/models/qwen2" -a "$FIX/lora/llama-all" -o m; echo "rc=$?"
ls

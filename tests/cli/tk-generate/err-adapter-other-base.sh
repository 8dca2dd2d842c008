# An adapter trained on another base model is refused, naming the module.
tk-generate --model "$FIX/models/llama" --adapter "$FIX/lora/gpt2-default" --prompt-ids "1 2" --ids

# A Qwen2 with sliding-window layers (use_sliding_window) is not exported
# to GGUF, where llama.cpp's qwen2 would attend to every key; nothing is
# written.
tk-convert -q "$FIX/swa/qwen2" -o q.gguf; echo "rc=$?"
ls

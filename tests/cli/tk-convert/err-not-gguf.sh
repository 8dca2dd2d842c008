# not a GGUF file; a GGUF with no model in it; nothing written
printf 'this is a text file, not a model\n' > notes.txt
tk-convert notes.txt -o m; echo "rc=$?"
cp "$FIX/gguf/ggml-vocab-gpt-2.gguf" vocab.gguf
tk-convert vocab.gguf -o m; echo "rc=$?"
ls

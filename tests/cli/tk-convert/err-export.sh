# export failures leave nothing behind: an existing file without --force, a
# tokenizer export does not handle, a model directory that does not load
tk-convert -q "$FIX/convert/llama.gguf" -o m; echo "rc=$?"
echo keep > x.gguf
tk-convert -q m -o x.gguf; echo "rc=$?"
cat x.gguf
tk-convert -q --force m -o x.gguf; echo "rc=$?"
head -c 4 x.gguf; echo
echo '{"model": {"type": "WordPiece", "vocab": {}}}' > m/tokenizer.json
tk-convert -q m -o y.gguf; echo "rc=$?"
rm m/config.json
tk-convert -q m -o y.gguf; echo "rc=$?"
ls

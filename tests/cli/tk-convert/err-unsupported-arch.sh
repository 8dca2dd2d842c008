# an architecture tk cannot run: named, with the supported ones; no output
cp "$FIX/convert/mamba.gguf" .
tk-convert mamba.gguf -o m; echo "rc=$?"
ls

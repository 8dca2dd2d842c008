cp "$FIX/convert/mamba.gguf" .
tk-convert -o m; echo "rc=$?"
tk-convert mamba.gguf; echo "rc=$?"
tk-convert mamba.gguf mamba.gguf -o m; echo "rc=$?"
tk-convert mamba.gguf -o m --outtype q4_0; echo "rc=$?"
mkdir d  # a directory is exported: it must hold a model
tk-convert d -o m; echo "rc=$?"
tk-convert missing.gguf -o m; echo "rc=$?"
ls

# hyperparameters that do not fit the tensors: the tensor is named
cp "$FIX/convert/bad-shape.gguf" .
tk-convert bad-shape.gguf -o m; echo "rc=$?"
ls

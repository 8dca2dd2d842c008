# --force replaces the output directory: an input that lies inside it
# would be deleted with it (tk-pack -f -s 64 dir/docs.tks -o dir did), so
# every tool that replaces a directory refuses, naming both, and leaves
# the input and the old output as they were.  A path through .. is seen
# through.  Each exits 2: a usage error, found before any work.
mkdir out
cp -r "$FIX/models/gpt2" out/model
cp "$FIX/convert/llama.gguf" out/llama.gguf
cp -r "$FIX/lora/gpt2-default" out/adapter
ls out >before
tk-quantize out/model -o out --force 2>err; echo "tk-quantize: exit $?"; cat err
tk-convert out/llama.gguf -o out/../out --force 2>err; echo "tk-convert: exit $?"; cat err
tk-merge --model out/model --adapter "$FIX/lora/gpt2-default" -o out --force 2>err
echo "tk-merge (base inside): exit $?"; cat err
tk-merge --model "$FIX/models/gpt2" --adapter out/adapter -o out --force 2>err
echo "tk-merge (adapter inside): exit $?"; cat err
ls out | cmp -s before - && echo "out holds what it held"
cmp -s "$FIX/convert/llama.gguf" out/llama.gguf && echo "the inputs are intact"

# --model FILE.gguf is imported as tk-convert does, for this run only: the
# same continuation as the converted directory, and nothing left in TMPDIR
mkdir tmp && export TMPDIR=$PWD/tmp
tk-convert -q "$FIX/convert/llama.gguf" -o m --outtype f32 || exit 1
tk-generate --model "$FIX/convert/llama.gguf" --max-new-tokens 8 --json "the thin" > a.json || exit 2
tk-generate -q --model m --max-new-tokens 8 --json "the thin" > b.json || exit 3
cmp a.json b.json && echo "same as the converted directory"
ls tmp

# --device and TK_DEVICE on a machine without a GPU: cpu and auto are
# silent (auto computes on the CPU; no note on every call), cuda is an
# error that says what to do.  Skipped where a GPU is present.
command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 && { echo "a GPU is here" >&2; exit 77; }
m=$FIX/swa/model
unset TK_DEVICE
tk-generate --model "$m" --prompt-ids "1 2" --ids --max-new-tokens 2 --device cpu 2> err.cpu > out.cpu
echo "cpu: exit $?, $(wc -l < err.cpu) lines on stderr"
tk-generate --model "$m" --prompt-ids "1 2" --ids --max-new-tokens 2 2> err.auto > out.auto
echo "auto: exit $?, same tokens: $(cmp -s out.cpu out.auto && echo yes || echo no)"
echo "auto: $(wc -l < err.auto) lines on stderr"
TK_DEVICE=cuda tk-generate --model "$m" --prompt-ids "1 2" --ids --max-new-tokens 2 2> err.cuda
echo "cuda: exit $?"
grep -c 'use --device cpu\|no CUDA support' err.cuda
tk-train --device tpu --model "$m" --data x -o out 2> err.bad
echo "tpu: exit $?"
tk-merge --device cuda -m "$FIX/models/llama" -a "$FIX/lora/llama-qv" -o merged 2> err.merge
echo "merge cuda: exit $?, output: $(test -e merged && echo yes || echo no)"
grep -c 'use --device cpu\|no CUDA support' err.merge
tk-merge --device cpu -q -m "$FIX/models/llama" -a "$FIX/lora/llama-qv" -o merged
echo "merge cpu: exit $?, $(ls merged | wc -l) files"

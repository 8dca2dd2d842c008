# a binary shard is not written to a terminal (script(1) gives us one)
set -o pipefail
script -qec "tk-tokenize -t '$FIX/gpt2' '$FIX/input/lines.txt'" /dev/null | tr -d '\r'

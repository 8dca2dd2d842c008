# bad usage: exit 2, one line and a hint, nothing written
tk-quantize; echo "rc=$?"
tk-quantize "$FIX/models/llama"; echo "rc=$?"
tk-quantize "$FIX/models/llama" "$FIX/models/gpt2" -o q; echo "rc=$?"
tk-quantize "$FIX/models/llama" -o q --bnb-4bit-quant-type int4; echo "rc=$?"
tk-quantize "$FIX/models/llama" -o q --blocksize 48; echo "rc=$?"
tk-quantize "$FIX/models/llama" -o q --blocksize 8192; echo "rc=$?"
tk-quantize "$FIX/models/llama" -o q --load-in-8bit --bnb-4bit-use-double-quant; echo "rc=$?"
# the default blocksize, given: still a 4-bit option
tk-quantize "$FIX/models/llama" -o q --load-in-8bit --blocksize 64; echo "rc=$?"
tk-quantize "$FIX/models/llama" -o q --bnb-4bit-compute-dtype float64; echo "rc=$?"
tk-quantize "$FIX/models/llama" -o q --bogus; echo "rc=$?"
ls

# a llama.cpp-style GGUF (permuted q/k rows, BF16) to a model directory whose
# tokenizer gives the same ids as the GGUF's vocabulary; a GPT-2 file to BF16
tk-convert -q "$FIX/convert/llama.gguf" -o m; echo "rc=$?"
ls m
printf 'the thin winter\nan inn: ther!\n' > t.txt
tk-tokenize -q -t m --split-lines --ids t.txt
tk-tokenize -q -t "$FIX/convert/llama.gguf" --split-lines --ids t.txt
tk-convert "$FIX/convert/gpt2.gguf" -o g --outtype bf16; echo "rc=$?"
ls g
head -c 4000 g/model.safetensors | grep -ao '"dtype":"[A-Z0-9]*"' | sort | uniq -c

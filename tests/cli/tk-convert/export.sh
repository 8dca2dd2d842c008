# a model directory to GGUF (q8_0), and back: the imported model tokenizes
# as the original, and the file carries llama.cpp's names
tk-convert -q "$FIX/convert/llama.gguf" -o m; echo "rc=$?"
tk-convert m -o m.gguf --outtype q8_0; echo "rc=$?"
tk-convert -q m.gguf -o back; echo "rc=$?"
ls
ls back
printf 'the thin winter\nan inn: ther!\n' > t.txt
tk-tokenize -q -t m --split-lines --ids t.txt > a.ids
tk-tokenize -q -t back --split-lines --ids t.txt > b.ids
cmp a.ids b.ids && echo "same ids"
grep -ao 'blk\.0\.attn_[a-z]*\.weight' m.gguf
# a fixture model without a tokenizer.json: a warning, f16 into a named file
tk-convert "$FIX/models/gpt2" -o g.gguf --outtype f16 --name tiny-gpt2; echo "rc=$?"
grep -ao 'tiny-gpt2' g.gguf

# A SentencePiece-style tokenizer (Llama-2's byte-fallback BPE) exported as
# llama.cpp's "llama" vocabulary (scores from the merge ranks, byte tokens,
# the space prefix) and imported back: tk-tokenize gives the same ids with
# either tokenizer (llama.cpp itself is checked by make parity).
set -e
tk-convert -q "$FIX/generate/llama2" -o l2.gguf
tk-convert -q l2.gguf -o back
printf '%s\n' 'Hello world' 'naïve café: 3.14 ✓ 日本' '<s>special</s> and spaces' \
	'  two leading' 'tabs	and
newlines' > t.txt
tk-tokenize -q -t "$FIX/generate/llama2" --split-lines --ids t.txt > want
tk-tokenize -q -t back --split-lines --ids t.txt > got
cmp want got && wc -l < got

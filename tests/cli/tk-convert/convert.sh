# a llama.cpp-style GGUF (permuted q/k rows, BF16) to a model directory whose
# tokenizer gives the same ids as the GGUF's vocabulary; a GPT-2 file to BF16
tk-convert -q "$FIX/convert/llama.gguf" -o m; echo "rc=$?"
ls m
printf 'the thin winter\nan inn: ther!\n' > t.txt
tk-tokenize -q -t m --split-lines --ids t.txt > a.ids
tk-tokenize -q -t "$FIX/convert/llama.gguf" --split-lines --ids t.txt > b.ids
cmp a.ids b.ids && echo "llama.gguf: the directory's tokenizer.json gives the GGUF's ids"
tk-convert "$FIX/convert/gpt2.gguf" -o g --outtype bf16; echo "rc=$?"
ls g
head -c 4000 g/model.safetensors | grep -ao '"dtype":"[A-Z0-9]*"' | sort | uniq -c
# The expected ids come from a reference, not from tk: the tiny GPT-2 of
# convert/gpt2.gguf given llama.cpp's GPT-2 vocabulary (the tokenizer.* keys
# of gguf/ggml-vocab-gpt-2.gguf, 50257 tokens; embedding rows past the 97
# zero) is converted, and the tokenizer.json that tk-convert writes must
# give, for each of the 46 strings of llama.cpp's test-tokenizer-0
# (vectors/gpt-2.inp), the ids llama.cpp recorded (vectors/gpt-2.out).
python3 "$TK_ROOT/tests/cli/tk-convert/gguf-with-vocab.py" "$FIX/convert/gpt2.gguf" \
	"$FIX/gguf/ggml-vocab-gpt-2.gguf" v.gguf || exit 3
tk-convert -q v.gguf -o v --outtype f16; echo "rc=$?"
python3 - "$FIX/vectors/gpt-2.inp" <<'PY'
import json, sys
texts = open(sys.argv[1], encoding="utf-8").read().split("\n__ggml_vocab_test__\n")[:-1]
with open("vectors.jsonl", "w") as f:
    for t in texts:
        f.write(json.dumps({"text": t}) + "\n")
PY
sed 's/^ //' "$FIX/vectors/gpt-2.out" > want
for t in v v.gguf; do
	tk-tokenize -q -t $t --format jsonl --field text --ids --no-add-eos \
		--no-add-special-tokens vectors.jsonl > got
	diff want got > /dev/null && echo "$t: $(wc -l < got) strings, llama.cpp's ids"
done
# three of them, as llama.cpp recorded them (lines of gpt-2.out): ' Hello
# world', 'w048 7tuijk dsdfhu', 'нещо на Български'
sed -n '13p;20p;21p' got

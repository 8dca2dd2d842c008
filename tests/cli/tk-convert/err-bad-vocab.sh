# a GGUF whose vocabulary makes no tokenizer (a merge naming a token the
# vocabulary lacks) is refused at import, naming the file, and nothing is
# written: not a tokenizer.json that tk-tokenize and transformers refuse
# later.  The tiny GPT-2 of convert/gpt2.gguf with llama.cpp's GPT-2
# vocabulary, its first merge "Ġ t" made "Ġ \x01" (no token is a bare
# control byte in a byte-level vocabulary).
python3 "$TK_ROOT/tests/cli/tk-convert/gguf-with-vocab.py" "$FIX/convert/gpt2.gguf" \
	"$FIX/gguf/ggml-vocab-gpt-2.gguf" v.gguf || exit 3
tk-convert -q v.gguf -o ok; echo "intact: rc=$?"
python3 - <<'PY' || exit 3
import struct
d = open("v.gguf", "rb").read()
old = struct.pack("<Q", 4) + "\u0120 t".encode()
i = d.index(old)
d = d[:i] + struct.pack("<Q", 4) + "\u0120 \x01".encode() + d[i + len(old):]
open("bad.gguf", "wb").write(d)
PY
tk-convert -q bad.gguf -o m; echo "rc=$?"
ls

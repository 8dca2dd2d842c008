# A tied checkpoint that kept the shared tensor under the head's name only
# (lm_head.weight, no embedding): from_pretrained ties the embedding to it,
# and so does tk.  The fixture GPT-2 of tests/fixtures/train with its
# transformer.wte.weight renamed lm_head.weight gives the same greedy ids
# and log-probabilities as itself.
cp -r "$FIX/train/model" m
python3 - <<'PY' || exit 3
import json, struct
d = open("m/model.safetensors", "rb").read()
n = struct.unpack_from("<Q", d)[0]
h = json.loads(d[8:8 + n])
h["lm_head.weight"] = h.pop("transformer.wte.weight")
b = json.dumps(h, separators=(",", ":")).encode()
b += b" " * (-len(b) % 8)
open("m/model.safetensors", "wb").write(struct.pack("<Q", len(b)) + b + d[8 + n:])
PY
grep -c '"transformer.wte.weight"' m/model.safetensors
for d in "$FIX/train/model" m; do
	tk-generate -q --model "$d" --prompt-ids "5 17 42 7" --max-new-tokens 6 --json >"$(basename "$d").json" || exit 1
done
cmp model.json m.json && echo "the same tokens and log-probabilities"

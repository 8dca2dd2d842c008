# A Gemma 3 GGUF as llama.cpp writes it (convert/gemma3.gguf, the metadata
# of the real Gemma 3 270M Q4_K_M file, from tests/parity/gen-gemma3-gguf-
# fixture.py): the config.json is the one transformers' GGUF loader builds
# (convert/gemma3.config.json, written by transformers), the local layers'
# rope base, the 5:1 sliding pattern included, which the file does not
# carry; query_pre_attn_scalar is llama.cpp's head_dim (transformers puts
# its class default 256 there whatever the file; Gemma 3 270M has head_dim
# 256, where both agree); every norm comes back with llama.cpp's + 1 taken
# off (the fixture stores w + 1, w = (i % 7 - 3) / 8, exact in fp32).
tk-convert -q "$FIX/convert/gemma3.gguf" -o m; echo "rc=$?"
python3 - m "$FIX/convert/gemma3.config.json" <<'PY'
import json, struct, sys
mine = json.load(open(sys.argv[1] + "/config.json"))
want = json.load(open(sys.argv[2]))
# what transformers' PretrainedConfig adds to every config, and what it
# leaves unset for a GGUF; unk_token_id is in tk's tokenizer files
skip = {"_sliding_window_pattern", "architectures", "chunk_size_feed_forward", "id2label",
        "label2id", "is_encoder_decoder", "output_attentions", "output_hidden_states",
        "return_dict", "torch_dtype", "dtype", "problem_type", "unk_token_id",
        "use_bidirectional_attention"}
want["query_pre_attn_scalar"] = want["head_dim"]
bad = [k for k in sorted(set(mine) | set(want)) if k not in skip and mine.get(k) != want.get(k)
       and not (k == "rms_norm_eps" and struct.pack("<f", mine[k]) == struct.pack("<f", want[k]))]
print("config: differs in", bad if bad else "nothing")
print("layer_types:", " ".join(t[0] for t in mine["layer_types"]),
      "rope:", {k: v["rope_theta"] for k, v in mine["rope_parameters"].items()})
d = open(sys.argv[1] + "/model.safetensors", "rb").read()
n = struct.unpack_from("<Q", d)[0]
head = json.loads(d[8:8 + n])
norms = [k for k in head if k.endswith("norm.weight")]
wrong = []
for k in norms:
    a, b = head[k]["data_offsets"]
    v = struct.unpack_from(f"<{(b - a) // 4}f", d, 8 + n + a)
    if head[k]["dtype"] != "F32" or any(x != (i % 7 - 3) / 8 for i, x in enumerate(v)):
        wrong.append(k)
print(f"norms: {len(norms)}, not w: {wrong}")
PY
# its SentencePiece vocabulary (byte fallback, no space prefix) gives the ids
# of transformers' GGUF tokenizer (convert/gemma3.ids, BOS included), from the
# directory and from the GGUF itself
python3 - <<'PY'
import json
texts = ["the thin winter", "an inn: ther!", "  he and  she\tsaid", "héllo wörld ☃",
         "<bos>the<eos>"]
with open("t.jsonl", "w", encoding="utf-8") as f:
    for t in texts:
        f.write(json.dumps({"text": t}) + "\n")
PY
for t in m "$FIX/convert/gemma3.gguf"; do
	tk-tokenize -q -t "$t" --no-add-eos --ids t.jsonl > got
	diff "$FIX/convert/gemma3.ids" got > /dev/null && echo "$(basename "$t"): $(wc -l < got) texts, transformers' ids"
done

# A checkpoint's BF16 and F16 weight matrices stay 16-bit in tk-generate's
# memory and are widened to fp32 in the matmuls (tk_model_load_ex,
# TK_LOAD_HALF): the ids and log-probabilities are those of the same model
# stored as F32 (widened here by python3), for every family fixture
# (GPT-2's Conv1D transposed, tied and untied heads), greedy (batch 1) and
# three sampled sequences (batch 3), one prompt long enough for the prompt
# pass's tiled matmuls; and with an adapter whose modules_to_save replace
# the held lm head (the model's 16-bit tensors are widened first).
for m in gpt2 llama qwen2 qwen3 phi3 gemma2 gemma3 smollm3; do
	python3 - "$FIX/models/$m" "$m-f32" <<'PY' || exit 1
import json, os, shutil, struct, sys
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst)
with open(os.path.join(src, "model.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    head = json.loads(f.read(n))
    data = f.read()
out, blobs, off, half = {}, [], 0, 0
for name, t in head.items():
    if name == "__metadata__":
        out[name] = t
        continue
    b = data[t["data_offsets"][0]:t["data_offsets"][1]]
    if t["dtype"] in ("BF16", "F16"):
        half += 1
        k = len(b) // 2
        if t["dtype"] == "BF16":
            b = b"".join(b"\0\0" + b[2 * i:2 * i + 2] for i in range(k))
        else:
            b = struct.pack("<%df" % k, *struct.unpack("<%de" % k, b))
        t = dict(t, dtype="F32")
    out[name] = dict(t, data_offsets=[off, off + len(b)])
    blobs.append(b)
    off += len(b)
assert half, "no 16-bit tensors in " + src
h = json.dumps(out).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
	printf '1 2 3 4 5 6 7 8 9 10 11 12 13\n5\n7 3 9 11 2\n' > ids.txt
	for dir in "$FIX/models/$m" "$m-f32"; do
		while read -r ids; do # greedy (batch 1), then 3 sampled (batch 3)
			for o in '' '--do-sample --seed 5 --num-return-sequences 3'; do
				# shellcheck disable=SC2086
				tk-generate -q --model "$dir" --max-new-tokens 6 --prompt-ids "$ids" \
					--json $o || exit 1
			done
		done < ids.txt > "$(basename "$dir").out"
	done
	if [ "$m" = llama ]; then # an adapter replacing the held lm head (modules_to_save)
		for dir in "$FIX/models/$m" "$m-f32"; do
			tk-generate -q --model "$dir" --adapter "$FIX/lora/llama-all" --max-new-tokens 6 \
				--prompt-ids "$(head -1 ids.txt)" --json >> "$(basename "$dir").out" || exit 1
		done
	fi
	if cmp -s "$m.out" "$m-f32.out"; then
		echo "$m: same, $(wc -l < "$m.out") sequences"
	else
		echo "$m: differs"
		diff "$m.out" "$m-f32.out" | head -4
	fi
done

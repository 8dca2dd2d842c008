# -a DIR:WEIGHT scales the adapter: with weight w every merged tensor must be
# base + w * scale * B A.  The reference is peft's merge_and_unload() at
# weight 1 (merged.NAME in tests/fixtures/lora/NAME.ref.safetensors, made by
# tests/parity/gen-lora-fixtures.py): expected = base + w * (peft - base),
# computed here in Python from the files alone, elementwise within 1e-5
# (absolute, plus 1e-5 relative; fp32 merge of a BF16/F16 base: the errors
# are rounding, ~1e-7, while w * (peft - base) is ~1e-2).  Every other
# tensor must be the base's, bit for bit.  llama-qv (q/v) and gpt2-default
# (GPT-2's fused Conv1D c_attn, stored transposed) carry no biases or
# modules_to_save, which replace the base's whatever the weight.
set -e
check() { # base-dir adapter-name weight merged-dir
	python3 - "$1/model.safetensors" "$FIX/lora/$2.ref.safetensors" "$3" \
		"$4/model.safetensors" <<'PY'
import json, struct, sys

def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in head.items():
        if k == "__metadata__" or (path.endswith(".ref.safetensors")
                                   and not k.startswith("merged.")):
            continue
        a, b = v["data_offsets"]
        raw = data[a:b]
        dt = v["dtype"]
        if dt == "F32":
            x = struct.unpack("<%df" % (len(raw) // 4), raw)
        elif dt == "F16":
            x = struct.unpack("<%de" % (len(raw) // 2), raw)
        elif dt == "BF16":
            u = struct.unpack("<%dH" % (len(raw) // 2), raw)
            x = struct.unpack("<%df" % len(u), struct.pack("<%dI" % len(u), *[h << 16 for h in u]))
        else:
            sys.exit("%s: %s: dtype %s" % (path, k, dt))
        out[k] = (v["shape"], x)
    return out

base, ref, merged = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[4])
w = float(sys.argv[3])
assert set(base) == set(merged), "tensor names differ"
n_merged = n_same = 0
worst = 0.0
for k in sorted(base):
    shape, b = base[k]
    mshape, m = merged[k]
    assert shape == mshape, "%s: shape %s, base %s" % (k, mshape, shape)
    if "merged." + k not in ref:
        assert m == b, "%s: not adapted, yet changed" % k
        n_same += 1
        continue
    p = ref["merged." + k][1]
    big = max(abs(pi - bi) for pi, bi in zip(p, b))
    assert big > 1e-3, "%s: peft's merge barely changes it (%g)" % (k, big)
    for i, (bi, pi, mi) in enumerate(zip(b, p, m)):
        want = bi + w * (pi - bi)
        err = abs(mi - want)
        worst = max(worst, err)
        if err > 1e-5 + 1e-5 * abs(want):
            sys.exit("%s[%d]: %.8g, want base %.8g + %g * (peft %.8g - base) = %.8g"
                     % (k, i, mi, bi, w, pi, want))
    n_merged += 1
print("w=%g: %d tensors = base + w * (peft - base) within 1e-5, %d unchanged"
      % (w, n_merged, n_same))
PY
}
for w in 0.7 -1.5 0; do
	tk-merge -q -m "$FIX/models/llama" -a "$FIX/lora/llama-qv:$w" -o "l$w" --dtype float32
	check "$FIX/models/llama" llama-qv "$w" "l$w"
done
tk-merge -q -m "$FIX/models/gpt2" -a "$FIX/lora/gpt2-default:0.25" -o g --dtype float32
check "$FIX/models/gpt2" gpt2-default 0.25 g
# two adapters on the same modules add up: 0.5 + 0.25 of the same one
tk-merge -q -m "$FIX/models/llama" -a "$FIX/lora/llama-qv:0.5" -a "$FIX/lora/llama-qv:0.25" \
	-o two --dtype float32
check "$FIX/models/llama" llama-qv 0.75 two

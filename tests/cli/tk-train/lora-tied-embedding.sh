# --modules-to-save of the token embedding that GPT-2's lm_head is tied to.
# Without --ensure-weight-tying it is refused (peft's default trains a copy
# for the input only and keeps the head on the original weights, which tk
# does not do), and nothing is written.  With it the one embedding trains
# for both (peft's ensure_weight_tying=True): adapter_config.json says so,
# the file holds the embedding and, as peft saves it, the head's copy, and
# the adapter gives the same tokens through tk-generate --adapter as merged.
args="--model $FIX/train/model --data $FIX/train/blocks --lora-r 4 --max-steps 3 -q"
tk-train $args --modules-to-save wte -o no
echo "without: exit $?"
[ -e no ] && echo "no was left behind"
tk-train $args --modules-to-save wte --ensure-weight-tying --learning-rate 0.05 -o ad >/dev/null
echo "with: exit $?"
grep '"ensure_weight_tying"' ad/adapter_config.json
hlen=$(od -An -tu8 -N8 ad/adapter_model.safetensors | tr -d ' ')
head -c $((8 + hlen)) ad/adapter_model.safetensors | tail -c "$hlen" |
	grep -o '"base_model\.model\.[a-z_.]*\(wte\|lm_head\)\.weight"' | sort
tk-merge -q --model "$FIX/train/model" --adapter ad -o merged
echo "merge: exit $?"
a=$(tk-generate -q --model "$FIX/train/model" --adapter ad --prompt-ids "5 17 200 33" --max-new-tokens 8 --ids)
b=$(tk-generate -q --model merged --prompt-ids "5 17 200 33" --max-new-tokens 8 --ids)
[ -n "$a" ] && [ "$a" = "$b" ] && echo "generate: the adapter's tokens are the merge's"
base=$(tk-generate -q --model "$FIX/train/model" --prompt-ids "5 17 200 33" --max-new-tokens 8 --ids)
[ "$a" != "$base" ] && echo "and not the base model's"
# an adapter that saves the tied head apart (peft's modules_to_save
# lm_head without ensure_weight_tying): refused, naming what it does
python3 - <<'PY' || exit 3
import json
c = json.load(open("ad/adapter_config.json"))
c["ensure_weight_tying"], c["modules_to_save"] = False, ["lm_head"]
json.dump(c, open("ad/adapter_config.json", "w"), indent=2)
PY
tk-merge -q --model "$FIX/train/model" --adapter ad -o head 2>&1 | sed 's/^tk-merge: [^ ]*adapter_model.safetensors: /tk-merge: ADAPTER: /'
echo "head apart: exit ${PIPESTATUS[0]}"

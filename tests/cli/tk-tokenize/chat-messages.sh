# JSONL conversations ("messages") as TRL's SFTTrainer tokenizes them
# (gen-chat-fixtures.py: chat-msgs.json, "train"): the ids of
# apply_chat_template(tokenize=True) for the three template families, every
# token in the loss; with --assistant-only-loss the assistant_masks of
# return_assistant_tokens_mask over TRL-style {% generation %} markers.
set -e
for model in chatml llama2 llama3; do
	python3 - "$FIX/generate/chat-msgs.json" "$model" <<'PY'
import json, sys
want_all, want_asst = open("want.all", "w"), open("want.asst", "w")
with open("conv.jsonl", "w") as f:
    for c in json.load(open(sys.argv[1]))["cases"]:
        if c["model"] != sys.argv[2]:
            continue
        t = c["train"]
        f.write(json.dumps({"id": 7, "messages": c["messages"]}) + "\n")
        ids = " ".join(map(str, t["ids"]))
        want_all.write(ids + "\n" + " ".join("1" for _ in t["ids"]) + "\n")
        if any(t["assistant_masks"]):
            want_asst.write(ids + "\n" + " ".join(map(str, t["assistant_masks"])) + "\n")
PY
	tk-tokenize -q -t "$FIX/generate/$model" --ids --show-mask conv.jsonl > got.all
	cmp got.all want.all
	grep -E '"role": "assistant"' conv.jsonl > asst.jsonl
	tk-tokenize -q -t "$FIX/generate/$model/tokenizer.json" --ids --show-mask \
		--assistant-only-loss --messages-field messages asst.jsonl > got.asst
	cmp got.asst want.asst
	echo "$model: $(($(wc -l < got.all) / 2)) conversations, $(($(wc -l < got.asst) / 2)) with assistant masks"
done
# TRL's conversational prompt-completion form ("prompt" and "completion"
# lists): the ids and completion_mask SFTTrainer makes ("pair")
for model in chatml llama2 llama3; do
	python3 - "$FIX/generate/chat-msgs.json" "$model" <<'PY'
import json, sys
with open("pc.jsonl", "w") as f, open("want.pc", "w") as w:
    for c in json.load(open(sys.argv[1]))["cases"]:
        if c["model"] == sys.argv[2] and "pair" in c:
            p = c["pair"]
            f.write(json.dumps({"prompt": p["prompt"], "completion": p["completion"]}) + "\n")
            w.write(" ".join(map(str, p["ids"])) + "\n" + " ".join(map(str, p["completion_mask"])) + "\n")
PY
	tk-tokenize -q -t "$FIX/generate/$model" --ids --show-mask pc.jsonl > got.pc
	cmp got.pc want.pc
	echo "$model prompt-completion: $(($(wc -l < got.pc) / 2))"
done
# a shard keeps the mask: --stats counts the masked tokens
tk-tokenize -q -t "$FIX/generate/chatml" --assistant-only-loss asst.jsonl -o c.tks
tk-tokenize -q -t "$FIX/generate/chatml" --stats c.tks | grep -E 'documents|masked'

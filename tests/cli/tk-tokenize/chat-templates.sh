# Real chat templates (tests/fixtures/chat-templates, tokenized.json): JSONL
# lines with "tools" and "chat_template_kwargs" tokenized as TRL's
# SFTTrainer does with the chatml fixture's tokenizer: the ids of
# apply_chat_template(tokenize=True), every token in the loss; with
# --assistant-only-loss the ids and assistant_masks of the training
# template TRL swaps in (get_training_chat_template), or of the template's
# own {% generation %}.  A template's raise_exception stops the run.
set -e
CT=$FIX/chat-templates
for name in trl-qwen3 qwen2.5 trl-llama3 trl-gemma trl-phi3 trl-qwen3-training; do
	python3 - "$CT" "$name" "$FIX/generate/chatml/tokenizer.json" <<'PY'
import json, os, sys
ct, name, tokjson = sys.argv[1:]
os.makedirs("m", exist_ok=True)
cases = [x for x in json.load(open(ct + "/tokenized.json"))["cases"] if x["template"] == name]
# the special tokens the reference tokenizer added, as save_pretrained writes them
tok = json.load(open(tokjson))
have = {t["content"] for t in tok["added_tokens"]}
for content, i in sorted(cases[0]["added_tokens"].items(), key=lambda kv: kv[1]):
    if content not in have:
        tok["added_tokens"].append({"id": i, "content": content, "single_word": False, "lstrip": False,
                                    "rstrip": False, "normalized": False, "special": True})
json.dump(tok, open("m/tokenizer.json", "w"))
with open("m/tokenizer_config.json", "w") as f, open("want.all", "w") as wa, \
        open("want.asst", "w") as ws, open("conv.jsonl", "w") as c, open("bad.jsonl", "w") as b:
    cfg = dict(cases[0]["special_tokens"])
    cfg["chat_template"] = open("%s/templates/%s.jinja" % (ct, name)).read()
    json.dump(cfg, f)
    for x in cases:
        if "error" in x:
            b.write(json.dumps(x["line"]) + "\n")
            continue
        c.write(json.dumps(x["line"]) + "\n")
        wa.write(" ".join(map(str, x["ids"])) + "\n" + " ".join("1" for _ in x["ids"]) + "\n")
        ws.write(" ".join(map(str, x["train_ids"])) + "\n" + " ".join(map(str, x["assistant_masks"])) + "\n")
PY
	tk-tokenize -q -t m --ids --show-mask conv.jsonl > got.all
	cmp got.all want.all
	tk-tokenize -q -t m --ids --show-mask --assistant-only-loss conv.jsonl > got.asst
	cmp got.asst want.asst
	echo "$name: $(($(wc -l < got.all) / 2)) conversations"
	if [ -s bad.jsonl ]; then
		tk-tokenize -q -t m --ids bad.jsonl || echo "exit $?"
	fi
	rm -rf m
done

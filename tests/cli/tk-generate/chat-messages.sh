# JSONL "messages" conversations (gen-chat-fixtures.py: chat-msgs.json) give
# the same tokens as their rendered ids given as --prompt-ids, for the three
# template families; --chat is not needed for "messages".
set -e
for model in chatml llama2 llama3; do
	python3 - "$FIX/generate/chat-msgs.json" "$model" >msgs.jsonl <<'PY'
import json, sys
for c in json.load(open(sys.argv[1]))["cases"]:
    if c["model"] == sys.argv[2]:
        print(json.dumps({"messages": c["messages"]}))
PY
	python3 - "$FIX/generate/chat-msgs.json" "$model" >ids.txt <<'PY'
import json, sys
for c in json.load(open(sys.argv[1]))["cases"]:
    if c["model"] == sys.argv[2]:
        print(" ".join(map(str, c["ids"])))
PY
	tk-generate --model "$FIX/generate/$model" --max-new-tokens 6 --ids --prompt-file msgs.jsonl >got
	: >want
	while read -r ids; do
		tk-generate --model "$FIX/generate/$model" --max-new-tokens 6 --ids --prompt-ids "$ids" >>want
	done <ids.txt
	cmp got want
	echo "$model $(wc -l <got)"
done

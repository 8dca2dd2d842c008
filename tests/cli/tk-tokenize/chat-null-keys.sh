# transformers drops a message's keys whose value is null before rendering
# (an OpenAI-style turn has "content": null beside its tool calls), so a
# null key is a key left out, where tk rendered "None" and took it as
# defined.  The expected text is what transformers 5.24 renders:
#   AutoTokenizer.from_pretrained(t).apply_chat_template([{"role": "user",
#   "content": "x"}, {"role": "assistant", "content": None, "tool_calls":
#   None}, {"role": "user", "content": "y"}], tokenize=False)
# And a chat_template.jinja beside tokenizer_config.json's chat_template
# wins, as from_pretrained takes it.
mkdir t && cp "$FIX/generate/chatml/tokenizer.json" t/
cat >t/tokenizer_config.json <<'J'
{"chat_template": "{% for m in messages %}[{{ m.role }}:{{ m.content }}|{{ \"tool_calls\" if m.tool_calls is defined else \"\" }}]{% endfor %}"}
J
echo '{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":null},{"role":"user","content":"y"}]}' >c.jsonl
tk-tokenize -q -t t c.jsonl -o c.tks || exit 1
tk-tokenize -q -t t --decode c.tks
printf 'FROM THE FILE' >t/chat_template.jinja
echo '{"messages":[{"role":"user","content":"x"}]}' >f.jsonl
tk-tokenize -q -t t f.jsonl -o f.tks || exit 1
tk-tokenize -q -t t --decode f.tks
# transformers 5 gives a template the model's own special tokens too: any
# other key of tokenizer_config.json ending in _token, and the named ones
# of extra_special_tokens ([<img>][<boi>] with transformers 5.24)
rm t/chat_template.jinja
echo '{"chat_template": "[{{ image_token }}][{{ boi_token }}]", "image_token": "<img>", "extra_special_tokens": {"boi_token": "<boi>"}}' >t/tokenizer_config.json
tk-tokenize -q -t t f.jsonl -o g.tks || exit 1
tk-tokenize -q -t t --decode g.tks

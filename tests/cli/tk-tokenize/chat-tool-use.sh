# A conversation given tools renders with the template named "tool_use"
# where the model has one, as transformers' get_chat_template chooses:
# tokenizer_config.json's list of {name, template}, or the newer layout's
# additional_chat_templates/tool_use.jinja beside chat_template.jinja;
# without tools, the default.
mkdir t && cp "$FIX/generate/chatml/tokenizer.json" t/
echo '{"chat_template": [{"name": "default", "template": "DEFAULT"}, {"name": "tool_use", "template": "TOOL_USE"}]}' >t/tokenizer_config.json
echo '{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}' >tools.jsonl
echo '{"messages": [{"role": "user", "content": "x"}]}' >plain.jsonl
render() {
	tk-tokenize -q -f -t t "$1" -o "$1.tks" && tk-tokenize -q -t t --decode "$1.tks"
}
render tools.jsonl && render plain.jsonl || exit 1
echo '{}' >t/tokenizer_config.json
printf 'FILE DEFAULT' >t/chat_template.jinja
mkdir t/additional_chat_templates && printf 'FILE TOOL_USE' >t/additional_chat_templates/tool_use.jinja
render tools.jsonl && render plain.jsonl || exit 1

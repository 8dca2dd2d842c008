# The base's tokenizer, generation and chat template files go along with
# the merged model, also requantized (the one list, formats/hf-dir.c):
# chat_template.jinja as transformers >= 4.43 saves it, chat_template.json
# as processors do.  Other files, and a directory under a side file's
# name, stay behind.
cp -r "$FIX/models/llama" base
echo '{{ messages }}' > base/chat_template.jinja
echo '{"chat_template": "{{ messages }}"}' > base/chat_template.json
echo '{}' > base/special_tokens_map.json
echo notes > base/README.md
mkdir base/vocab.json
tk-merge -q -m base -a "$FIX/lora/llama-qv" -o m; echo "rc=$?"
ls m
cmp base/chat_template.jinja m/chat_template.jinja && cmp base/chat_template.json \
	m/chat_template.json && echo same
tk-merge -q -m base -a "$FIX/lora/llama-qv" -o q --requantize nf4; echo "rc=$?"
ls q
ls

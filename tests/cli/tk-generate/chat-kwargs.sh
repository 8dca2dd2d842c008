# What reaches the chat template: --chat-template-kwargs, a JSONL line's
# "chat_template_kwargs" over them and its "tools", strftime_now's date
# from SOURCE_DATE_EPOCH; the template shows them through raise_exception,
# whose message is the error.  Malformed kwargs are a usage error.
cp -r "$FIX/generate/chatml" m && chmod u+w m/tokenizer_config.json
cat > m/tokenizer_config.json <<'JSON'
{"eos_token": "<|im_end|>", "chat_template": "{{ raise_exception('thinking ' ~ enable_thinking ~ ', ' ~ ((tools or []) | length) ~ ' tools, ' ~ strftime_now('%Y-%m-%d') ~ ', ' ~ messages[-1].content) }}"}
JSON
export SOURCE_DATE_EPOCH=1767225600
tk-generate --model m --chat --chat-template-kwargs '{"enable_thinking": false}' hi
echo "exit $?"
printf '%s\n' '{"messages": [{"role": "user", "content": "yo"}], "tools": [{"type": "function"}, {}], "chat_template_kwargs": {"enable_thinking": true}}' |
	tk-generate --model m --chat-template-kwargs '{"enable_thinking": false}'
echo "exit $?"
tk-generate --model m --chat --chat-template-kwargs '[1]' hi
echo "exit $?"
SOURCE_DATE_EPOCH=soon tk-generate --model m --chat hi
echo "exit $?"

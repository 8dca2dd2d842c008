# A "messages" line that is not a conversation, a message without content
# (an error of the template, as in apply_chat_template), turns out of the
# order a template demands (its raise_exception), a model without a chat
# template.
printf '{"messages": "hi"}\n' | tk-generate --model "$FIX/generate/chatml" --ids
echo "exit $?"
printf '{"messages": [{"role": "user"}]}\n' | tk-generate --model "$FIX/generate/chatml" --ids
echo "exit $?"
cp -r "$FIX/generate/llama2" l && chmod u+w l/tokenizer_config.json
printf '{"bos_token": "<s>", "eos_token": "</s>"}' > l/tokenizer_config.json
cp "$FIX/chat-templates/templates/llama-2-chujiezheng.jinja" l/chat_template.jinja
printf '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}\n' |
	tk-generate --model l --ids
echo "exit $?"
cp -r "$FIX/generate/chatml" m && chmod u+w m/tokenizer_config.json
printf '{"eos_token": "<|im_end|>"}' > m/tokenizer_config.json
printf '{"messages": [{"role": "user", "content": "a"}]}\n' | tk-generate --model m --ids
echo "exit $?"

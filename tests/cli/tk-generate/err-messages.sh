# A "messages" line that is not a conversation, a message without content,
# Llama-2 turns out of order, a model without a chat template.
printf '{"messages": "hi"}\n' | tk-generate --model "$FIX/generate/chatml" --ids
echo "exit $?"
printf '{"messages": [{"role": "user"}]}\n' | tk-generate --model "$FIX/generate/chatml" --ids
echo "exit $?"
printf '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}\n' |
	tk-generate --model "$FIX/generate/llama2" --ids
echo "exit $?"
cp -r "$FIX/generate/chatml" m && chmod u+w m/tokenizer_config.json
printf '{"eos_token": "<|im_end|>"}' > m/tokenizer_config.json
printf '{"messages": [{"role": "user", "content": "a"}]}\n' | tk-generate --model m --ids
echo "exit $?"

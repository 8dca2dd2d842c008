# A chat template tk does not recognise.
cp -r "$FIX/generate/chatml" m && chmod u+w m/tokenizer_config.json
printf '{"chat_template": "{{ messages }}"}' > m/tokenizer_config.json
tk-generate --model m --chat hi

# --chat with a model directory that has no chat template.
cp -r "$FIX/generate/chatml" m && chmod u+w m/tokenizer_config.json
printf '{"eos_token": "<|im_end|>"}' > m/tokenizer_config.json
tk-generate --model m --chat hi

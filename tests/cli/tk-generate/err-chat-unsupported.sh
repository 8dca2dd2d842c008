# A chat template outside tk's Jinja subset (a filter tk does not have): an
# error naming the template's file and line, never a different prompt.
cp -r "$FIX/generate/chatml" m && chmod u+w m/tokenizer_config.json
printf '{"chat_template": "{%% for m in messages %%}\\n{{ m.content | truncate(9) }}{%% endfor %%}"}' > m/tokenizer_config.json
tk-generate --model m --chat hi

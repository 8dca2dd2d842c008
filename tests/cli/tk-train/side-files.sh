# The model directory's tokenizer, generation and chat template files go
# into each checkpoint and OUT, chat_template.json too, and trainer_state.json
# records their names; other files stay behind.
cp -r "$FIX/train/model" model
echo '{{ messages }}' > model/chat_template.jinja
echo '{"chat_template": "{{ messages }}"}' > model/chat_template.json
echo notes > model/README.md
tk-train --model model --data "$FIX/train/blocks" --max-steps 2 --save-steps 2 --threads 1 -q \
	-o out >/dev/null; echo "rc=$?"
ls out/checkpoint-2
tr -d ' \n\t' < out/checkpoint-2/trainer_state.json | grep -o '"files":\[[^]]*\]'
cmp model/chat_template.json out/chat_template.json && echo same

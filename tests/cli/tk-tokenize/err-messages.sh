# Conversations that cannot be tokenized: no chat template beside the
# tokenizer, a field that is not a list of messages, a message without
# content (an error of the template, as in apply_chat_template), --assistant-only-loss on plain text and on a conversation with
# no assistant turn, a messages field in CSV.  No output file is left.
m=$FIX/generate/chatml
printf '{"messages": [{"role": "user", "content": "hi"}]}\n' > c.jsonl
tk-tokenize -q -t "$FIX/gpt2" c.jsonl -o out.tks; echo "exit $?"
printf '{"messages": "hi"}\n' > s.jsonl
tk-tokenize -q -t "$m" s.jsonl -o out.tks; echo "exit $?"
printf '{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [{"role": "user"}]}\n' > n.jsonl
tk-tokenize -q -t "$m" n.jsonl -o out.tks; echo "exit $?"
printf '{"text": "hi"}\n' > t.jsonl
tk-tokenize -q -t "$m" --assistant-only-loss t.jsonl -o out.tks; echo "exit $?"
tk-tokenize -q -t "$m" --assistant-only-loss c.jsonl -o out.tks; echo "exit $?"
printf 'messages\nhi\n' > c.csv
tk-tokenize -q -t "$m" --messages-field messages c.csv -o out.tks; echo "exit $?"
test -e out.tks || echo "no out.tks"

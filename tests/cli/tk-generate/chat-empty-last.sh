# A conversation whose last message is empty renders to a prompt all the
# same (the template's turn markers), as apply_chat_template renders it:
# it generates, where a plain empty prompt is an error (err-empty-prompt).
echo '{"messages":[{"role":"user","content":""}]}' |
	tk-generate -q --model "$FIX/generate/chatml" --ids --max-new-tokens 3 --prompt-file - >out
echo "exit $?"
[ -s out ] && echo "ids out"

# Blocks made with another tokenizer (GPT-2's) than the model's: the message
# names both fingerprints and nothing is left behind.
tk-tokenize -q -t "$FIX/gpt2" --split-lines "$FIX/train/text.txt" -o docs.tks || exit 99
tk-pack -q --seq-len 24 -o blocks docs.tks || exit 99
tk-train --model "$FIX/train/model" --data blocks -o out
rc=$?
ls
exit $rc

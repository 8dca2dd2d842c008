# A model without a tokenizer (vocabulary of 97) and blocks with larger ids.
tk-train --model "$FIX/models/gpt2" --data "$FIX/train/blocks" -o out
rc=$?
ls
exit $rc

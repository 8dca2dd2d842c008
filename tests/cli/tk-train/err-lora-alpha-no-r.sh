# --lora-alpha (or dropout, bias) without --lora-r is a usage error rather
# than a silent full fine-tune.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --lora-alpha 16
echo "exit $?"
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --lora-dropout 0.1
echo "exit $?"
test -e out && echo "out was made"
exit 0

# LoRA options without --lora-r are bad usage, not a silent full fine-tune,
# also when the value given is the default (what was given counts, not the
# value).
for opt in "--lora-target-modules c_attn" --use-rslora --use-dora "--modules-to-save wte" \
	"--lora-alpha 8" "--lora-dropout 0" "--lora-bias none" --no-use-rslora; do
	tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" $opt --max-steps 2 -q -o out
	echo "$opt: exit $?"
	[ -e out ] && echo "out was left behind"
done
exit 0

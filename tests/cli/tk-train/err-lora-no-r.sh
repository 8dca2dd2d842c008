# LoRA options without --lora-r are bad usage, not a silent full fine-tune.
for opt in "--lora-target-modules c_attn" --use-rslora --use-dora "--modules-to-save wte"; do
	tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" $opt --max-steps 2 -q -o out
	echo "$opt: exit $?"
	[ -e out ] && echo "out was left behind"
done
exit 0

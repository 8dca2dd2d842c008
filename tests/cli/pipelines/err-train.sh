# A failing training stage stops csv-to-adapter after the stages before it,
# with tk-train's message; no adapter directory is made, and a rerun with
# the mistake fixed redoes only the training.
P=$TK_ROOT/pipelines
{ echo quote; sed 's/"/""/g; s/.*/"&"/' "$FIX/train/text.txt"; } > q.csv
"$P/csv-to-adapter" q.csv quote "$FIX/train/model" ad --seq-len 24 -- --max-steps 2 \
	--lora-target-modules q_proj > out 2> err
echo "exit $?"
tail -3 err
grep '^== ' out
[ -e ad ] && echo "ad exists" || echo "no ad"
ls ad.work ad.work/stamps
"$P/csv-to-adapter" q.csv quote "$FIX/train/model" ad --seq-len 24 -- --max-steps 2 \
	--lora-target-modules c_attn > out 2> err
echo "exit $?"
grep '^== ' out | grep -v '^== plot'
[ -f ad/adapter_model.safetensors ] && echo "adapter"

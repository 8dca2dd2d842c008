# experiment.mk with LRS: one run directory per learning rate, sharing the
# tokens and blocks, and a summary table of eval loss per run.
{ echo quote; sed 's/"/""/g; s/.*/"&"/' "$FIX/train/text.txt"; } > q.csv
make --no-print-directory -f "$TK_ROOT/pipelines/experiment.mk" MODEL="$FIX/train/model" \
	DATA=q.csv COLUMN=quote OUT=exp SEQ_LEN=24 EVAL_FRACTION=0.1 STEPS=3 LOGGING_STEPS=3 \
	PROMPTS=The SAMPLE_TOKENS=2 LRS="1e-3 5e-3" > out 2> err || { echo "sweep failed: $?"; cat err; }
grep '^== run\|^tk-tokenize\|^tk-pack' out | sed "s|$FIX/|FIX/|"
sed -E 's/[0-9]+\.[0-9]+/N/g; s/ +/ /g' exp/summary.txt
grep -o 'learning-rate [0-9e.-]*' out
ls exp

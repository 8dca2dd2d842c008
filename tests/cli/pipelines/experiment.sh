# experiment.mk: the first run makes every target; a second run with the
# same variables does nothing (make -q agrees); a new LR redoes the
# training and what follows it, not the tokens or the blocks.
{ echo quote; sed 's/"/""/g; s/.*/"&"/' "$FIX/train/text.txt"; } > q.csv
mk() {
	make --no-print-directory -f "$TK_ROOT/pipelines/experiment.mk" MODEL="$FIX/train/model" \
		DATA=q.csv COLUMN=quote OUT=exp SEQ_LEN=24 EVAL_FRACTION=0.1 STEPS=4 LOGGING_STEPS=2 \
		PROMPTS='A bug|The' SAMPLE_TOKENS=4 "$@"
}
tools() { grep -o '^tk-[a-z]*\( --eval-only\)*' "$1" | sort | uniq -c | sed 's/^ *//'; }
mk LR=1e-3 > out1 2> err1 || { echo "first run failed: $?"; cat err1; }
tools out1
ls exp exp/run | grep -v 'loss.png'
grep -c '^A bug\|^The' exp/run/samples.txt
grep -o '"eval_loss": *[0-9.]*' exp/run/eval.json | sed 's/[0-9.]*$/N/'
mk LR=1e-3 -q; echo "make -q, same LR: $?"
mk LR=1e-3 > out2 2> err2; echo "rerun: exit $?"; cat out2 err2
mk LR=2e-3 -q; echo "make -q, new LR: $?"
cp -p exp/docs.tks docs.before
mk LR=2e-3 > out3 2> err3 || { echo "LR run failed: $?"; cat err3; }
tools out3
[ exp/docs.tks -nt docs.before ] || [ docs.before -nt exp/docs.tks ] || echo "docs.tks untouched"
grep -o 'learning-rate [0-9e.-]*' out3
mk LR=2e-3 -q; echo "make -q after: $?"
mk LR=2e-3 gguf > out4 2> err4 || { echo "gguf failed: $?"; cat err4; }
tools out4
head -c 4 exp/run/model.gguf; echo
mk LR=2e-3 -q gguf; echo "make -q gguf after: $?"

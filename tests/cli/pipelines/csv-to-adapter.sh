# csv-to-adapter on the tiny GPT-2: every stage runs, the adapter, metrics,
# samples and stamps are written; a second run redoes nothing.
P=$TK_ROOT/pipelines
{ echo quote; sed 's/"/""/g; s/.*/"&"/' "$FIX/train/text.txt"; } > q.csv
run() {
	"$P/csv-to-adapter" q.csv quote "$FIX/train/model" ad --seq-len 24 --eval-fraction 0.1 \
		--prompt "A bug" --prompt "The" -- --max-steps 4 --logging-steps 2 --save-steps 2
}
run > out1 2> err1 || { echo "first run failed: $?"; cat err1; }
grep '^== ' out1 | sed 's/^== plot.*/== plot/'
ls ad | grep -v '^checkpoint-\|^runs$\|^loss.png$'
ls ad.work ad.work/stamps | grep -v '^plot.cmd$'
{ ! command -v gnuplot >/dev/null || [ -s ad/loss.png ]; } && echo "plot ok"
grep -c '^tk-train: step [0-9]*/4 epoch [0-9.]* loss [0-9.]* grad_norm [0-9.e-]* lr [0-9.e-]* [0-9]* tokens/s ETA [0-9]*m[0-9]*s' err1
grep -q '^trainable params: 4,608 || all params: 49,860 || trainable%: 9.2419$' err1 && echo "trainable line"
[ "$(grep -c '^A bug\|^The' ad.work/samples.txt)" -eq 2 ] && echo "2 samples"
run > out2 2> err2 || echo "second run failed: $?"
grep '^== ' out2 | sed 's/^== plot.*/== plot/'

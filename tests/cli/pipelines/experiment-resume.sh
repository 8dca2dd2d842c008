# experiment.mk killed during training: RUN/adapter does not exist, the
# work in RUN/adapter.tmp is kept; make again continues from the newest
# checkpoint and finishes.
{ echo quote; sed 's/"/""/g; s/.*/"&"/' "$FIX/train/text.txt"; } > q.csv
mk() {
	make --no-print-directory -f "$TK_ROOT/pipelines/experiment.mk" MODEL="$FIX/train/model" \
		DATA=q.csv COLUMN=quote OUT=exp SEQ_LEN=24 STEPS=600 LOGGING_STEPS=10 \
		TRAIN_ARGS="--threads 1" PROMPTS=The SAMPLE_TOKENS=2 "$@"
}
export -f mk
setsid bash -c mk > out1 2>&1 &
pg=$!
for _ in $(seq 1 600); do
	[ -n "$(find exp/run/adapter.tmp -maxdepth 1 -type d -name 'checkpoint-[0-9]*' ! -name '*.tmp*' -print -quit 2>/dev/null)" ] && break
	sleep 0.02
done
kill -TERM -- -"$pg"
wait "$pg"
echo "killed: $([ $? -ne 0 ] && echo yes || echo no)"
[ -e exp/run/adapter ] && echo "adapter after the kill" || echo "no adapter after the kill"
mk > out2 2>&1; echo "rerun: exit $?"
grep '^experiment.mk: continuing' out2
grep -c '^tk-train: .*resuming at step [1-9][0-9]* of 600' out2
grep -o '"global_step": 600' exp/run/train.json
ls exp/run | grep -v loss.png

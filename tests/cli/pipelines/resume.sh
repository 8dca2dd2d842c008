# A pipeline killed during training (after a checkpoint) leaves no adapter;
# run again, it skips the finished stages, continues the training from the
# newest checkpoint and finishes.
P=$TK_ROOT/pipelines
ckpt() { [ -n "$(find ad -maxdepth 1 -type d -name 'checkpoint-[0-9]*' ! -name '*.tmp*' -print -quit 2>/dev/null)" ]; }
{ echo quote; sed 's/"/""/g; s/.*/"&"/' "$FIX/train/text.txt"; } > q.csv
run() {
	"$P/csv-to-adapter" q.csv quote "$FIX/train/model" ad --seq-len 24 --prompt "A bug" -- \
		--max-steps 600 --save-steps 10 --logging-steps 100 --threads 1
}
# Its own process group (setsid execs in place: $! is the group), so that
# the kill reaches tk-train too.
setsid bash -c "$(declare -f run); P=$P FIX=$FIX; run" > out1 2> err1 &
pg=$!
for _ in $(seq 1 600); do
	ckpt && break
	sleep 0.02
done
kill -TERM -- -"$pg"
wait "$pg"
echo "killed: $([ $? -ne 0 ] && echo yes || echo no)"
[ -f ad/adapter_model.safetensors ] && echo "adapter after the kill" || echo "no adapter after the kill"
ckpt && echo "checkpoints kept"
run > out2 2> err2 || { echo "rerun failed: $?"; tail -5 err2; }
grep '^== ' out2 | grep -v '^== plot'
grep -c '^tk-train: .*resuming at step [1-9][0-9]* of 600' err2
grep -o '"global_step": 600' out2
[ -f ad/adapter_model.safetensors ] && echo "adapter"

# Under Jupyter (JPY_PARENT_PID) or Colab (COLAB_RELEASE_TAG), or with
# TK_PROGRESS=notebook, progress is one line redrawn with \r and blanked with
# spaces (no escape codes, which a notebook shows as text); logging lines
# and the last line are whole lines.  Shown here with \r as "<CR>".
run() {
	tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" --max-steps 4 \
		--per-device-train-batch-size 2 --logging-steps 2 --no-shuffle --threads 1 \
		--save-strategy no -o "$1" >/dev/null
}
norm() {
	sed -E -e 's/(loss|grad_norm|lr) [-+0-9.e]+/\1 X/g' -e 's/[0-9]+ tok(ens)?\/s/N tok\1\/s/g' \
		-e 's/ETA [0-9hms]+/ETA T/g' -e 's/mem [0-9]+ MB/mem M MB/g' -e 's/, [0-9hms]+,/, T,/' \
		-e 's/ *<CR>/<CR>/g'
}
JPY_PARENT_PID=1 TK_PROGRESS=0 run out 2>err || exit $?
echo "escapes: $(tr -cd '\033' <err | wc -c)"
sed 's/\r/<CR>/g' err | norm
echo "== Colab"
COLAB_RELEASE_TAG=x TK_PROGRESS=0 run out2 2>err || exit $?
echo "carriage returns: $(tr -cd '\r' <err | wc -c)"
echo "== TK_PROGRESS=off wins"
JPY_PARENT_PID=1 TK_PROGRESS=off run out3 2>err || exit $?
echo "carriage returns: $(tr -cd '\r' <err | wc -c)"

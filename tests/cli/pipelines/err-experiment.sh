# experiment.mk: a failing stage stops make with the tool's message and
# leaves no target; a missing MODEL is named before anything runs.
{ echo quote; sed 's/"/""/g; s/.*/"&"/' "$FIX/train/text.txt"; } > q.csv
mk() {
	make --no-print-directory -f "$TK_ROOT/pipelines/experiment.mk" MODEL="$FIX/train/model" \
		DATA=q.csv OUT=exp SEQ_LEN=24 STEPS=2 "$@" 2>&1 | grep -v 'note: no CUDA device\|^tk-tokenize -t\|^tk-tokenize: [0-9]* documents\|^make: \*\*\* \[' |
		sed "s|$TK_ROOT/pipelines/||; s/^experiment.mk:[0-9]*:/experiment.mk:N:/"
	echo "exit ${PIPESTATUS[0]}"
}
mk COLUMN=author
ls exp
mk COLUMN=quote TARGETS=q_proj | grep -v '^tk-pack\|^documents\|^train:\|^eval:\|^	--force\|^tk-train --model'
ls exp exp/run
mk MODEL=nowhere COLUMN=quote

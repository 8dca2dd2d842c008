# A failing first stage (no such column) stops csv-to-adapter with the
# tool's message and its own; nothing is left but the empty work directory.
{ echo quote; sed 's/"/""/g; s/.*/"&"/' "$FIX/train/text.txt"; } > q.csv
"$TK_ROOT/pipelines/csv-to-adapter" q.csv author "$FIX/train/model" ad -- --max-steps 2 > out
rc=$?
grep '^== \|^\$' out | sed 's| -t [^ ]* | -t MODEL |'
find . -path ./q.csv -prune -o -path ./out -prune -o -path "./.std*" -prune -o -print | sort
exit $rc

# The picture's directory is missing: exit 1, nothing left behind.
echo '{"eval_loss":5.5,"step":2}' > metrics.jsonl
"$TK_ROOT/pipelines/plot-loss" metrics.jsonl no/such/dir/loss.png
rc=$?
ls
exit $rc

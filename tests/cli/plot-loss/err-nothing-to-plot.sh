# A file without loss or eval_loss values (here only the final summary, and
# a line that is not tk-train's) draws nothing and says so.
printf '%s\n' '{"train_runtime":1.5,"train_loss":5.1,"epoch":1,"step":10}' 'hello' > metrics.jsonl
"$TK_ROOT/pipelines/plot-loss" metrics.jsonl
rc=$?
ls
exit $rc

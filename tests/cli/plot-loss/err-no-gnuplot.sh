# Without gnuplot: exit 1, saying what to install; no picture.
echo '{"loss":5.5,"grad_norm":1,"learning_rate":1e-4,"epoch":0.5,"step":2}' > metrics.jsonl
GNUPLOT=no-such-gnuplot "$TK_ROOT/pipelines/plot-loss" metrics.jsonl
rc=$?
ls
exit $rc

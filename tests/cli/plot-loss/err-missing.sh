# A metrics file that is not there.
"$TK_ROOT/pipelines/plot-loss" nowhere/metrics.jsonl
